"""``rdm context import``: the authors' Qwen3 context pool and SigLIP2 tau table -> rdm's files.

The authors' pool is already the layout rdm reads (a float16 ``.npy`` (N, ctx_len, dim) beside
``<stem>_meta.json``), so the array is kept byte for byte (hard-linked, or copied across file
systems) and only the meta is rewritten with rdm's keys, the authors' meta under
``source_meta`` and ``imported_from``. The tau table (N, 1152) becomes a safetensors text table
row-aligned with the generator's prompts. Both are checked against the recipe before anything
is written: the context length, the context width of the transformer, and the row count of the
generator's prompt file.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from rdm_core import __version__ as rdm_version
from rdm_core.artifacts import atomic_path, read_json, save_tensors, write_json
from rdm_core.errors import ArtifactError, RecipeError, ShapeError
from rdm_core.safe_read import read_npy, source_record


def expected_ctx_dim(generator_args: dict[str, Any]) -> int:
    """The context width the recipe's klein transformer takes (without loading any weights)."""
    from rdm_flux2 import configs

    model_dir = generator_args.get("model_dir")
    if model_dir:
        cfg = Path(model_dir) / "transformer" / "config.json"
        if cfg.is_file():
            return int(read_json(cfg)["joint_attention_dim"])
    if generator_args.get("variant") == "tiny":
        return int(configs.TINY_TRANSFORMER["joint_attention_dim"])
    hub = str(generator_args.get("hub_id") or configs.HUB_ID_4B)
    table = configs.KLEIN_9B_TRANSFORMER if "9B" in hub else configs.KLEIN_4B_TRANSFORMER
    return int(table["joint_attention_dim"])


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:  # another file system: copy (74 GB for the paper's pool)
            shutil.copyfile(src, tmp)


def import_context_pool(
    path: Path, out: Path, *, ctx_len: int, dim: int, prompts: list[str] | None, variant: str
) -> dict[str, Any]:
    """Check an authors' pool against the recipe and write it (and its meta) at ``out``.

    Raises:
        ArtifactError / ShapeError: wrong dtype, shape, sidecar, context length, width or rows.
    """
    from rdm_flux2.context_pool import POOL_VERSION, pool_files

    arr = read_npy(path)
    src_meta_file = pool_files(path)["meta"]
    if not src_meta_file.is_file():
        raise ArtifactError(
            f"{path} has no sidecar {src_meta_file.name} ({{n, ctx_len, dim, variant}}).",
            "download the pool's _meta.json too, next to the .npy",
        )
    source_meta = read_json(src_meta_file)
    if isinstance(source_meta, dict) and "imported_from" in source_meta:  # re-importing in place
        source_meta = source_meta.get("source_meta") or {}
    if str(arr.dtype) != "float16" or arr.ndim != 3:
        raise ShapeError(
            f"{path} is {arr.dtype} {tuple(arr.shape)}, not a float16 (N, ctx_len, dim) context pool.",
            "pass the Qwen3 context pool (.npy); a (N, 1152) array is a tau table (--tau)",
        )
    n, length, width = (int(v) for v in arr.shape)
    recorded = tuple(source_meta.get(k) for k in ("n", "ctx_len", "dim"))
    if recorded != (n, length, width):
        raise ArtifactError(
            f"{path} has shape {(n, length, width)} but {src_meta_file.name} says (n, ctx_len, dim) = {recorded}.",
            "the download is incomplete or the sidecar belongs to another pool; re-download both",
        )
    if length != ctx_len:
        raise RecipeError(
            f"{path} holds contexts of length {length}, the recipe's generator uses ctx_len={ctx_len}.",
            f"set generator.args.ctx_len={length} (training and GenEval must use the pool's length)",
        )
    if width != dim:
        raise ShapeError(
            f"{path} holds {width}-wide contexts, the recipe's transformer takes {dim}.",
            "import the pool built for this klein size (4B: 7680 = 3 Qwen3 layers x 2560)",
        )
    if prompts is not None and len(prompts) != n:
        raise ShapeError(
            f"{path} has {n} rows but the generator's prompt file has {len(prompts)}.",
            "pass the prompts the pool was built from, one per row, in order (--prompts FILE)",
        )
    files = pool_files(out)
    origin = source_record(path)
    if path.resolve() != files["array"].resolve():
        _link_or_copy(path, files["array"])
    if prompts is not None:
        write_json(files["prompts"], prompts)
    meta = {
        "n": n,
        "ctx_len": length,
        "dim": width,
        "variant": variant,
        "dtype": "float16",
        "pool_version": POOL_VERSION,
        "prompts_fingerprint": None,
        "imported_from": origin,
        "source_meta": source_meta,
        "rdm_version": rdm_version,
    }
    write_json(files["meta"], meta)
    return {"path": files["array"], "n": n, "missing": ["prompts"] if prompts is None else []}


def import_tau_table(path: Path, out: Path, *, text_encoder: str, prompts: list[str] | None) -> dict[str, Any]:
    """An authors' tau ``.npy`` (N, d_txt), L2-normalised rows -> rdm's text table (``tau``)."""
    import numpy as np
    import torch

    from rdm_references.text import TAU_KIND, prompts_fingerprint

    arr = read_npy(path, mmap=False)
    if arr.ndim != 2 or arr.dtype.kind != "f":
        raise ShapeError(
            f"{path} is {arr.dtype} {tuple(arr.shape)}, not a float (N, d_txt) tau table.", "pass the tau .npy"
        )
    tau = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    if not torch.isfinite(tau).all():
        raise ArtifactError(f"{path} contains NaN or Inf.", "re-download the tau table")
    norms = tau.norm(dim=1)
    if not torch.allclose(norms, torch.ones_like(norms), atol=1e-3):
        raise ArtifactError(
            f"{path} rows are not L2-normalised (norms {float(norms.min()):.4g}..{float(norms.max()):.4g}).",
            "tau tables hold unit-norm text embeddings; check that this is the tau table",
        )
    if prompts is not None and len(prompts) != tau.shape[0]:
        raise ShapeError(
            f"{path} has {tau.shape[0]} rows but the generator's prompt file has {len(prompts)}.",
            "the tau table must be row-aligned with the context pool and its prompts",
        )
    save_tensors(
        out,
        {"tau": tau},
        {
            "kind": TAU_KIND,
            "text_encoder": text_encoder,
            "n": int(tau.shape[0]),
            "dim": int(tau.shape[1]),
            "prompts_fingerprint": None if prompts is None else prompts_fingerprint(prompts),
            "encoder_fingerprint": None,
            "imported_from": source_record(path),
            "rdm_version": rdm_version,
        },
    )
    missing = ["encoder_fingerprint"] + (["prompts_fingerprint"] if prompts is None else [])
    return {"path": out, "n": int(tau.shape[0]), "missing": missing}
