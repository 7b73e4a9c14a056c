"""A throwaway in-process plugin for the reference-build tests.

Three tiny deterministic conv encoders (two training, one held-out) and a tiny teacher
generator. ``REFTEST_SLEEP`` (seconds per encoder call) slows extraction so a subprocess can be
killed mid-build; ``REFTEST_COUNTER`` names a file that gets one line per encoder batch.
"""

from __future__ import annotations

import os
import zlib

import torch
from torch import nn

from rdm_core import hookimpl
from rdm_core.interfaces import Conditions, EncoderSpec, Preprocessing
from rdm_core.seeding import seeded_init


def _spec(name: str, dim: int, split: str) -> EncoderSpec:
    return EncoderSpec(
        name=name,
        library="rdm",
        model_id=f"test/{name}",
        pooling="avg",
        dim=dim,
        split=split,
        preprocessing=Preprocessing(resolution=16),
        precision="fp32",
        variant="tiny",
    )


class TinyConvEncoder(nn.Module):
    """Resize to 16 px -> conv(stride 2) -> tanh -> global mean -> linear; seeded weights."""

    def __init__(self, name: str, dim: int, split: str, seed: int) -> None:
        super().__init__()
        self.spec = _spec(name, dim, split)
        gen = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.head = nn.Linear(8, dim)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        self.requires_grad_(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        sleep = float(os.environ.get("REFTEST_SLEEP", "0"))
        if sleep:
            import time

            time.sleep(sleep)
        counter = os.environ.get("REFTEST_COUNTER")
        if counter:
            with open(counter, "a") as fh:
                fh.write(f"{self.spec.name} {images.shape[0]}\n")
        x = nn.functional.interpolate(images.float(), size=(16, 16), mode="bilinear", align_corners=False)
        x = torch.tanh(self.conv(x * 2 - 1)).mean(dim=(2, 3))
        return self.head(x).float()


ENCODERS = {"tiny_a": (6, "train", 1), "tiny_b": (5, "train", 2), "tiny_c": (4, "held_out", 3)}


def build_encoder(name: str, variant: str = "full", weights: str | None = None) -> TinyConvEncoder:
    dim, split, seed = ENCODERS[name]
    # REFTEST_REINIT stands for an encoder whose weights differ between processes.
    enc = TinyConvEncoder(name, dim, split, seed + int(os.environ.get("REFTEST_REINIT", "0")))
    if weights:
        from safetensors.torch import load_file

        enc.load_state_dict(load_file(weights))
    return enc


def _prompt_vector(prompt: str, dim: int = 4) -> torch.Tensor:
    gen = torch.Generator().manual_seed(zlib.crc32(prompt.encode()))
    return torch.randn(dim, generator=gen)


class TinyTeacher:
    """k Euler steps of a tiny conditional velocity net on 3x8x8 noise, upsampled to 12 px."""

    def __init__(self, width: int = 8, prompts: str | None = None) -> None:
        from rdm_core.prompts import read_prompts

        self.prompts = read_prompts(prompts) if prompts else None
        with seeded_init(seed=0):
            self.net = nn.Sequential(
                nn.Conv2d(3 + 4, width, 3, padding=1), nn.Tanh(), nn.Conv2d(width, 3, 3, padding=1)
            )
        self.calls = 0

    def noise_shape(self) -> tuple[int, ...]:
        return (3, 8, 8)

    def trainable_module(self) -> nn.Module:
        return self.net

    def conditions_from_prompts(self, prompts: list[str]) -> Conditions:
        return Conditions(inputs=torch.stack([_prompt_vector(p) for p in prompts]), captions=list(prompts))

    def sample_conditions(self, n: int, rng: torch.Generator) -> Conditions:
        if self.prompts:  # rows of the prompt pool, as a text-to-image generator would draw them
            rows = torch.randint(0, len(self.prompts), (n,), generator=rng)
            cond = self.conditions_from_prompts([self.prompts[i] for i in rows.tolist()])
            cond.caption_ids = rows
            return cond
        return Conditions(inputs=torch.randn(n, 4, generator=rng))

    def _velocity(self, x: torch.Tensor, cond: Conditions) -> torch.Tensor:
        c = cond.inputs[:, :, None, None].expand(-1, -1, *x.shape[-2:])
        return self.net(torch.cat([x, c], dim=1))

    def generate(self, noise: torch.Tensor, conditions: Conditions) -> torch.Tensor:
        return self.teacher_sample(noise, conditions, 1)

    def teacher_sample(self, noise: torch.Tensor, conditions: Conditions, steps: int) -> torch.Tensor:
        self.calls += 1
        x = noise
        for _ in range(steps):
            x = x - self._velocity(x, conditions) / steps
        img = torch.sigmoid(x)
        return nn.functional.interpolate(img, size=(12, 12), mode="bilinear", align_corners=False)

    def load_weights(self, path: str, format: str = "auto") -> None:
        from safetensors.torch import load_file

        self.net.load_state_dict(load_file(path))

    def save_weights(self, path: str, format: str = "rdm") -> None:
        from safetensors.torch import save_file

        save_file(self.net.state_dict(), path)


@hookimpl
def rdm_register_encoders(registry) -> None:  # type: ignore[no-untyped-def]
    for name, (dim, split, _) in ENCODERS.items():
        registry.add(
            name,
            lambda variant="full", weights=None, _n=name: build_encoder(_n, variant, weights),
            spec=_spec(name, dim, split),
        )


class UnpromptedTeacher:
    """A teacher that draws its own conditions: no prompt encoding."""

    def __init__(self) -> None:
        self._teacher = TinyTeacher()
        self.noise_shape, self.trainable_module = self._teacher.noise_shape, self._teacher.trainable_module
        self.sample_conditions, self.teacher_sample = self._teacher.sample_conditions, self._teacher.teacher_sample


class OneStepOnly(UnpromptedTeacher):
    """A one-step generator without a multi-step teacher."""

    def __init__(self) -> None:
        super().__init__()
        del self.teacher_sample
        self.generate = self._teacher.generate


@hookimpl
def rdm_register_generators(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add("tiny_teacher", TinyTeacher)
    registry.add("tiny_unprompted", UnpromptedTeacher)
    registry.add("tiny_one_step", OneStepOnly)


def install() -> None:
    """A fresh process-wide host: the installed plugins plus this module.

    Reference kinds and kernels come from rdm_mmd; if its hooks do not register them yet, the
    classes are added directly so these tests exercise the real implementations.
    """
    import sys

    from rdm_core.plugins import PluginHost, set_host

    host = PluginHost()
    host.register_module(sys.modules[__name__], "refs_test")
    set_host(host)
    refs = host.registry("references")
    if "nystrom" not in refs:
        refs.add("nystrom", "rdm_mmd.nystrom:NystromReference")
    kernels = host.registry("kernels")
    if "gaussian" not in kernels:
        kernels.add("gaussian", "rdm_mmd.kernels:GaussianKernel")


class TinyText(nn.Module):
    """A deterministic text tower: each prompt maps to a seeded 3-d vector times a weight.

    ``REFTEST_TEXT_SCALE`` changes the weight (a text tower with other weights).
    """

    def __init__(self, scale: float | None = None) -> None:
        super().__init__()
        value = float(os.environ.get("REFTEST_TEXT_SCALE", "2")) if scale is None else scale
        self.register_buffer("scale", torch.tensor([value, 1.0, 1.0]))

    def encode(self, prompts: list[str]) -> torch.Tensor:
        return torch.stack([_prompt_vector(p, 3) * self.scale for p in prompts])


def tiny_text(variant: str = "full", weights: str | None = None) -> TinyText:
    return TinyText()
