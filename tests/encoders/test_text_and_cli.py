"""SigLIP2 text tower (tau) and the `rdm encoders` commands for the panel."""

from __future__ import annotations

import json

import pytest
import torch

from rdm_core.artifacts import save_tensors
from rdm_core.cli.main import main
from rdm_core.errors import WeightsNotFoundError
from rdm_encoders.specs import PANEL
from rdm_encoders.text import HUB_ID, TINY_EMBED_DIM, build_text_encoder, text_tower

PROMPTS = ["a photo of a cat", "a red car parked on the street", "abstract painting", "a photo of a cat"]


def test_tiny_text_encoder_is_unit_norm_deterministic_and_batched():
    enc = build_text_encoder("tiny", batch_size=3)
    feats = enc.encode(PROMPTS)
    assert feats.shape == (4, TINY_EMBED_DIM) and feats.dtype == torch.float32
    torch.testing.assert_close(feats.norm(dim=1), torch.ones(4))
    torch.testing.assert_close(feats[0], feats[3])  # same prompt, same row (across batches too)
    assert not torch.allclose(feats[0], feats[1])
    assert not any(p.requires_grad for p in enc.parameters())
    assert enc.encode([]).shape == (0, TINY_EMBED_DIM)


def test_text_encoder_runs_bf16_and_normalises_in_fp32():
    enc = build_text_encoder("tiny")
    ids = enc.tokenizer(PROMPTS[:2])
    with torch.no_grad():
        ref = torch.nn.functional.normalize(enc.tower(ids).double(), dim=-1)  # fp32 weights, no autocast
    got = enc.encode(PROMPTS[:2]).double()
    rel = (got - ref).norm() / ref.norm()
    assert 0 < rel < 0.05


@pytest.mark.parametrize("prefixed", [True, False])
def test_text_weights_roundtrip_from_local_file(tmp_path, prefixed):
    enc = build_text_encoder("tiny")
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(0.05 * torch.randn(p.shape))
    state = enc.tower.state_dict()
    if prefixed:  # a full open_clip state dict: the text tower lives under "text."
        state = {f"text.{k}": v for k, v in state.items()} | {"visual.dummy": torch.zeros(1)}
    save_tensors(tmp_path / "t.safetensors", state)
    loaded = build_text_encoder("tiny", weights=str(tmp_path / "t.safetensors"))
    torch.testing.assert_close(loaded.encode(PROMPTS), enc.encode(PROMPTS), rtol=0, atol=0)


def test_text_full_offline_miss_and_wrong_weights(tmp_path, empty_offline):
    with pytest.raises(WeightsNotFoundError, match=HUB_ID):
        build_text_encoder("full")
    save_tensors(tmp_path / "w.safetensors", {"text.foo": torch.zeros(1)})
    with pytest.raises(WeightsNotFoundError, match="does not fit"):
        build_text_encoder("tiny", weights=str(tmp_path / "w.safetensors"))


def test_full_text_tower_config_is_siglip2_so400m():
    import open_clip

    cfg = open_clip.get_model_config("ViT-SO400M-16-SigLIP2-256")
    assert cfg["embed_dim"] == 1152
    with torch.device("meta"):
        tower, text_cfg = text_tower("full")
    assert text_cfg["width"] == 1152 and text_cfg["layers"] == 27
    assert tower.text_projection.out_features == 1152


# -- CLI ----------------------------------------------------------------------------------------


def _json(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_rdm_encoders_lists_all_14(capsys):
    rows = {r["name"]: r for r in _json(capsys, "encoders", "--json")}
    panel = {s.name for s in PANEL}
    assert panel <= set(rows)
    assert all(rows[n]["plugin"] == "encoders" for n in panel)
    held = {r["name"] for r in _json(capsys, "encoders", "--split", "held_out", "--json")}
    assert {"dinov2", "siglip_v1", "cradiov3_l", "flux_vae"} <= held and "mae" not in held


def test_rdm_encoders_info_shows_weight_sources(capsys):
    info = _json(capsys, "encoders", "info", "inception", "dreamsim", "flux_vae", "--json")
    assert info["inception"]["weights"]["url"].endswith("weights-inception-2015-12-05-6726825d.pth")
    assert info["inception"]["precision"] == "fp32"
    assert "dreamsim_convert" in info["dreamsim"]["weights"]["note"]
    assert info["flux_vae"]["weights"]["subfolder"] == "vae"


def test_rdm_encoders_fetch_offline_is_one_clear_error(empty_offline, capsys):
    assert main(["encoders", "fetch", "mae"]) == 2
    err = capsys.readouterr().err
    assert "timm/vit_large_patch16_224.mae" in err and "rdm encoders fetch mae" in err


def test_text_encoder_by_recipe_name():
    from rdm_core.errors import UnknownNameError
    from rdm_encoders.text import text_encoder

    assert text_encoder("siglip2_text", variant="tiny").encode(["x"]).shape == (1, TINY_EMBED_DIM)
    with pytest.raises(UnknownNameError, match="siglip2_text"):
        text_encoder("siglip_text", variant="tiny")
