"""FLUX.2 transformer weights: BFL <-> diffusers names for every checkpoint format.

BFL -> diffusers uses diffusers' own converter (``convert_flux2_transformer_checkpoint_to_diffusers``);
the reverse direction is hand-written here because diffusers only converts one way. Formats:

* ``diffusers``: diffusers key names (our run checkpoints' ``model.safetensors``, a diffusers
  ``transformer/`` folder, or a klein folder with a ``transformer/`` subfolder).
* ``bfl``: BFL names without prefix (``flux-2-klein-4b.safetensors``).
* ``rdm``: the released one-step RDM student: ``model.``-prefixed BFL names, either a safetensors
  file or a ``.pth`` holding ``{"model": state_dict}`` (files are read by
  :func:`rdm_diffusers.weights.read_state_dict`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from rdm_core.errors import ArtifactError, RdmError

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

FORMATS = ("auto", "diffusers", "bfl", "rdm")

# diffusers name -> BFL name for tensors that are renamed one to one (outside the blocks).
_TOP_LEVEL = {
    "x_embedder": "img_in",
    "context_embedder": "txt_in",
    "time_guidance_embed.timestep_embedder.linear_1": "time_in.in_layer",
    "time_guidance_embed.timestep_embedder.linear_2": "time_in.out_layer",
    "time_guidance_embed.guidance_embedder.linear_1": "guidance_in.in_layer",
    "time_guidance_embed.guidance_embedder.linear_2": "guidance_in.out_layer",
    "double_stream_modulation_img.linear": "double_stream_modulation_img.lin",
    "double_stream_modulation_txt.linear": "double_stream_modulation_txt.lin",
    "single_stream_modulation.linear": "single_stream_modulation.lin",
    "proj_out": "final_layer.linear",
}
_DOUBLE = {
    "attn.norm_q": "img_attn.norm.query_norm",
    "attn.norm_k": "img_attn.norm.key_norm",
    "attn.to_out.0": "img_attn.proj",
    "ff.linear_in": "img_mlp.0",
    "ff.linear_out": "img_mlp.2",
    "attn.norm_added_q": "txt_attn.norm.query_norm",
    "attn.norm_added_k": "txt_attn.norm.key_norm",
    "attn.to_add_out": "txt_attn.proj",
    "ff_context.linear_in": "txt_mlp.0",
    "ff_context.linear_out": "txt_mlp.2",
}
_SINGLE = {
    "attn.to_qkv_mlp_proj": "linear1",
    "attn.to_out": "linear2",
    "attn.norm_q": "norm.query_norm",
    "attn.norm_k": "norm.key_norm",
}
_BLOCK = re.compile(r"^(transformer_blocks|single_transformer_blocks)\.(\d+)\.(.+)\.(weight|bias)$")


def _swap_halves(t: Tensor) -> Tensor:
    """(shift, scale) <-> (scale, shift) along dim 0; its own inverse."""
    import torch

    a, b = t.chunk(2, dim=0)
    return torch.cat([b, a], dim=0)


def diffusers_to_bfl(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """diffusers ``Flux2Transformer2DModel`` state dict -> BFL ``Flux2`` names (QKV fused).

    Raises:
        ArtifactError: a key this map does not know (a different architecture).
    """
    import torch

    out: dict[str, Tensor] = {}
    qkv: dict[tuple[str, str, str], dict[str, Tensor]] = {}
    for key, value in state.items():
        if key.startswith("norm_out.linear."):
            out["final_layer.adaLN_modulation.1." + key.rsplit(".", 1)[1]] = _swap_halves(value)
            continue
        m = _BLOCK.match(key)
        if m is None:
            stem, _, param = key.rpartition(".")
            if stem not in _TOP_LEVEL:
                raise ArtifactError(
                    f"cannot map diffusers key {key!r} to BFL naming.",
                    "only FLUX.2 transformer state dicts can be saved in BFL layout",
                )
            out[f"{_TOP_LEVEL[stem]}.{param}"] = value
            continue
        kind, idx, inner, param = m.groups()
        if kind == "transformer_blocks":
            qkv_match = re.fullmatch(r"attn\.(to_|add_)([qkv])(?:_proj)?", inner)
            if qkv_match:
                group = "img_attn.qkv" if qkv_match.group(1) == "to_" else "txt_attn.qkv"
                qkv.setdefault((idx, group, param), {})[qkv_match.group(2)] = value
                continue
            table, prefix = _DOUBLE, "double_blocks"
        else:
            table, prefix = _SINGLE, "single_blocks"
        if inner not in table:
            raise ArtifactError(
                f"cannot map diffusers key {key!r} to BFL naming.",
                "only FLUX.2 transformer state dicts can be saved in BFL layout",
            )
        bfl_inner = table[inner]
        bfl_param = "scale" if bfl_inner.endswith("_norm") else param
        out[f"{prefix}.{idx}.{bfl_inner}.{bfl_param}"] = value
    for (idx, group, param), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise ArtifactError(
                f"block {idx} {group}: got only {sorted(parts)} of q/k/v.", "save a complete state dict"
            )
        out[f"double_blocks.{idx}.{group}.{param}"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out


def bfl_to_diffusers(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """BFL names (no prefix) -> diffusers names, through diffusers' own converter."""
    from diffusers.loaders.single_file_utils import convert_flux2_transformer_checkpoint_to_diffusers

    try:
        return convert_flux2_transformer_checkpoint_to_diffusers(dict(state))
    except KeyError as exc:
        raise ArtifactError(
            f"not a FLUX.2 BFL state dict (unknown key part {exc}).",
            "pass format='diffusers' for diffusers-named files, or check the file",
        ) from exc


