"""Per-encoder contract on the tiny variants: shapes, frozen params, gradients, bf16, pooling traps."""

from __future__ import annotations

import pytest
import torch

from rdm_encoders.specs import PANEL, SPECS

NAMES = [s.name for s in PANEL]


def _images(b=2, size=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, size, size, generator=g)


# -- registry and specs ------------------------------------------------------------------------


def test_registry_has_all_14_in_panel_order_with_specs():
    from rdm_core.plugins import PluginHost

    host = PluginHost(discover=False)
    import rdm_encoders.hooks as hooks

    host.register_module(hooks, "encoders")
    reg = host.registry("encoders")
    assert len(reg) == 14 and set(reg.names()) == set(NAMES)
    assert list(reg._entries) == NAMES  # registration order is panel order
    assert [s.name for s in PANEL if s.split == "train"] == [
        "inception",
        "convnext",
        "mae",
        "clip",
        "dinov3_l",
        "pe_core_l",
        "siglip2",
        "aimv2_huge",
        "webssl_dino_1b",
        "dreamsim",
    ]
    assert [s.name for s in PANEL if s.split == "held_out"] == ["dinov2", "siglip_v1", "cradiov3_l", "flux_vae"]
    dims = {s.name: s.dim for s in PANEL}
    assert dims == {
        "inception": 2048,
        "convnext": 1024,
        "mae": 1024,
        "clip": 1024,
        "dinov3_l": 1024,
        "pe_core_l": 1024,
        "siglip2": 1152,
        "aimv2_huge": 1536,
        "webssl_dino_1b": 1536,
        "dreamsim": 1792,
        "dinov2": 1024,
        "siglip_v1": 1152,
        "cradiov3_l": 3072,
        "flux_vae": 1024,
    }
    assert {s.name for s in PANEL if s.precision == "fp32"} == {"inception"}
    res = {s.name: s.resolution for s in PANEL}
    assert res["clip"] == 256 and res["dinov2"] == 256 and res["siglip_v1"] == 384 and res["inception"] == 299


