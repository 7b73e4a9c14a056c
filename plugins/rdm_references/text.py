"""Tau tables: L2-normalised text embeddings row-aligned with a list of prompts (the joint feature of docs/method.md).

A table is a safetensors file with tensor ``tau`` ``(n, d_txt)`` float32 and a header holding
the text encoder, ``n``, ``dim`` and the fingerprint of the prompt list, so a consumer can check
that row ``i`` really is the embedding of prompt ``i``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rdm_core.artifacts import fingerprint_parts, load_tensors, read_meta, save_tensors
from rdm_core.errors import ArtifactError, ShapeError
from rdm_mmd.config import mmd_settings
from rdm_references.sources.optional import captions_of

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

TAU_KIND = "tau_table"


def prompts_fingerprint(prompts: Sequence[str]) -> str:
    return fingerprint_parts(prompts)


def text_encoder_for(recipe: Any) -> Any:
    """The recipe's text tower: an object with ``encode(prompts) -> (n, d)``.

    ``objective.joint.text_encoder`` is a name known to ``rdm_encoders.text`` (``siglip2_text``), or a
    ``"module:attr"`` factory called as ``factory(variant, weights)`` for third-party towers.
    """
    from rdm_core.recipe.assemble import plain

    name = mmd_settings(recipe).joint.text_encoder
    weights = (plain(recipe.encoders.weights) or {}).get(name)
    if ":" in name:
        from rdm_core.registry import import_object

        return import_object(name)(recipe.encoders.variant, weights)
    from rdm_encoders.text import build_text_encoder

    return build_text_encoder(recipe.encoders.variant, weights)


def generator_prompts(recipe: Any) -> list[str] | None:
    """The generator's prompt pool when ``generator.args.prompts`` names a prompt file, else ``None``."""
    from rdm_core.prompts import read_prompts
    from rdm_core.recipe.assemble import plain

    path = (plain(recipe.generator.args) or {}).get("prompts")
    return read_prompts(path) if isinstance(path, str) else None


def encode_prompts(encode: Callable[[list[str]], Tensor], prompts: Sequence[str], batch_size: int = 512) -> Tensor:
    """Embed ``prompts`` in batches and L2-normalise the rows (fp32 on CPU)."""
    import torch

    from rdm_core.console import progress

    out = []
    with progress(transient=True) as bar:
        task = bar.add_task("tau table", total=len(prompts), status="")
        for start in range(0, len(prompts), batch_size):
            chunk = list(prompts[start : start + batch_size])
            with torch.no_grad():
                emb = encode(chunk)
            emb = torch.as_tensor(emb).float().cpu()
            if emb.dim() != 2 or emb.shape[0] != len(chunk):
                raise ShapeError(
                    f"the text encoder returned shape {tuple(emb.shape)} for {len(chunk)} prompts.",
                    "return one (d,) embedding per prompt",
                )
            out.append(torch.nn.functional.normalize(emb, dim=1))
            bar.advance(task, len(chunk))
    return torch.cat(out)


def text_identity(encoder: Any) -> str:
    """Fingerprint of a text tower's weights (its state dict), so tables from two different
    towers (e.g. two unseeded tiny stand-ins) are never mixed; ``"opaque"`` without one."""
    from torch import nn

    from rdm_core.artifacts import fingerprint_tensor

    if not isinstance(encoder, nn.Module):  # a third-party tower that is not a torch module
        return "opaque"
    return fingerprint_parts(f"{k}={fingerprint_tensor(v)}" for k, v in sorted(encoder.state_dict().items()))


def build_text_table(
    path: str | Path, prompts: Sequence[str], encoder: Any, name: str, batch_size: int = 512
) -> Tensor:
    """Encode ``prompts`` with ``encoder.encode`` and save the row-aligned table at ``path``."""
    tau = encode_prompts(encoder.encode, prompts, batch_size)
    save_tensors(
        path,
        {"tau": tau},
        {
            "kind": TAU_KIND,
            "text_encoder": name,
            "n": int(tau.shape[0]),
            "dim": int(tau.shape[1]),
            "prompts_fingerprint": prompts_fingerprint(prompts),
            "encoder_fingerprint": text_identity(encoder),
        },
    )
    return tau


