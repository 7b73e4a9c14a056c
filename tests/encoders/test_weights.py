"""Weight loading through the real paths: local files, the HF cache, and clear offline errors."""

from __future__ import annotations

import pytest
import torch

from rdm_core.artifacts import save_tensors
from rdm_core.errors import WeightsNotFoundError
from rdm_core.registry import import_object
from rdm_encoders.specs import DREAMSIM_CONVERTED, FACTORIES, PANEL, SPECS

TIMM = [s.name for s in PANEL if s.library == "timm" and s.name != "dreamsim"]


def factory(name):
    return import_object(FACTORIES[name])


def _x(seed=0):
    return torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(seed))


def _same(a, b):
    x = _x()
    with torch.no_grad():
        fa, fb = a(x), b(x)
    assert torch.equal(fa, fb), (fa - fb).abs().max()


def _perturbed(enc):
    """Give a tiny encoder non-default weights so a silently skipped load would be caught."""
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=g))
    return enc


@pytest.mark.parametrize("name", TIMM)
def test_timm_local_file_roundtrip(name, tmp_path, empty_offline):
    enc = _perturbed(factory(name)(variant="tiny"))
    path = tmp_path / f"{name}.safetensors"
    save_tensors(path, enc.backbone.state_dict())
    loaded = factory(name)(variant="tiny", weights=str(path))
    _same(enc, loaded)


def test_timm_hf_cache_route_offline(tmp_path, empty_offline):
    """A populated standard HF cache is found offline without any explicit path."""
    spec = SPECS["mae"]
    enc = _perturbed(factory("mae")(variant="tiny"))
    repo = empty_offline / "hf" / "hub" / ("models--" + spec.weights.hub_id.replace("/", "--"))
    snap = repo / "snapshots" / "0123abc"
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abc")
    save_tensors(snap / "model.safetensors", enc.backbone.state_dict())
    loaded = factory("mae")(variant="tiny", pretrained=True)  # tiny architecture, weights from the cache
    _same(enc, loaded)


@pytest.mark.parametrize("fmt", ["safetensors", "pth"])
def test_inception_local_file_roundtrip(fmt, tmp_path, empty_offline):
    enc = _perturbed(factory("inception")(variant="tiny"))
    path = tmp_path / f"inception.{fmt}"
    state = enc.backbone.net.state_dict()
    if fmt == "safetensors":
        save_tensors(path, state)
    else:  # the released file format (read back with weights_only=True)
        torch.save(state, path)
    _same(enc, factory("inception")(variant="tiny", weights=str(path)))


def test_inception_torch_hub_cache_route(empty_offline):
    enc = _perturbed(factory("inception")(variant="tiny"))
    target = empty_offline / "torch" / "hub" / "checkpoints" / SPECS["inception"].weights.files[0]
    target.parent.mkdir(parents=True)
    torch.save(enc.backbone.net.state_dict(), target)  # the released .pth format
    loaded = factory("inception")(variant="full")
    _same(enc, loaded)


def test_inception_rejects_a_non_fid_state_dict(tmp_path):
    bad = tmp_path / "bad.safetensors"
    save_tensors(bad, {"fc.weight": torch.zeros(1000, 2048)})
    with pytest.raises(WeightsNotFoundError, match="FID Inception"):
        factory("inception")(variant="tiny", weights=str(bad))


@pytest.mark.parametrize("name", ["webssl_dino_1b", "cradiov3_l"])
def test_transformers_save_pretrained_roundtrip(name, tmp_path, empty_offline):
    enc = _perturbed(factory(name)(variant="tiny"))
    enc.backbone.save_pretrained(tmp_path / name)
    assert not list((tmp_path / name).glob("*.bin"))  # safetensors, no pickle
    _same(enc, factory(name)(variant="tiny", weights=str(tmp_path / name)))


