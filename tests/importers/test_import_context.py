"""rdm context import: the authors' Qwen3 context pool (+ _meta.json) and tau table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rdm_core.artifacts import read_meta
from rdm_core.cli.main import main
from rdm_core.prompts import read_prompts
from rdm_flux2.context_pool import ContextPool
from rdm_references.text import load_text_table

RECIPE = "recipes/flux2-klein-tiny.yaml"
PROMPTS = "plugins/rdm_flux2/data/tiny_prompts.txt"
ROOT = Path(__file__).resolve().parents[2]


def _authors_pool(path: Path, n: int, ctx_len: int = 48, dim: int = 96, meta: dict | None = None) -> np.ndarray:
    """A float16 pool written like the authors' builder (memmap .npy + <stem>_meta.json)."""
    rng = np.random.default_rng(0)
    data = rng.normal(size=(n, ctx_len, dim)).astype(np.float16)
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=data.shape)
    arr[:] = data
    arr.flush()
    sidecar = meta or {"n": n, "ctx_len": ctx_len, "dim": dim, "variant": "Qwen/Qwen3-4B-FP8"}
    path.with_name(path.stem + "_meta.json").write_text(json.dumps(sidecar))
    return data


def _authors_tau(path: Path, n: int, dim: int = 1152) -> np.ndarray:
    tau = np.random.default_rng(1).normal(size=(n, dim)).astype(np.float32)
    tau /= np.linalg.norm(tau, axis=1, keepdims=True)
    np.save(path, tau)
    return tau


def _run(tmp_path, *extra: str) -> int:
    return main(
        [
            "context",
            "import",
            str(ROOT / RECIPE),
            *extra,
            "--prompts",
            str(ROOT / PROMPTS),
            "--pool-out",
            str(tmp_path / "rdm" / "ctx.npy"),
            "--tau-out",
            str(tmp_path / "rdm" / "tau.safetensors"),
        ]
    )


def test_pool_and_tau_import_and_feed_the_generator(tmp_path, capsys):
    n = len(read_prompts(ROOT / PROMPTS))
    data = _authors_pool(tmp_path / "qwen3_ctx_coco.npy", n)
    tau = _authors_tau(tmp_path / "siglip2_text_coco.npy", n)
    assert _run(tmp_path, str(tmp_path / "qwen3_ctx_coco.npy"), "--tau", str(tmp_path / "siglip2_text_coco.npy")) == 0
    assert "encoder_fingerprint" in capsys.readouterr().err
    pool = ContextPool(tmp_path / "rdm" / "ctx.npy", expect={"ctx_len": 48, "dim": 96})
    assert pool.meta["source_meta"]["variant"] == "Qwen/Qwen3-4B-FP8"
    assert pool.meta["imported_from"]["file"] == "qwen3_ctx_coco.npy"
    assert pool.prompts() == read_prompts(ROOT / PROMPTS)
    rows = torch.tensor([3, 0, 2])
    torch.testing.assert_close(pool.rows(rows), torch.from_numpy(data[[3, 0, 2]]).float())
    table = load_text_table(tmp_path / "rdm" / "tau.safetensors", read_prompts(ROOT / PROMPTS))
    torch.testing.assert_close(table, torch.from_numpy(tau))
    assert read_meta(tmp_path / "rdm" / "tau.safetensors")["text_encoder"] == "siglip2_text"

    from rdm_flux2.generator import Flux2KleinGenerator

    gen = Flux2KleinGenerator(
        variant="tiny", resolution=64, context_pool=str(tmp_path / "rdm" / "ctx.npy"), prompts=str(ROOT / PROMPTS)
    )
    cond = gen.sample_conditions(4, torch.Generator().manual_seed(0))
    want = torch.from_numpy(data[cond.caption_ids.numpy()]).float()
    torch.testing.assert_close(cond.inputs, want)


@pytest.mark.parametrize(
    "case, message",
    [
        ("ctx_len", "ctx_len=48"),
        ("rows", "prompt file has"),
        ("sidecar", "no sidecar"),
        ("sidecar_disagrees", "says (n, ctx_len, dim)"),
        ("width", "96"),
    ],
)
def test_pool_that_does_not_fit_the_recipe_is_refused(tmp_path, capsys, case, message):
    n = len(read_prompts(ROOT / PROMPTS))
    src = tmp_path / "ctx.npy"
    if case == "ctx_len":
        _authors_pool(src, n, ctx_len=32)
    elif case == "rows":
        _authors_pool(src, n + 1)
    elif case == "width":
        _authors_pool(src, n, dim=64)
    else:
        _authors_pool(src, n, meta={"n": n + 5, "ctx_len": 48, "dim": 96} if case == "sidecar_disagrees" else None)
        if case == "sidecar":
            (tmp_path / "ctx_meta.json").unlink()
    assert _run(tmp_path, str(src)) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "rdm" / "ctx.npy").exists()


def test_tau_that_is_not_unit_norm_is_refused(tmp_path, capsys):
    n = len(read_prompts(ROOT / PROMPTS))
    np.save(tmp_path / "tau.npy", np.full((n, 8), 3.0, dtype=np.float32))
    assert _run(tmp_path, "--tau", str(tmp_path / "tau.npy")) == 2
    assert "not L2-normalised" in capsys.readouterr().err
