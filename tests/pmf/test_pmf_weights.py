"""pMF weights: both public layouts load to bitwise the same generator; rdm format round trip;
every bad file is refused in one line; the published sizes and key lists."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from rdm_core.errors import ArtifactError, RecipeError
from rdm_pmf.config import build_config
from rdm_pmf.generator import PMFGenerator
from rdm_pmf.network import Denoiser
from rdm_testing.pmf import MICRO, make_generator

DATA = Path(__file__).parent / "data"


def _draw(gen, n=3, seed=0):
    rng = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, *gen.noise_shape(), generator=rng)
    return noise, gen.sample_conditions(n, rng)


def _fresh(config=None):
    from rdm_pmf.generator import PMFGenerator

    return PMFGenerator(variant="tiny", config={**MICRO, **(config or {})}, precision="fp32")


@pytest.mark.parametrize("fmt", ["public", "public-flax", "rdm"])
def test_saved_layout_loads_to_bitwise_identical_samples(tmp_path, fmt):
    gen = make_generator()
    noise, cond = _draw(gen)
    with torch.no_grad():
        want = gen.generate(noise, cond)
    path = tmp_path / ("w.safetensors" if fmt == "rdm" else "w.pth")
    gen.save_weights(str(path), format=fmt)
    other = _fresh()
    report = other.load_weights(str(path))
    with torch.no_grad():
        got = other.generate(noise, cond)
    assert torch.equal(got, want)
    assert report.missing == [] and report.unexpected == []
    assert report.layout == {"public": "native", "public-flax": "flax-style", "rdm": "rdm"}[fmt]


def test_flax_style_file_has_the_ports_conventions(tmp_path):
    gen = make_generator()
    gen.save_weights(str(tmp_path / "f.pth"), format="public-flax")
    state = torch.load(tmp_path / "f.pth", weights_only=True)["model"]
    keys = set(state)
    assert "net.u_final_layer.linear._flax_linear.weight" in keys
    assert "net.y_embedder.embedding_table._flax_embedding.weight" in keys
    assert "net.u_heads.0.attn.q_proj._flax_linear.weight" in keys
    assert not any(".linear.weight" in k or ".embedding.weight" in k for k in keys)
    assert state["net.time_tokens"].shape == (1, 4, 32) and state["net.pos_embed"].shape[0] == 1
    assert state["net.rope_freqs"].is_complex()


def test_official_base_with_v_head_loads_into_the_v_head_free_model(tmp_path):
    """An official pMF base (flax-style names, (1, n, D) tokens, rope_freqs, a v-head) loads: the
    v-head and the rotary table are reported and ignored, the u output is unchanged."""
    base = make_generator({"disable_v_head": False}, seed=3)
    noise, cond = _draw(base)
    with torch.no_grad():
        want = base.generate(noise, cond)
    base.save_weights(str(tmp_path / "base.pth"), format="public-flax")
    gen = _fresh()
    report = gen.load_weights(str(tmp_path / "base.pth"), format="public")
    assert report.layout == "flax-style" and report.dropped == ["net.rope_freqs"]
    assert report.unexpected and all(k.startswith(("net.v_heads.", "net.v_final_layer.")) for k in report.unexpected)
    assert len(report.unexpected) == 2 * 13 + 3
    with torch.no_grad():
        assert torch.equal(gen.generate(noise, cond), want)


def test_whole_training_checkpoint_uses_its_model_entry(tmp_path):
    gen = make_generator()
    state = gen.trainable_module().state_dict()
    torch.save({"model": state, "model_ema": state, "step": 7, "optimizer": {"lr": 1.0}}, tmp_path / "c.pth")
    other = _fresh()
    assert other.load_weights(str(tmp_path / "c.pth")).loaded == len(state)


def test_missing_keys_are_refused_not_left_random(tmp_path):
    gen = make_generator()
    state = dict(gen.trainable_module().state_dict())
    del state["net.u_heads.1.mlp.w2.linear.weight"]
    torch.save({"model": state}, tmp_path / "partial.pth")
    with pytest.raises(ArtifactError, match="missing 1 .*u_heads.1.mlp.w2"):
        _fresh().load_weights(str(tmp_path / "partial.pth"))


def test_other_configuration_is_refused_with_the_fix(tmp_path):
    make_generator({"hidden_size": 64}).save_weights(str(tmp_path / "wide.pth"), format="public")
    with pytest.raises(ArtifactError, match="shape mismatch"):
        _fresh().load_weights(str(tmp_path / "wide.pth"))
    make_generator({"num_classes": 7}).save_weights(str(tmp_path / "w.safetensors"))
    with pytest.raises(ArtifactError, match="num_classes"):
        _fresh().load_weights(str(tmp_path / "w.safetensors"))


class _Payload:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_pth_is_read_weights_only(tmp_path):
    with open(tmp_path / "evil.pth", "wb") as fh:
        pickle.dump({"model": _Payload()}, fh)
    with pytest.raises(ArtifactError, match="nothing in it was executed"):
        _fresh().load_weights(str(tmp_path / "evil.pth"))
    with pytest.raises(ArtifactError, match="do not exist"):
        _fresh().load_weights(str(tmp_path / "absent.pth"))
    with pytest.raises(RecipeError, match="format"):
        _fresh().load_weights(str(tmp_path / "absent.pth"), format="diffusers")


def _key_lines(config):
    with torch.device("meta"):
        model = Denoiser(config)
    return [f"{k}\t{tuple(v.shape)}\t{v.dtype}" for k, v in model.state_dict().items()], model


def test_h_config_has_the_published_parameter_count_and_keys():
    lines, model = _key_lines(build_config("pmf-h"))
    assert sum(p.numel() for p in model.parameters()) == 955_508_992
    assert lines == (DATA / "pmf_h_keys.txt").read_text().splitlines()  # keys, order and shapes


def test_tiny_variant_is_pmf_t_at_64px_with_8_classes():
    lines, model = _key_lines(build_config(variant="tiny"))
    assert sum(p.numel() for p in model.parameters()) == 27_348_352
    assert lines == (DATA / "pmf_t_keys.txt").read_text().splitlines()


@pytest.mark.parametrize(
    "preset,config,count",
    [
        ("pmf-h", {"disable_v_head": False}, 1_113_904_640),
        ("pmf-h", {"disable_v_head": False, "rope_2d": False, "learned_pe": False}, 1_113_551_360),
        (
            "pmf-t",
            {"img_size": 64, "num_classes": 8, "disable_v_head": False, "rope_2d": False, "learned_pe": False},
            52_903_552,
        ),
        (
            "pmf-t",
            {"img_size": 32, "num_classes": 4, "disable_v_head": False, "rope_2d": False, "learned_pe": False},
            52_901_504,
        ),
        ("pmf-t", {}, 27_979_136),
    ],
)
def test_other_published_configurations(preset, config, count):
    _, model = _key_lines(build_config(preset, overrides=config))
    assert sum(p.numel() for p in model.parameters()) == count


def test_config_mapping_is_checked():
    with pytest.raises(RecipeError, match="Did you mean 'hidden_size'"):
        build_config("pmf-h", overrides={"hiden_size": 10})
    with pytest.raises(RecipeError, match="preset"):
        build_config("pmf-xxl")
    with pytest.raises(RecipeError, match="true or false"):
        build_config("pmf-h", overrides={"rope_2d": "yes"})
    with pytest.raises(RecipeError, match="multiple of patch_size|not a multiple"):
        build_config("pmf-h", overrides={"img_size": 250})
    assert build_config("pMF_XL").hidden_size == 1024


def test_plan_stats_come_from_the_meta_model():
    stats = PMFGenerator.plan_stats(variant="tiny")
    assert stats["params"] == 27_348_352 and stats["tokens"] == 36 and stats["blocks"] == 8
    # FLOPs: each linear map costs 2 x in x out per token; the 8 blocks dominate
    per_block_linear = 2 * 36 * (4 * 512 * 512 + 3 * 512 * 1365)
    assert stats["flops_per_sample"] > 8 * per_block_linear