def test_hooks_module_imports_nothing_heavy():
    import subprocess
    import sys

    code = (
        "import sys, rdm_encoders.hooks, rdm_encoders.specs; "
        "bad=[m for m in ('torch','timm','transformers','diffusers','open_clip') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


@pytest.mark.parametrize("name", [s.name for s in PANEL if s.library == "timm" and s.name != "dreamsim"])
def test_timm_spec_matches_timm_pretrained_cfg(name):
    from timm.models import get_pretrained_cfg

    spec, cfg = SPECS[name], get_pretrained_cfg(SPECS[name].model_id)
    pre = spec.preprocessing
    assert tuple(pre.mean) == tuple(cfg.mean) and tuple(pre.std) == tuple(cfg.std)
    assert pre.interpolation == cfg.interpolation
    assert spec.weights.hub_id == cfg.hf_hub_id.rstrip("/") and spec.license == cfg.license


def test_non_timm_specs_match_library_configs():
    from timm.models import get_pretrained_cfg
    from transformers import RadioConfig
    from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    web = SPECS["webssl_dino_1b"].preprocessing
    assert web.mean == tuple(IMAGENET_DEFAULT_MEAN) and web.std == tuple(IMAGENET_DEFAULT_STD)
    # RADIO normalises inside with its config's CLIP mean/std, so the spec must not normalise again.
    radio = RadioConfig()
    assert SPECS["cradiov3_l"].preprocessing.mean is None
    assert tuple(radio.norm_mean) == get_pretrained_cfg("vit_large_patch14_clip_224.openai").mean
    assert SPECS["flux_vae"].preprocessing.value_range == (-1.0, 1.0)
    assert SPECS["flux_vae"].preprocessing.interpolation == "bilinear"
    inc = SPECS["inception"]
    assert inc.preprocessing.interpolation == "tf1_bilinear" and inc.weights.url.endswith(inc.weights.files[0])


# -- the per-encoder contract on tiny variants -------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_tiny_contract(name, tiny):
    enc = tiny(name)
    assert enc.spec.variant == "tiny" and enc.spec.name == name
    x = _images().requires_grad_(True)
    y = enc(x)
    assert y.shape == (2, enc.spec.dim) and y.dtype == torch.float32
    assert torch.isfinite(y).all()
    # frozen: nothing trainable, stays in eval mode even when asked to train
    assert not any(p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.training and not any(m.training for m in enc.modules())
    # gradient reaches the input (random projection: a plain sum of a LayerNorm'd CLS is constant)
    w = torch.randn(y.shape, generator=torch.Generator().manual_seed(1))
    (y * w).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in enc.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_precision_policy_bf16_path_is_finite_and_close_to_fp32(name, tiny):
    enc = tiny(name)
    x = _images(seed=3)
    with torch.no_grad():
        y = enc(x)  # the spec's policy: bf16 autocast, or fp32 for inception
        ref = enc.embed(enc.preprocess(x)).float()  # no autocast at all
    assert torch.isfinite(y).all()
    if enc.spec.precision == "fp32":
        assert torch.equal(y, ref)
    else:
        rel = (y - ref).norm() / ref.norm()
        assert 0 < rel < 0.1, rel  # bf16 really ran (not identical) and stayed close


@pytest.mark.parametrize("name", NAMES)
def test_fp64_runs_compute_the_whole_encoder_in_float64(name, tiny):
    """``train.precision: fp64`` casts the frozen encoders to float64: inputs and features follow."""
    enc = tiny(name)
    x = _images(seed=4)
    with torch.no_grad():
        ref = enc.embed(enc.preprocess(x)).double()  # float32, no autocast
        enc.to(torch.float64)
        try:
            y = enc(x)  # float32 images, as a bf16/fp32 caller would pass them
            y64 = enc(x.double())
        finally:
            enc.to(torch.float32)
    assert y.dtype == y64.dtype == torch.float64 and torch.equal(y, y64)
    rel = (y - ref).norm() / ref.norm()
    assert rel < 1e-3, rel  # the same features, at a finer rounding (no bf16 autocast inside)


def test_inception_autocast_disabled_even_inside_outer_autocast(tiny):
    enc = tiny("inception")
    x = _images(seed=4)
    with torch.no_grad():
        plain = enc(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            inside = enc(x)
    assert torch.equal(plain, inside)


# -- pooling traps (docs/encoders.md: pooling is explicit per encoder) ----------------------------


def _ff(enc, x):
    m = enc.backbone
    return m, m.forward_features(enc.preprocess(x))


def test_mae_average_excludes_the_cls_token(tiny):
    enc = tiny("mae")
    x = _images(seed=5)
    with torch.no_grad():
        m, ff = _ff(enc, x)
        pooled = enc.embed(enc.preprocess(x))
    assert m.num_prefix_tokens == 1
    torch.testing.assert_close(pooled, ff[:, 1:].mean(1))
    assert not torch.allclose(pooled, ff.mean(1), atol=1e-4)
    assert not torch.allclose(pooled, m.forward_head(ff, pre_logits=True), atol=1e-4)  # timm default: CLS


def test_convnext_mean_has_no_head_norm(tiny):
    enc = tiny("convnext")
    x = _images(seed=6)
    with torch.no_grad():
        m, ff = _ff(enc, x)
        pooled = enc.embed(enc.preprocess(x))
    assert ff.dim() == 4
    torch.testing.assert_close(pooled, ff.mean((2, 3)))
    assert not torch.allclose(pooled, m.forward_head(ff, pre_logits=True), atol=1e-3)


@pytest.mark.parametrize("name", ["dinov3_l", "dinov2", "clip"])
def test_cls_encoders_take_token_zero(name, tiny):
    enc = tiny(name)
    x = _images(seed=7)
    with torch.no_grad():
        m, ff = _ff(enc, x)
        pooled = enc.embed(enc.preprocess(x))
    torch.testing.assert_close(pooled, ff[:, 0])
    if name == "dinov3_l":  # timm's default head averages: the trap
        assert m.num_prefix_tokens == 5
        assert not torch.allclose(pooled, m.forward_head(ff, pre_logits=True), atol=1e-3)


@pytest.mark.parametrize("name", ["pe_core_l", "siglip2", "siglip_v1", "aimv2_huge"])
def test_heads_equal_to_forward_head_where_the_release_agrees(name, tiny):
    enc = tiny(name)
    x = _images(seed=8)
    with torch.no_grad():
        m, ff = _ff(enc, x)
        torch.testing.assert_close(enc.embed(enc.preprocess(x)), m.forward_head(ff, pre_logits=True))


@pytest.mark.parametrize("name,tokens", [("clip", 1 + 19 * 19), ("dinov2", 1 + 19 * 19), ("siglip_v1", 28 * 28)])
def test_dynamic_padding_grids(name, tokens, tiny):
    enc = tiny(name)
    with torch.no_grad():
        _, ff = _ff(enc, _images(b=1))
    assert ff.shape[1] == tokens


def test_flux_vae_patch_mean_matches_manual_pool(tiny):
    enc = tiny("flux_vae")
    x = _images(seed=9)
    with torch.no_grad():
        lat = enc.backbone.encode(x * 2 - 1).latent_dist.mean.double()
        got = enc.embed(enc.preprocess(x)).double()
    assert lat.shape[1:] == (16, 32, 32)
    want = torch.zeros(2, 16, 8, 8, dtype=torch.float64)
    for i in range(8):
        for j in range(8):
            want[:, :, i, j] = lat[:, :, 4 * i : 4 * i + 4, 4 * j : 4 * j + 4].mean(dim=(2, 3))
    torch.testing.assert_close(got, want.flatten(1), rtol=1e-5, atol=1e-6)


def test_radio_summary_is_flattened_cls_tokens_without_outside_normalisation(tiny):
    enc = tiny("cradiov3_l")
    x = _images(seed=10)
    with torch.no_grad():
        out = enc.backbone(pixel_values=x)
        got = enc.embed(enc.preprocess(x))
    torch.testing.assert_close(got, out.last_hidden_state[:, :3].flatten(1))


def test_wrong_input_shape_is_a_clear_error(tiny):
    from rdm_core.errors import ShapeError

    with pytest.raises(ShapeError, match=r"\(B,3,H,W\)"):
        tiny("mae")(torch.rand(2, 1, 32, 32))


def test_unknown_variant_is_a_recipe_error():
    from rdm_core.errors import RecipeError
    from rdm_encoders.timm_encoders import build_mae

    with pytest.raises(RecipeError, match="variant"):
        build_mae(variant="small")
