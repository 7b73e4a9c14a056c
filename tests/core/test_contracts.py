"""Plugin outputs are checked where they enter: generator images and encoder features, one line
naming the component and its plugin, through the commands users type."""

from __future__ import annotations

import copy
import types

import pytest
import torch
from torch import nn

from rdm_core import hookimpl
from rdm_core.battery import Battery
from rdm_core.cli.main import main
from rdm_core.errors import ContractError
from rdm_core.interfaces import Conditions, EncoderSpec, Preprocessing
from rdm_core.plugins import PluginHost, get_host, set_host


class Painter:
    """An unconditional generator whose output is chosen by ``mode`` (the contract's bad cases)."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.module = nn.Linear(1, 1)

    def noise_shape(self):
        return (3, 4, 4)

    def sample_conditions(self, n, rng):
        return Conditions(inputs=None)

    def generate(self, noise, conditions):
        x = torch.sigmoid(noise)
        return {
            "ok": x,
            "grey": x[:, :1],
            "x255": x * 255,
            "signed": 2 * x - 1,
            "uint8": (x * 255).to(torch.uint8),
            "short": x[:-1],
        }[self.mode]

    def trainable_module(self):
        return self.module

    def load_weights(self, path, format="auto"):
        raise NotImplementedError

    def save_weights(self, path, format="rdm"):
        raise NotImplementedError


def _spec(dim: int) -> EncoderSpec:
    return EncoderSpec(
        name="liar", library="tests", model_id="liar", pooling="mean", dim=dim, split="train",
        preprocessing=Preprocessing(resolution=4),
    )  # fmt: skip


class Liar(nn.Module):
    """Declares dim 8, returns ``width`` features."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.spec = _spec(8)
        self.width = width

    def forward(self, images):
        return images.flatten(1)[:, : self.width].float()


def register_generators(registry):
    registry.add("painter", Painter)


def register_encoders(registry):
    registry.add("liar", lambda variant="full", weights=None, width=8: Liar(width), spec=_spec(8))


@pytest.fixture
def host(monkeypatch):
    monkeypatch.delenv("RDM_STRICT_PLUGINS", raising=False)
    plugin = types.SimpleNamespace(
        __name__="contract_tests",
        rdm_register_generators=hookimpl(register_generators),
        rdm_register_encoders=hookimpl(register_encoders),
    )
    previous = get_host()
    h = PluginHost(discover=False, strict=False)
    h.register_module(plugin, "contract_tests")
    set_host(h)
    yield h
    set_host(previous)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("grey", r"returned images of shape \(2, 1, 4, 4\); expected floating images of shape \(B, 3, H, W\)"),
        ("x255", r"returned pixel values in \[\d.*, 2\d\d.*\]; expected"),
        ("signed", r"returned pixel values in \[-\d.*, 0\.\d+\]"),
        ("uint8", r"returned torch.uint8 images"),
        ("short", r"returned 1 images for 2 noise rows"),
    ],
)
def test_bad_generator_output_is_one_line_naming_plugin_and_component(host, tmp_path, capsys, mode, expected):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"generator: {{name: painter, args: {{mode: {mode}}}}}\nrun: {{device: cpu}}\n")
    assert main(["generate", str(recipe), "--base", "--num", "2", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar's last line
    assert err.startswith("error: generator 'painter' (plugin 'contract_tests') ")
    import re

    assert re.search(expected, err), err
    assert not (tmp_path / "o" / "grid.png").exists()


def test_good_generator_stays_itself_after_the_check(host, tmp_path):
    gen = host.registry("generators").create("painter")
    assert isinstance(gen, Painter) and type(gen).__qualname__ == "Painter"
    noise = torch.randn(3, 3, 4, 4)
    assert torch.equal(gen.generate(noise, Conditions()), torch.sigmoid(noise))
    twin = copy.deepcopy(gen)
    twin.mode = "grey"
    with pytest.raises(ContractError, match="shape"):  # copies are checked too
        twin.generate(noise, Conditions())


def test_encoder_dim_is_checked_on_reference_and_eval_extraction(host):
    images = torch.rand(5, 3, 4, 4)
    honest = host.registry("encoders").create("liar", width=8)
    assert Battery({"liar": honest}, chunk_size=2).extract(images, progress=False)["liar"].shape == (5, 8)
    liar = host.registry("encoders").create("liar", width=16)
    with pytest.raises(ContractError) as info:
        Battery({"liar": liar}, chunk_size=2).extract(images, progress=False)
    assert str(info.value).startswith(
        "encoder 'liar' (plugin 'contract_tests') declares dim 8 in its spec but returned 16-d features."
    )
    with pytest.raises(ContractError):  # the differentiable path (reference pipeline, training) too
        Battery({"liar": liar})(images)


def test_encoder_built_with_another_dim_than_registered_is_refused(host):
    def register(registry):
        registry.add("liar16", lambda variant="full", weights=None: Liar(8), spec=_spec(16))

    host.register_module(types.SimpleNamespace(__name__="x", rdm_register_encoders=hookimpl(register)), "x")
    with pytest.raises(ContractError, match="registered with dim 16 but built an encoder whose spec says 8"):
        host.registry("encoders").create("liar16")
