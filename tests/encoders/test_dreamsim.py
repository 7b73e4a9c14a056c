"""DreamSim composition (brute-force float64 check) and the official-checkpoint converter."""

from __future__ import annotations

import json
import zipfile

import pytest
import torch

from rdm_core.artifacts import read_meta, save_tensors
from rdm_core.errors import ArtifactError
from rdm_encoders.dreamsim import DreamSimEncoder, build_branches, build_dreamsim
from rdm_encoders.dreamsim_convert import convert_dreamsim, main
from rdm_encoders.specs import CLIP_MEAN, CLIP_STD, DREAMSIM, IMAGENET_MEAN, IMAGENET_STD

R, ALPHA = 4, 0.5


def _norm(x, mean, std):
    return (x - torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)) / torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)


def _vit_tokens(m, x):
    """Brute force through a timm ViT: patch embed, prefix + position, pre-norm, blocks."""
    t = m.patch_embed(x)
    t = torch.cat([m.cls_token.expand(t.shape[0], -1, -1), t], dim=1) + m.pos_embed
    t = m.norm_pre(t)
    for blk in m.blocks:
        t = blk(t)
    return t


def test_embedding_matches_float64_brute_force():
    torch.manual_seed(0)
    enc = build_dreamsim(variant="tiny")
    x = torch.rand(3, 3, 256, 256)
    with torch.no_grad():
        got = enc.embed(enc.preprocess(x)).double()
        branches = {k: m.double() for k, m in build_branches("tiny").items()}
        for k, m in branches.items():
            m.load_state_dict(enc.backbone[k].state_dict())
        x224 = torch.nn.functional.interpolate(
            x.double(), size=(224, 224), mode="bicubic", align_corners=False, antialias=True
        )
        dino_cls = _vit_tokens(branches["dino"], _norm(x224, IMAGENET_MEAN, IMAGENET_STD))[:, 0]  # no final norm
        xc = _norm(x224, CLIP_MEAN, CLIP_STD)
        embs = []
        for k in ("clip", "open_clip"):
            m = branches[k]
            embs.append(m.head(m.norm(_vit_tokens(m, xc))[:, 0]))  # ln_post(CLS) @ proj
        e = torch.cat([dino_cls, *embs], dim=1)
        e = e - e.mean(dim=1, keepdim=True)
        want = e / e.norm(dim=1, keepdim=True)
    assert got.shape == (3, 128)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got.norm(dim=1), torch.ones(3, dtype=torch.float64))


# -- converter on synthetic official-format files -----------------------------------------------


def _official_files(root, as_zip=False):
    """Write files laid out like dreamsim's ensemble release from random tiny timm branches.

    Returns the expected merged timm state dicts per branch and the DINO weights path.
    """
    torch.manual_seed(1)
    branches = build_branches("tiny")
    expected = {k: {n: v.clone() for n, v in m.state_dict().items()} for k, m in branches.items()}
    ckpt = root / "dreamsim_ensemble"
    (ckpt / "ensemble_lora").mkdir(parents=True)
    for k, fname in (("clip", "clip_vitb16_pretrain.pth.tar"), ("open_clip", "open_clip_vitb16_pretrain.pth.tar")):
        sd = expected[k]
        sd["head.bias"] = torch.zeros_like(sd["head.bias"])  # dreamsim has proj only: no bias
        official = {
            ("pos_drop." + n[len("norm_pre.") :] if n.startswith("norm_pre.") else n): v
            for n, v in sd.items()
            if not n.startswith("head.")
        }
        official["proj"] = sd["head.weight"].t().contiguous()
        official["patch_embed.proj.bias"] = torch.zeros(sd["patch_embed.proj.weight"].shape[0])
        torch.save(official, ckpt / fname)  # the release's .pth.tar format (read with weights_only)
    adapter = {}
    g = torch.Generator().manual_seed(2)
    for idx, k in enumerate(("dino", "clip", "open_clip")):
        for j in range(2):
            key = f"blocks.{j}.attn.qkv"
            w = expected[k][key + ".weight"]
            a = torch.randn(R, w.shape[1], generator=g)
            b = torch.randn(w.shape[0], R, generator=g)
            base = f"base_model.model.extractor_list.{idx}.model.{key}"
            adapter[f"{base}.lora_A.weight"], adapter[f"{base}.lora_B.weight"] = a, b
            expected[k][key + ".weight"] = (w.double() + (ALPHA / R) * (b.double() @ a.double())).float()
    save_tensors(ckpt / "ensemble_lora" / "adapter_model.safetensors", adapter)
    (ckpt / "ensemble_lora" / "adapter_config.json").write_text(
        json.dumps({"r": R, "lora_alpha": ALPHA, "target_modules": ["qkv"], "peft_type": "LORA"})
    )
    dino = root / "dino.safetensors"
    save_tensors(dino, expected_dino_base(branches))
    if as_zip:
        zpath = root / "dreamsim_ensemble_checkpoint.zip"
        with zipfile.ZipFile(zpath, "w") as z:
            for f in ckpt.rglob("*"):
                if f.is_file():
                    z.write(f, f.relative_to(root))
        return zpath, dino, expected
    return ckpt, dino, expected


