"""rdm_core.testing.GeneratorContract: a minimal generator passes it, each defect it exists to
catch makes the matching check fail, and every generator a shipped plugin registers has a contract
class (the classes live beside each plugin's tests)."""

from __future__ import annotations

import ast
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import torch

from rdm_core.capabilities import PromptConditionedGenerator
from rdm_core.interfaces import Conditions
from rdm_core.seeding import seeded_init
from rdm_core.testing import GeneratorContract

TESTS = Path(__file__).resolve().parents[1]


class LinearGenerator:
    """A class-free linear map noise (8,) -> (3, 4, 4) images, optionally with one defect."""

    def __init__(self, defect: str | None = None) -> None:
        self.defect = defect
        with seeded_init(seed=0):
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


def test_a_generator_of_another_type_fails_the_registry_check():
    from rdm_toy.generator import DigitsMLPGenerator

    class Mislabelled(GeneratorContract):
        registry_name = "digits-mlp"

    Mislabelled().test_is_what_its_registry_entry_builds(DigitsMLPGenerator(seed=0))
    with pytest.raises(AssertionError, match="builds DigitsMLPGenerator"):
        Mislabelled().test_is_what_its_registry_entry_builds(LinearGenerator())


def _contract_classes() -> dict[str, list[str]]:
    """``registry_name -> [test file::class]`` of every GeneratorContract subclass in the test tree
    (read from the source, so no test module is imported here)."""
    found: dict[str, list[str]] = {}
    for path in sorted(TESTS.rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef):
                continue
            if not any(isinstance(b, ast.Name) and b.id == "GeneratorContract" for b in node.bases):
                continue
            for stmt in node.body:
                target = stmt.targets[0] if isinstance(stmt, ast.Assign) else getattr(stmt, "target", None)
                if isinstance(target, ast.Name) and target.id == "registry_name":
                    value = stmt.value
                    if isinstance(value, ast.Constant) and isinstance(value.value, str):
                        found.setdefault(value.value, []).append(f"{path.relative_to(TESTS)}::{node.name}")
    return found


def test_every_shipped_generator_runs_the_contract():
    from rdm_core.plugins import registry

    shipped_plugins = {ep.name for ep in entry_points(group="rdm") if ep.dist is not None and ep.dist.name == "rdm"}
    shipped = {e.name for e in registry("generators").entries() if e.plugin in shipped_plugins}
    assert {"digits-mlp", "digits-classcond", "pmf", "flux2-klein", "flux1", "wan"} <= shipped
    classes = _contract_classes()
    missing = sorted(shipped - set(classes))
    assert not missing, f"shipped generators without a GeneratorContract class (registry_name=...): {missing}"
    unknown = sorted(set(classes) - set(registry("generators").names()))
    assert not unknown, f"contract classes name generators nobody registers: {unknown}"
