"""BFL <-> diffusers conversion and every student-weights format, strict loads only."""

from __future__ import annotations

import pytest
import torch

from rdm_core.errors import ArtifactError, RdmError


def _perturb(gen, seed=5):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in gen.transformer.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.01)
    return {k: v.clone() for k, v in gen.transformer.state_dict().items()}


def _fresh(klein_dir):
    from rdm_flux2.generator import Flux2KleinGenerator

    return Flux2KleinGenerator(model_dir=str(klein_dir), variant="tiny", resolution=64, vae_dtype="fp32")


def _same(state, module):
    now = module.state_dict()
    return set(now) == set(state) and all(torch.equal(now[k], state[k]) for k in state)


def test_bfl_layout_matches_hand_checked_names(klein):
    from rdm_flux2.convert import diffusers_to_bfl

    sd = klein.transformer.state_dict()
    bfl = diffusers_to_bfl(sd)
    # fused QKV is q, k, v stacked along the output dim
    q, k, v = (sd[f"transformer_blocks.0.attn.{n}.weight"] for n in ("to_q", "to_k", "to_v"))
    assert torch.equal(bfl["double_blocks.0.img_attn.qkv.weight"], torch.cat([q, k, v]))
    aq, ak, av = (sd[f"transformer_blocks.0.attn.add_{n}_proj.weight"] for n in "qkv")
    assert torch.equal(bfl["double_blocks.0.txt_attn.qkv.weight"], torch.cat([aq, ak, av]))
    # final modulation: diffusers (scale, shift) -> BFL (shift, scale)
    scale, shift = sd["norm_out.linear.weight"].chunk(2)
    assert torch.equal(bfl["final_layer.adaLN_modulation.1.weight"], torch.cat([shift, scale]))
    assert torch.equal(
        bfl["single_blocks.1.norm.query_norm.scale"], sd["single_transformer_blocks.1.attn.norm_q.weight"]
    )
    assert "guidance_in.in_layer.weight" not in bfl  # klein has no guidance embedding


def test_saved_bfl_file_reloads_strictly_into_diffusers(klein, klein_dir, tmp_path):
    from diffusers import Flux2Transformer2DModel
    from safetensors.torch import load_file

    from rdm_flux2.convert import bfl_to_diffusers

    state = _perturb(klein)
    klein.save_weights(str(tmp_path / "student-bfl.safetensors"), format="bfl")
    raw = load_file(str(tmp_path / "student-bfl.safetensors"))
    assert all(
        k.split(".")[0]
        in {
            "img_in",
            "txt_in",
            "time_in",
            "double_blocks",
            "single_blocks",
            "final_layer",
            "double_stream_modulation_img",
            "double_stream_modulation_txt",
            "single_stream_modulation",
        }
        for k in raw
    )
    fresh = Flux2Transformer2DModel.from_pretrained(str(klein_dir), subfolder="transformer", local_files_only=True)
    result = fresh.load_state_dict(bfl_to_diffusers(raw), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert _same(state, fresh)


@pytest.mark.parametrize(
    "fmt,name",
    [
        ("rdm", "model.safetensors"),
        ("bfl", "flux-2-klein-tiny.safetensors"),
        ("diffusers", "student.safetensors"),
        ("diffusers", "student_dir"),
    ],
)
def test_round_trip_each_format(klein, klein_dir, tmp_path, fmt, name):
    state = _perturb(klein)
    klein.save_weights(str(tmp_path / name), format=fmt)
    for load_fmt in ("auto", fmt):
        other = _fresh(klein_dir)
        assert not _same(state, other.transformer)
        other.load_weights(str(tmp_path / name), format=load_fmt)
        assert _same(state, other.transformer)


def test_released_pth_with_model_key_loads(klein, klein_dir, tmp_path):
    """The reference release's .pth: {"model": {"model.<bfl name>": tensor}, "step": 180}."""
    from rdm_flux2.convert import diffusers_to_bfl

    state = _perturb(klein)
    bfl = {f"model.{k}": v for k, v in diffusers_to_bfl(state).items()}
    torch.save({"model": bfl, "step": 180}, tmp_path / "flux2_klein_1step_rdm_s180.pth")
    other = _fresh(klein_dir)
    other.load_weights(str(tmp_path / "flux2_klein_1step_rdm_s180.pth"))
    assert _same(state, other.transformer)


def test_diffusers_folder_save_is_loadable_by_from_pretrained(klein, tmp_path):
    from diffusers import Flux2Transformer2DModel

    state = _perturb(klein)
    klein.save_weights(str(tmp_path / "transformer"), format="diffusers")
    loaded = Flux2Transformer2DModel.from_pretrained(str(tmp_path / "transformer"), local_files_only=True)
    assert _same(state, loaded)


def test_bf16_save_like_the_release(klein, tmp_path):
    from safetensors.torch import load_file

    klein.save_weights(str(tmp_path / "m.safetensors"), format="rdm", dtype="bf16")
    raw = load_file(str(tmp_path / "m.safetensors"))
    assert all(k.startswith("model.") and v.dtype == torch.bfloat16 for k, v in raw.items())


def test_weight_errors(klein, tmp_path):
    from rdm_core.artifacts import save_tensors
    from rdm_core.errors import WeightsNotFoundError

    with pytest.raises(WeightsNotFoundError):
        klein.load_weights(str(tmp_path / "missing.safetensors"))
    with pytest.raises(RdmError, match="unknown weights format"):
        klein.load_weights(str(tmp_path), format="ckpt")
    sd = klein.transformer.state_dict()
    partial = {k: v for k, v in sd.items() if not k.startswith("single_transformer_blocks.1.")}
    save_tensors(tmp_path / "partial.safetensors", partial)
    with pytest.raises(ArtifactError, match="missing"):
        klein.load_weights(str(tmp_path / "partial.safetensors"))
    save_tensors(tmp_path / "other.safetensors", {"encoder.weight": torch.zeros(2)})
    with pytest.raises(ArtifactError, match="layout"):
        klein.load_weights(str(tmp_path / "other.safetensors"))
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(ArtifactError, match="state dict"):
        klein.load_weights(str(tmp_path / "list.pth"))