def strip_prefix(state: dict[str, Tensor], prefix: str = "model.") -> dict[str, Tensor]:
    """Remove ``prefix`` from every key that has it (the RDM release prefixes BFL names with ``model.``)."""
    return {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state.items()}


def detect_format(state: dict[str, Tensor]) -> str:
    """``rdm`` (``model.`` + BFL), ``bfl`` or ``diffusers`` from the key names."""
    keys = list(state)
    if keys and all(k.startswith("model.") for k in keys):
        return "rdm"
    if any(k.startswith(("double_blocks.", "single_blocks.", "img_in.")) for k in keys):
        return "bfl"
    if any(k.startswith(("transformer_blocks.", "single_transformer_blocks.", "x_embedder.")) for k in keys):
        return "diffusers"
    raise ArtifactError(
        f"cannot tell the layout of a state dict with keys like {keys[:3]}.",
        "pass format='diffusers', 'bfl' or 'rdm' explicitly",
    )


def to_diffusers_state(state: dict[str, Tensor], format: str = "auto") -> dict[str, Tensor]:
    """Any supported layout -> diffusers names, ready for ``load_state_dict(strict=True)``."""
    if format not in FORMATS:
        raise RdmError(f"unknown weights format {format!r}.", f"use one of: {', '.join(FORMATS)}")
    fmt = detect_format(state) if format == "auto" else format
    if fmt == "rdm":
        # the release file may or may not carry the prefix on every key; strip it where present
        state, fmt = strip_prefix(state), "bfl"
    if fmt == "bfl":
        return bfl_to_diffusers(state)
    return dict(state)


def from_diffusers_state(state: dict[str, Tensor], format: str) -> dict[str, Tensor]:
    """diffusers names -> ``diffusers``, ``bfl`` or ``rdm`` (``model.`` + BFL) layout for saving."""
    if format == "diffusers":
        return dict(state)
    if format == "bfl":
        return diffusers_to_bfl(state)
    if format == "rdm":
        return {f"model.{k}": v for k, v in diffusers_to_bfl(state).items()}
    raise RdmError(f"cannot save in format {format!r}.", "use 'diffusers', 'bfl' or 'rdm'")
