"""DreamSim (ensemble) composed from three timm ViT-B/16 models, without the dreamsim package.

Branches, in concatenation order (dreamsim 0.2.1 ``ensemble``):

1. DINO ViT-B/16 (``vit_base_patch16_224.dino``): CLS of the last block's output *before* the final
   LayerNorm, ImageNet normalisation, 768-d.
2. OpenAI CLIP ViT-B/16 with QuickGELU (``vit_base_patch16_clip_quickgelu_224.openai``):
   ``ln_post(CLS) @ proj`` (timm's 512-d head), CLIP normalisation.
3. OpenCLIP ViT-B/16 LAION-400M (``vit_base_patch16_clip_224.laion400m_e32``): same with GELU,
   also OpenAI CLIP normalisation.

The 1792-d concatenation is mean-centred and L2-normalised per sample (``normalize_embeds=True``),
the only built-in feature normalisation of the panel. Weights: one safetensors file with keys
``dino.*``, ``clip.*``, ``open_clip.*`` (timm state dicts, LoRA merged), written by
:mod:`rdm_encoders.dreamsim_convert`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rdm_core.artifacts import load_tensors
from rdm_core.errors import WeightsNotFoundError
from rdm_encoders import specs
from rdm_encoders.base import FrozenEncoder, normalize, resolve_pretrained

BRANCHES: tuple[tuple[str, str, int], ...] = (
    # (prefix in the weights file, timm model id, head width: 0 = no head, CLS features)
    ("dino", "vit_base_patch16_224.dino", 0),
    ("clip", "vit_base_patch16_clip_quickgelu_224.openai", 512),
    ("open_clip", "vit_base_patch16_clip_224.laion400m_e32", 512),
)
TINY_VIT: dict[str, Any] = dict(embed_dim=64, depth=2, num_heads=2)
TINY_HEAD = 32


def default_weights_path() -> Path:
    """Where the converter writes (and the encoder looks for) the merged ensemble file."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / specs.DREAMSIM_CONVERTED


def build_branches(variant: str = "full") -> nn.ModuleDict:
    """The three random-weight timm branches (full ViT-B/16, or tiny 64/2/2 with 32-d heads)."""
    mods = {}
    for prefix, model_id, head in BRANCHES:
        kw: dict[str, Any] = dict(TINY_VIT) if variant == "tiny" else {}
        width = (TINY_HEAD if variant == "tiny" else head) if head else 0
        # Fixed 224 input: no dynamic size/pad needed (dreamsim runs its ViTs at 224 only).
        import timm

        mods[prefix] = timm.create_model(model_id, pretrained=False, num_classes=width, **kw)
    return nn.ModuleDict(mods)


class DreamSimEncoder(FrozenEncoder):
    """The DreamSim ensemble embedding (concat of three branches, centred, L2-normalised)."""

    def embed(self, x: Tensor) -> Tensor:
        b = self.backbone
        dino = b["dino"]
        last = len(dino.blocks) - 1
        xi = normalize(x, specs.IMAGENET_MEAN, specs.IMAGENET_STD)
        # Pre-norm CLS of the last block (dreamsim hooks blocks[11] before the final norm).
        inter = dino.forward_intermediates(
            xi, indices=[last], norm=False, return_prefix_tokens=True, output_fmt="NLC", intermediates_only=True
        )
        cls = inter[0][1][:, 0]
        xc = normalize(x, specs.CLIP_MEAN, specs.CLIP_STD)
        e = torch.cat([cls, b["clip"](xc), b["open_clip"](xc)], dim=1).to(
            x.dtype
        )  # bf16 autocast branches -> the input dtype
        e = e - e.mean(dim=1, keepdim=True)
        return e / e.norm(dim=1, keepdim=True)


def load_ensemble(branches: nn.ModuleDict, path: str | Path) -> None:
    """Load a converted ensemble file into the branches (strict: every key must match)."""
    tensors, _meta = load_tensors(path)
    for prefix, module in branches.items():
        part = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
        try:
            module.load_state_dict(part, strict=True)
        except RuntimeError as exc:
            raise WeightsNotFoundError(
                f"{path} does not fit the {prefix!r} branch of DreamSim (variant or format mismatch: "
                f"{str(exc).splitlines()[0]}).",
                "convert the official checkpoint again with `python -m rdm_encoders.dreamsim_convert`, and use "
                "variant 'tiny' only with tiny weights",
            ) from exc


def build_dreamsim(
    variant: str = "full", weights: str | None = None, pretrained: bool | None = None
) -> DreamSimEncoder:
    """Build the ``dreamsim`` encoder.

    Args:
        variant: ``full`` (dim 1792) or ``tiny`` (dim 128).
        weights: a converted ensemble safetensors file; ``None`` =
            ``$TORCH_HOME/hub/checkpoints/rdm_dreamsim_ensemble.safetensors``.
        pretrained: ``False`` keeps random weights.
    """
    spec = specs.DREAMSIM
    path: Path | None = None
    if resolve_pretrained(variant, weights, pretrained, spec.name):
        path = Path(weights).expanduser() if weights is not None else default_weights_path()
        if not path.exists() and weights is None:
            zip_path = path.parent / spec.weights.url.rsplit("/", 1)[-1]  # where `rdm encoders fetch` puts it
            if zip_path.exists():  # one-off conversion of the fetched release files
                from rdm_encoders.dreamsim_convert import convert_dreamsim

                convert_dreamsim(zip_path, None, path)
        if not path.exists():  # checked before building three ViTs
            raise WeightsNotFoundError(
                f"DreamSim ensemble weights not found at {path}.",
                "run `rdm encoders fetch dreamsim` (official zip) and convert it with `python -m "
                "rdm_encoders.dreamsim_convert <unzipped dir> [DINO weights]`, or pass weights=<converted file>",
            )
    branches = build_branches(variant)
    if path is not None:
        load_ensemble(branches, path)
    if variant == "tiny":
        spec = spec.with_variant("tiny", TINY_VIT["embed_dim"] + 2 * TINY_HEAD)
    return DreamSimEncoder(spec, branches)
