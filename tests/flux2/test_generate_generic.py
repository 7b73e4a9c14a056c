"""`rdm generate` on any generator: an in-process unconditional plugin, checked pixel by pixel."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
import torch
from torch import nn

from rdm_core import hookimpl
from rdm_core.interfaces import Conditions
from rdm_core.plugins import PluginHost, set_host


class SigmoidGenerator:
    """Unconditional: image = sigmoid(gain * noise), noise (3, 8, 8)."""

    def __init__(self, gain: float = 1.0) -> None:
        self.module = nn.Module()
        self.module.gain = nn.Parameter(torch.tensor(float(gain)))

    def noise_shape(self):
        return (3, 8, 8)

    def sample_conditions(self, n, rng):
        return Conditions(inputs=None)

    def generate(self, noise, conditions):
        return torch.sigmoid(self.module.gain * noise)

    def trainable_module(self):
        return self.module

    def load_weights(self, path, format="auto"):
        raise NotImplementedError

    def save_weights(self, path, format="rdm"):
        raise NotImplementedError


@pytest.fixture()
def host():
    def register(registry):
        registry.add("sigmoid", SigmoidGenerator)

    plugin = types.SimpleNamespace(__name__="sigmoid_plugin", rdm_register_generators=hookimpl(register))
    h = PluginHost(discover=False)
    h.register_module(plugin, "sigmoid_plugin")
    set_host(h)
    yield h
    set_host(None)


def _expected(seed: int, i: int, gain: float) -> np.ndarray:
    noise = torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(seed * 1_000_003 + i)).double()
    img = torch.sigmoid(gain * noise)  # float64 reference of the float32 generator
    return (img * 255).round().byte().permute(1, 2, 0).numpy()


def test_generate_num_uses_per_sample_seeds_and_checkpoints(host, tmp_path):
    from PIL import Image

    from rdm_core.checkpoints import save_checkpoint
    from rdm_core.cli.main import main

    recipe = tmp_path / "r.yaml"
    recipe.write_text("generator:\n  name: sigmoid\n  args: {gain: 1.5}\nrun:\n  device: cpu\n")
    assert (
        main(
            [
                "generate",
                str(recipe),
                "--base",
                "--num",
                "7",
                "--seed",
                "11",
                "--batch-size",
                "3",
                "--out",
                str(tmp_path / "a"),
            ]
        )
        == 0
    )
    for i in range(7):
        got = np.asarray(Image.open(tmp_path / "a" / f"{i:05d}.png"))
        assert np.abs(got.astype(int) - _expected(11, i, 1.5).astype(int)).max() <= 1
    grid = np.asarray(Image.open(tmp_path / "a" / "grid.png"))
    assert grid.shape == (3 * 10 + 2, 3 * 10 + 2, 3)  # 7 samples -> 3x3 grid of 8 px tiles with 2 px gaps
    assert np.array_equal(grid[2:10, 2:10], np.asarray(Image.open(tmp_path / "a" / "00000.png")))
    meta = json.loads((tmp_path / "a" / "samples.json").read_text())
    assert [s["noise_seed"] for s in meta["samples"]] == [11 * 1_000_003 + i for i in range(7)]

    save_checkpoint(tmp_path / "run", 3, {"gain": torch.tensor(-2.0)}, {}, {})
    assert (
        main(
            [
                "generate",
                str(recipe),
                "--num",
                "2",
                "--seed",
                "11",
                "--checkpoint",
                str(tmp_path / "run"),
                "--out",
                str(tmp_path / "b"),
            ]
        )
        == 0
    )
    got = np.asarray(Image.open(tmp_path / "b" / "00001.png"))
    assert np.abs(got.astype(int) - _expected(11, 1, -2.0).astype(int)).max() <= 1


@pytest.mark.parametrize(
    ("flags", "lacks", "capability"),
    [
        (["--prompt", "a cat"], "conditions_from_prompts()", "PromptConditionedGenerator"),
        (["--num", "2", "--teacher-steps", "4"], "teacher_sample()", "TeacherSampler"),
    ],
)
def test_generate_refuses_a_missing_capability_in_one_line(host, tmp_path, capsys, flags, lacks, capability):
    from rdm_core.cli.main import main

    recipe = tmp_path / "r.yaml"
    recipe.write_text("generator:\n  name: sigmoid\nrun:\n  device: cpu\n")
    assert main(["generate", str(recipe), "--base", *flags, "--out", str(tmp_path / "o")]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "generator 'sigmoid' (SigmoidGenerator) cannot serve rdm generate --" in lines[0]
    assert f"it lacks {lacks} (capability {capability})" in lines[0]
    assert not (tmp_path / "o").exists()  # refused before anything was written