@pytest.mark.parametrize("layout", ["vae_dir", "repo_root"])
def test_flux_vae_save_pretrained_roundtrip(layout, tmp_path, empty_offline):
    from rdm_encoders.hf_encoders import FluxVAEEncoder, flux_vae_model

    vae = flux_vae_model("tiny")
    root = tmp_path / "flux"
    vae.save_pretrained(root / "vae" if layout == "repo_root" else root)
    ref = FluxVAEEncoder(SPECS["flux_vae"].with_variant("tiny", 1024), vae)
    _same(ref, factory("flux_vae")(variant="tiny", weights=str(root)))


def test_dreamsim_converted_file_roundtrip(tmp_path):
    enc = _perturbed(factory("dreamsim")(variant="tiny"))
    path = tmp_path / "ds.safetensors"
    save_tensors(path, {f"{p}.{k}": v for p, m in enc.backbone.items() for k, v in m.state_dict().items()})
    _same(enc, factory("dreamsim")(variant="tiny", weights=str(path)))
    broken = tmp_path / "broken.safetensors"
    save_tensors(
        broken,
        {f"{p}.{k}": v for p, m in enc.backbone.items() for k, v in m.state_dict().items() if k != "norm.weight"},
    )
    with pytest.raises(WeightsNotFoundError, match="variant or format mismatch"):
        factory("dreamsim")(variant="tiny", weights=str(broken))


# -- offline misses: one clear error naming what is missing and how to fetch it -------------------


@pytest.mark.parametrize("name", [s.name for s in PANEL])
def test_offline_miss_is_one_clear_error(name, empty_offline):
    spec = SPECS[name]
    with pytest.raises(WeightsNotFoundError) as info:
        factory(name)(variant="full")
    msg = str(info.value)
    assert f"rdm encoders fetch {name}" in msg
    if name == "dreamsim":  # its own converted file, named with the conversion route
        assert DREAMSIM_CONVERTED in msg and "dreamsim_convert" in msg
    elif spec.weights.hub_id:
        assert spec.weights.hub_id in msg and spec.weights.files[0] in msg and "HF_HUB_OFFLINE" in msg
    else:
        assert spec.weights.files[0] in msg


def test_missing_local_path_names_the_path(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="nope.safetensors"):
        factory("mae")(variant="tiny", weights=str(tmp_path / "nope.safetensors"))


def test_hf_encoders_want_a_directory(tmp_path):
    f = tmp_path / "model.safetensors"
    save_tensors(f, {"a": torch.zeros(1)})
    with pytest.raises(WeightsNotFoundError, match="save_pretrained"):
        factory("webssl_dino_1b")(variant="tiny", weights=str(f))


def test_half_precision_checkpoints_load_as_fp32(tmp_path):
    enc = factory("cradiov3_l")(variant="tiny")
    enc.backbone.to(torch.bfloat16).save_pretrained(tmp_path / "radio_bf16")
    loaded = factory("cradiov3_l")(variant="tiny", weights=str(tmp_path / "radio_bf16"))
    assert all(p.dtype == torch.float32 for p in loaded.parameters())


def test_loaded_model_with_another_dim_warns_and_keeps_the_real_dim(tmp_path):
    """A real checkpoint whose config differs from the table (e.g. RADIO's teacher count) warns."""
    from transformers import RadioConfig, RadioModel

    cfg = RadioConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        patch_size=16,
        num_cls_tokens=2,
        num_registers=1,
        summary_idxs=[0, 1],
        max_img_size=256,
    )
    RadioModel(cfg).save_pretrained(tmp_path / "radio")
    with pytest.warns(UserWarning, match="64-d features, the panel table says 3072"):
        enc = factory("cradiov3_l")(variant="full", weights=str(tmp_path / "radio"))
    assert enc.spec.dim == 64 and enc.spec.variant == "full"
    with torch.no_grad():
        assert enc(torch.rand(1, 3, 64, 64)).shape == (1, 64)