def expected_dino_base(branches):
    return {n: v.clone() for n, v in branches["dino"].state_dict().items()}


@pytest.mark.parametrize("as_zip", [False, True])
def test_converter_merges_lora_and_maps_keys(tmp_path, as_zip):
    src, dino, expected = _official_files(tmp_path, as_zip)
    out = convert_dreamsim(src, dino, tmp_path / "out.safetensors")
    meta = read_meta(out)
    assert meta["kind"] == "dreamsim_ensemble" and meta["lora_modules_merged"] == 6
    enc = build_dreamsim(variant="tiny", weights=str(out))
    for k, m in enc.backbone.items():
        got = m.state_dict()
        assert set(got) == set(expected[k])
        for n, v in expected[k].items():
            torch.testing.assert_close(got[n], v, rtol=0, atol=1e-6, msg=f"{k}.{n}")
    ref_branches = build_branches("tiny")
    for k, m in ref_branches.items():
        m.load_state_dict(expected[k])
    ref = DreamSimEncoder(DREAMSIM.with_variant("tiny", 128), ref_branches)
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(enc(x), ref(x))


def test_converter_cli_and_errors(tmp_path, capsys):
    src, dino, _ = _official_files(tmp_path)
    assert main([str(src), str(dino), "-o", str(tmp_path / "cli.safetensors")]) == 0
    assert (tmp_path / "cli.safetensors").exists()
    assert main([str(tmp_path / "missing"), str(dino)]) == 2
    assert "does not exist" in capsys.readouterr().err
    # a non-zero CLIP patch bias cannot live in timm's CLIP: refuse instead of dropping it
    f = src / "clip_vitb16_pretrain.pth.tar"
    sd = torch.load(f, weights_only=True)
    sd["patch_embed.proj.bias"] += 1.0
    torch.save(sd, f)
    with pytest.raises(ArtifactError, match="patch_embed.proj.bias"):
        convert_dreamsim(src, dino, tmp_path / "bad.safetensors")
    sd["patch_embed.proj.bias"].zero_()
    torch.save(sd, f)
    (src / "ensemble_lora" / "adapter_config.json").unlink()
    with pytest.raises(ArtifactError, match="adapter_config.json"):
        convert_dreamsim(src, dino, tmp_path / "bad.safetensors")


def test_fetched_zip_is_converted_on_first_build(tmp_path, empty_offline):
    """`rdm encoders fetch dreamsim` leaves the zip + DINO in the caches; the build converts once."""
    zpath, dino, expected = _official_files(tmp_path, as_zip=True)
    target = empty_offline / "torch" / "hub" / "checkpoints"
    target.mkdir(parents=True)
    zpath.rename(target / zpath.name)
    # DINO in the HF cache layout, as `fetch` puts it
    repo = empty_offline / "hf" / "hub" / "models--timm--vit_base_patch16_224.dino"
    (repo / "snapshots" / "r1").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("r1")
    dino.rename(repo / "snapshots" / "r1" / "model.safetensors")
    enc = build_dreamsim(variant="tiny", pretrained=True)
    assert (target / "rdm_dreamsim_ensemble.safetensors").exists()
    torch.testing.assert_close(
        enc.backbone["clip"].state_dict()["blocks.1.attn.qkv.weight"],
        expected["clip"]["blocks.1.attn.qkv.weight"],
        rtol=0,
        atol=1e-6,
    )
