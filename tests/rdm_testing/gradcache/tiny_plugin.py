"""A throwaway rdm plugin for the trainer tests: a tiny conditional generator, two encoders, and
the kill-drill trainer.

Registered in-process (``get_host().register_module``), also inside the ``rdm train``
subprocesses started through ``rdm_testing.gradcache.run_rdm``.
"""

from __future__ import annotations

import dataclasses
import os
import signal
from pathlib import Path

import torch
from torch import Tensor, nn

from rdm_core import hookimpl
from rdm_core.artifacts import load_tensors, save_tensors
from rdm_core.interfaces import Conditions, EncoderSpec, Preprocessing, TrainerOptions
from rdm_core.seeding import seeded_init
from rdm_testing.gradcache.tiny_models import CLASSES, NOISE, RES, TinyEncoderA, TinyEncoderB, TinyGenerator

# The kill drill: `rdm train RECIPE --set train.trainer=gc-kill-drill` with this variable set to k
# runs the GradCache trainer and SIGKILLs the process right after step k (checkpoint and samples
# of step k written, if due): a crash at an arbitrary point between checkpoints.
KILL_AFTER_ENV = "GC_TINY_KILL_AFTER_STEP"


def _spec(name: str, dim: int) -> EncoderSpec:
    return EncoderSpec(
        name=name,
        library="rdm",
        model_id="test",
        pooling="avg",
        dim=dim,
        split="train",
        preprocessing=Preprocessing(resolution=RES),
        precision="fp32",
        variant="tiny",
    )


SPECS = {"gc_tiny_a": _spec("gc_tiny_a", 5), "gc_tiny_b": _spec("gc_tiny_b", 4)}


class TinyGen:
    """Class-conditional tiny generator; caption ids = class ids (for the joint feature)."""

    def __init__(self, dropout: float = 0.0, seed: int = 0) -> None:
        with seeded_init(seed=seed):
            self.module = TinyGenerator(dropout)

    def noise_shape(self) -> tuple[int, ...]:
        return (NOISE,)

    def sample_conditions(self, n: int, rng: torch.Generator) -> Conditions:
        ids = torch.randint(0, CLASSES, (n,), generator=rng)
        return Conditions(inputs=ids, caption_ids=ids)

    def generate(self, noise: Tensor, conditions: Conditions) -> Tensor:
        return self.module(noise, conditions.inputs)

    def trainable_module(self) -> nn.Module:
        return self.module

    def load_weights(self, path: str, format: str = "auto") -> None:
        state, _ = load_tensors(path)
        self.module.load_state_dict(state)

    def save_weights(self, path: str, format: str = "rdm") -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        save_tensors(path, self.module.state_dict())


class _Enc(nn.Module):
    def __init__(self, spec: EncoderSpec, net: nn.Module) -> None:
        super().__init__()
        self.spec, self.net = spec, net

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)


def encoder_a(variant: str = "tiny", weights: str | None = None, seed: int = 10) -> _Enc:
    with seeded_init(seed=seed):
        return _Enc(SPECS["gc_tiny_a"], TinyEncoderA())


def encoder_b(variant: str = "tiny", weights: str | None = None, seed: int = 11) -> _Enc:
    with seeded_init(seed=seed):
        return _Enc(SPECS["gc_tiny_b"], TinyEncoderB())


def kill_drill_trainer(recipe, options: TrainerOptions | None = None):
    """The ``gradcache`` trainer plus a step callback that SIGKILLs this process after step k."""
    from rdm_gradcache.trainer import gradcache_trainer

    kill_after = int(os.environ[KILL_AFTER_ENV])

    def kill(step: int) -> None:
        if step == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    options = options or TrainerOptions()
    return gradcache_trainer(recipe, dataclasses.replace(options, step_callbacks=(*options.step_callbacks, kill)))


@hookimpl
def rdm_register_trainers(registry) -> None:
    registry.add("gc-kill-drill", kill_drill_trainer, help="test-only: gradcache, SIGKILLed after a given step")


@hookimpl
def rdm_register_generators(registry) -> None:
    registry.add("gc-tiny", TinyGen, help="test-only tiny conditional generator")


@hookimpl
def rdm_register_encoders(registry) -> None:
    registry.add("gc_tiny_a", encoder_a, spec=SPECS["gc_tiny_a"])
    registry.add("gc_tiny_b", encoder_b, spec=SPECS["gc_tiny_b"])