def table_matches(path: str | Path, prompts: Sequence[str], name: str, identity: str | None = None) -> bool:
    """True when ``path`` is a tau table of exactly ``prompts`` by text encoder ``name``
    (and, when ``identity`` is given, by a tower with exactly those weights)."""
    p = Path(path)
    if not p.is_file():
        return False
    try:
        meta = read_meta(p)
    except ArtifactError:
        return False
    return (
        meta.get("kind") == TAU_KIND
        and meta.get("text_encoder") == name
        and meta.get("n") == len(prompts)
        and meta.get("prompts_fingerprint") == prompts_fingerprint(prompts)
        and (identity is None or meta.get("encoder_fingerprint") == identity)
    )


def load_text_table(path: str | Path, prompts: Sequence[str] | None = None) -> Tensor:
    """Load a tau table; with ``prompts``, refuse one that is not row-aligned with them.

    Raises:
        ArtifactError: missing file, or rows that do not correspond to ``prompts``.
    """
    tensors, meta = load_tensors(path)
    if "tau" not in tensors:
        raise ArtifactError(f"{path} holds no 'tau' tensor.", "rebuild it with `rdm reference build`")
    tau = tensors["tau"]
    if prompts is not None and (
        tau.shape[0] != len(prompts) or meta.get("prompts_fingerprint") != prompts_fingerprint(prompts)
    ):
        raise ArtifactError(
            f"{path} is not row-aligned with the {len(prompts)} prompts it is used with ({tau.shape[0]} rows).",
            "rebuild the tau table from the same prompt list",
        )
    return tau


def build_tau_tables(
    recipe: Any, sources: dict[str, Any], root: Path, report: Any
) -> tuple[dict[str, Tensor], dict[str, list[str]], dict[str, Any]]:
    """Tau tables for a joint build, re-using tables whose prompts and text encoder match.

    Writes ``<root>/tau/<split>.safetensors`` (one row per source item, in item order) and, when
    ``objective.joint.text_table`` is set and ``generator.args.prompts`` names a prompt file, the
    generator-side table row-aligned with that prompt pool.

    Returns:
        ``(tau per split, captions per split, manifest info)``; the info records the text
        tower's weights fingerprint, which joins the joint references' source fingerprint.

    Raises:
        RecipeError: the train source has no captions.
    """
    from rdm_core.errors import RecipeError

    joint = mmd_settings(recipe).joint
    name = joint.text_encoder
    encoder = text_encoder_for(recipe)
    identity = text_identity(encoder)
    tau: dict[str, Tensor] = {}
    captions: dict[str, list[str]] = {}
    for split, src in sources.items():
        caps = captions_of(src, list(range(len(src))))
        if caps is None:
            if split == "train":
                raise RecipeError(
                    "objective.joint.enabled needs captions for the reference images, but the train source has none.",
                    "use a jsonl source with captions or a teacher source with prompts",
                )
            report.notes.append("no tau for val: the val source has no captions (no joint floors)")
            continue
        captions[split] = list(caps)
        path = Path(root) / "tau" / f"{split}.safetensors"
        if table_matches(path, caps, name, identity):
            tau[split] = load_text_table(path, caps)
            report.reused.append(f"tau:{split}")
            continue
        tau[split] = build_text_table(path, caps, encoder, name)
        report.rebuilt.append(f"tau:{split}")
    info: dict[str, Any] = {
        s: {
            "path": f"tau/{s}.safetensors",
            "n": len(c),
            "text_encoder": name,
            "prompts_fingerprint": prompts_fingerprint(c),
            "encoder_fingerprint": identity,
        }
        for s, c in captions.items()
    }
    target, prompts = joint.text_table, generator_prompts(recipe)
    if target and prompts is None:
        report.notes.append(f"objective.joint.text_table {target} not built: generator.args names no `prompts` file")
    elif target:
        if table_matches(target, prompts, name, identity):
            report.reused.append("tau:generator")
        else:
            build_text_table(target, prompts, encoder, name)
            report.rebuilt.append("tau:generator")
        info["generator"] = {
            "path": str(target),
            "n": len(prompts),
            "text_encoder": name,
            "prompts_fingerprint": prompts_fingerprint(prompts),
            "encoder_fingerprint": identity,
        }
    return tau, captions, info
