"""Tiny real components for the evaluation tests (imported by conftest and the tests): a seeded toy generator, random-weight conv
encoders, eval banks written like ``rdm reference build`` writes them, and run checkpoints."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from rdm_core import hookimpl
from rdm_core.artifacts import save_tensors
from rdm_core.checkpoints import save_checkpoint
from rdm_core.interfaces import Conditions, EncoderSpec, Preprocessing

ENCODERS = ("tiny_a", "tiny_b", "tiny_c")  # tiny_c is held out
RES = 16
NUM_CLASSES = 10


class TinyEncoder(nn.Module):
    """Random-weight conv encoder (fixed seed per name): [0,1] images -> (B, dim) fp32."""

    def __init__(self, name: str, dim: int = 8, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(3, dim, 4, stride=4)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g) * 0.5)
            self.conv.bias.copy_(torch.randn(dim, generator=g) * 0.1)
        self.requires_grad_(False)
        self.spec = EncoderSpec(
            name=name,
            library="rdm",
            model_id=name,
            pooling="avg",
            dim=dim,
            split="held_out" if name == "tiny_c" else "train",
            preprocessing=Preprocessing(resolution=RES),
            variant="tiny",
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.interpolate(images, size=(RES, RES), mode="bilinear", align_corners=False)
        return torch.tanh(self.conv(2 * x - 1)).mean(dim=(2, 3)).float() * 4


def make_encoder(name: str):
    def factory(variant: str = "tiny", weights: str | None = None, **_: object) -> TinyEncoder:
        return TinyEncoder(name, dim=8 if name != "tiny_b" else 6, seed=ENCODERS.index(name) + 1)

    return factory


class TinyGeneratorModule(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(()))
        self.class_bias = nn.Parameter(torch.linspace(-0.5, 0.5, NUM_CLASSES))


class TinyGenerator:
    """Class-conditional one-step toy: sigmoid(noise + shift + class bias); text via prompt length."""

    def __init__(self, **_: object) -> None:
        self.module = TinyGeneratorModule()

    def noise_shape(self) -> tuple[int, ...]:
        return (3, RES, RES)

    def sample_conditions(self, n: int, rng: torch.Generator) -> Conditions:
        return Conditions(inputs=torch.randint(0, NUM_CLASSES, (n,), generator=rng, device=rng.device))

    def conditions_from_prompts(self, prompts: list[str]) -> Conditions:
        return Conditions(inputs=torch.tensor([len(p) % NUM_CLASSES for p in prompts]), captions=list(prompts))

    def generate(self, noise: torch.Tensor, conditions: Conditions) -> torch.Tensor:
        bias = self.module.class_bias[conditions.inputs.to(noise.device)].view(-1, 1, 1, 1)
        return torch.sigmoid(noise + self.module.shift + bias)

    def trainable_module(self) -> nn.Module:
        return self.module

    def load_weights(self, path: str, format: str = "auto") -> None:
        from rdm_core.checkpoints import load_model_weights

        load_model_weights(path, self.module)

    def save_weights(self, path: str, format: str = "rdm") -> None:
        save_tensors(path, self.module.state_dict())


class ClassOnlyGenerator:
    """The same toy without prompt encoding: a purely class-conditional generator."""

    def __init__(self, **_: object) -> None:
        self._toy = TinyGenerator()
        self.noise_shape, self.sample_conditions, self.generate = (
            self._toy.noise_shape,
            self._toy.sample_conditions,
            self._toy.generate,
        )
        self.trainable_module, self.load_weights, self.save_weights = (
            self._toy.trainable_module,
            self._toy.load_weights,
            self._toy.save_weights,
        )


class EvalTestPlugin:
    @hookimpl
    def rdm_register_encoders(self, registry):
        for name in ENCODERS:
            registry.add(name, make_encoder(name))

    @hookimpl
    def rdm_register_generators(self, registry):
        registry.add("tiny_gen", TinyGenerator)
        registry.add("tiny_class_gen", ClassOnlyGenerator)


# The val bank is drawn from the generator shifted by this much, so train and val banks differ: a
# metric that swaps their roles (anchor, floor) or divides by the wrong set gives another number.
VAL_SHIFT = 0.5


def real_images(n: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    """'Real' data: the toy generator at ``shift`` (0 = the train distribution) with its own seed."""
    gen = TinyGenerator()
    with torch.no_grad():
        gen.module.shift.fill_(shift)
    rng = torch.Generator().manual_seed(seed)
    noise = torch.randn((n, 3, RES, RES), generator=rng)
    with torch.no_grad():
        return gen.generate(noise, gen.sample_conditions(n, rng))


def write_banks(ref_dir: Path, n: int = 512) -> None:
    """Eval banks laid out as the reference build writes them; val drawn at ``VAL_SHIFT``."""
    for split, seed, shift in (("train", 100, 0.0), ("val", 200, VAL_SHIFT)):
        images = real_images(n, seed, shift)
        for name in ENCODERS:
            feats = make_encoder(name)()(images)
            save_tensors(
                ref_dir / "eval" / f"{name}_{split}.safetensors",
                {"features": feats},
                {"kind": "eval_bank", "encoder": name, "n": n, "seed": seed},
            )


def bank_features(ref_dir: Path, encoder: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, val) features of one encoder's eval banks, read back from the files."""
    from rdm_core.artifacts import load_tensors

    train, _ = load_tensors(Path(ref_dir) / "eval" / f"{encoder}_train.safetensors")
    val, _ = load_tensors(Path(ref_dir) / "eval" / f"{encoder}_val.safetensors")
    return train["features"], val["features"]


def write_recipe(tmp: Path) -> Path:
    text = f"""
run: {{name: evaltest, output_dir: {tmp / "runs"}, device: cpu}}
generator: {{name: tiny_gen}}
encoders: {{train: [tiny_a, tiny_b], held_out: [tiny_c], variant: tiny}}
references: {{dir: {tmp / "refs"}, resolution: {RES}}}
eval: {{metrics: [sw_r14, mmd_r14], num_samples: 512, batch_size: 128, seed: 0}}
"""
    path = tmp / "recipe.yaml"
    path.write_text(text)
    return path


def write_checkpoint(run_dir: Path, step: int, shift: float) -> Path:
    module = TinyGeneratorModule()
    with torch.no_grad():
        module.shift.fill_(shift)
    return save_checkpoint(run_dir, step, module.state_dict(), {}, {})
