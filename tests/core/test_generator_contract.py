"""rdm_core.testing.GeneratorContract: a minimal generator passes it, and each defect it exists to
catch makes the matching check fail (the contract is run on every shipped generator elsewhere)."""

from __future__ import annotations

import pytest
import torch

from rdm_core.capabilities import PromptConditionedGenerator
from rdm_core.interfaces import Conditions
from rdm_core.testing import GeneratorContract


class LinearGenerator:
    """A class-free linear map noise (8,) -> (3, 4, 4) images, optionally with one defect."""

    def __init__(self, defect: str | None = None) -> None:
        self.defect = defect
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.module = torch.nn.ModuleDict({"proj": torch.nn.Linear(8, 48)})
            if defect == "dead_parameter":
                self.module["unused"] = torch.nn.Linear(2, 2)

    def noise_shape(self) -> tuple[int, ...]:
        return (8,)

    def sample_conditions(self, n: int, rng: torch.Generator) -> Conditions:
        ids = torch.randint(0, 3, (n,)) if self.defect == "global_rng" else torch.randint(0, 3, (n,), generator=rng)
        return Conditions(inputs=ids.float())

    def generate(self, noise: torch.Tensor, conditions: Conditions) -> torch.Tensor:
        x = self.module["proj"](noise) + conditions.inputs[:, None]
        if self.defect == "noisy":
            x = x + torch.randn_like(x)
        x = x.view(-1, 3, 4, 4)
        return x if self.defect == "unclamped" else torch.sigmoid(x)

    def trainable_module(self) -> torch.nn.Module:
        return self.module

    def save_weights(self, path: str, format: str = "rdm") -> None:
        from rdm_core.artifacts import save_tensors

        state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
        if self.defect == "lossy_save":
            state = {k: torch.zeros_like(v) for k, v in state.items()}
        save_tensors(path, state, {"kind": "linear-test"})

    def load_weights(self, path: str, format: str = "auto") -> None:
        from pathlib import Path

        from rdm_core.artifacts import load_tensors
        from rdm_core.errors import ArtifactError, WeightsNotFoundError

        if not Path(path).is_file():
            raise WeightsNotFoundError(f"{path} does not exist.", "pass a weights file")
        state, _ = load_tensors(path)
        result = self.module.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise ArtifactError(f"{path} does not match this generator.", "pass weights saved by it")


class PromptedLinearGenerator(LinearGenerator):
    def conditions_from_prompts(self, prompts):
        return Conditions(inputs=torch.tensor([float(len(p) % 3) for p in prompts]), captions=list(prompts))


class TestLinearGeneratorContract(GeneratorContract):
    def make_generator(self):
        return LinearGenerator()


class TestPromptedLinearGeneratorContract(GeneratorContract):
    capabilities = (PromptConditionedGenerator,)

    def make_generator(self):
        return PromptedLinearGenerator()


@pytest.mark.parametrize(
    ("defect", "check"),
    [
        ("unclamped", "test_generate_shape_dtype_range_and_determinism"),
        ("noisy", "test_generate_shape_dtype_range_and_determinism"),
        ("global_rng", "test_sample_conditions_are_a_function_of_the_seeded_rng"),
        ("dead_parameter", "test_every_trainable_parameter_gets_a_gradient"),
        ("lossy_save", "test_save_and_load_weights_round_trip"),
    ],
)
def test_each_defect_fails_its_check(defect, check, tmp_path):
    contract = GeneratorContract()
    method = getattr(contract, check)
    args = (tmp_path,) if "tmp_path" in method.__code__.co_varnames else ()
    method(LinearGenerator(), *args)  # the healthy generator passes
    with pytest.raises(AssertionError):
        method(LinearGenerator(defect), *args)


def test_an_undeclared_capability_fails_the_declaration_check():
    with pytest.raises(AssertionError, match="PromptConditionedGenerator"):
        GeneratorContract().test_declares_exactly_its_capabilities(PromptedLinearGenerator())
    with pytest.raises(NotImplementedError, match="make_generator"):
        GeneratorContract().make_generator()
