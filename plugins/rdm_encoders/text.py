"""The text tower tau(c) of the joint image-text feature: open_clip SigLIP2 SO400M (docs/method.md).

Only the text tower is built (open_clip's own ``TextTransformer`` from the model config), so the
428M-parameter vision tower is never allocated. ``encode`` tokenises, runs under bf16 autocast and
returns L2-normalised float32 rows (1152-d for the full model).

Weights: ``weights=`` a local ``open_clip_model.safetensors`` (or ``.bin``) file, or a directory
holding it plus the tokenizer files; else the Hugging Face cache of ``timm/ViT-SO400M-16-SigLIP2-256``
(downloaded only when online). The tiny variant uses the same class with a small config and
open_clip's bundled BPE tokenizer, so it needs no network at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rdm_core.errors import WeightsNotFoundError
from rdm_core.seeding import seeded_init
from rdm_core.weights import hub_file, local_file
from rdm_encoders.loading import load_state_dict_file

MODEL_NAME = "ViT-SO400M-16-SigLIP2-256"
HUB_ID = f"timm/{MODEL_NAME}"
WEIGHTS_FILE = "open_clip_model.safetensors"
TINY_TEXT_CFG: dict[str, Any] = dict(
    context_length=16,
    vocab_size=49408,
    width=32,
    heads=2,
    layers=2,
    mlp_ratio=2.0,
    no_causal_mask=True,
    proj_bias=True,
    pool_type="last",
    norm_kwargs={"eps": 1e-6},
    act_kwargs={"approximate": "tanh"},
)
TINY_EMBED_DIM = 32


def text_tower(variant: str = "full") -> tuple[nn.Module, dict[str, Any]]:
    """A random-weight SigLIP2 text tower (open_clip ``TextTransformer``) and its text config."""
    import open_clip
    from open_clip.model import _build_text_tower

    if variant == "tiny":
        cfg, dim = dict(TINY_TEXT_CFG), TINY_EMBED_DIM
    else:
        full = open_clip.get_model_config(MODEL_NAME)
        cfg, dim = dict(full["text_cfg"]), int(full["embed_dim"])
    return _build_text_tower(dim, cfg), cfg


def _text_state(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The text tower's keys from a full open_clip state dict (``text.*``), or a text-only dict."""
    if any(k.startswith("text.") for k in state):
        return {k[len("text.") :]: v for k, v in state.items() if k.startswith("text.")}
    return state


class TextEncoder(nn.Module):
    """tau(c): prompts -> L2-normalised ``(n, d)`` float32 text features (frozen).

    Args:
        tower: open_clip text tower.
        tokenizer: callable ``list[str] -> LongTensor (n, context_length)``.
        batch_size: prompts per forward pass.
    """

    def __init__(self, tower: nn.Module, tokenizer: Any, batch_size: int = 512) -> None:
        super().__init__()
        self.tower = tower.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.batch_size = batch_size

    @property
    def dim(self) -> int:
        return int(
            self.tower.text_projection.out_features
            if isinstance(self.tower.text_projection, nn.Linear)
            else self.tower.text_projection.shape[1]
        )

    def train(self, mode: bool = True) -> TextEncoder:
        return super().train(False)

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> Tensor:
        """``(n, d)`` float32, unit-norm rows, on CPU (the tau table is precomputed once)."""
        device = next(self.tower.parameters()).device
        rows = []
        for start in range(0, len(prompts), self.batch_size):
            ids = self.tokenizer(list(prompts[start : start + self.batch_size])).to(device)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                feats = self.tower(ids)
            rows.append(F.normalize(feats.float(), dim=-1).cpu())
        if not rows:
            return torch.zeros(0, self.dim)
        return torch.cat(rows)


def _tokenizer(variant: str, cfg: dict[str, Any], source: str) -> Any:
    import open_clip

    if variant == "tiny":
        return open_clip.tokenizer.SimpleTokenizer(context_length=cfg["context_length"])
    try:
        kwargs = dict(cfg.get("tokenizer_kwargs") or {"clean": "canonicalize"})  # as open_clip.get_tokenizer
        return open_clip.tokenizer.HFTokenizer(source, context_length=cfg["context_length"], **kwargs)
    except Exception as exc:  # transformers raises OSError/ValueError flavours on a cache miss
        raise WeightsNotFoundError(
            f"the SigLIP2 tokenizer ({source}) is not available locally: {type(exc).__name__}.",
            f"fetch {HUB_ID} into the Hugging Face cache on a machine with internet access, or pass "
            "weights=<directory with open_clip_model.safetensors and the tokenizer files>",
        ) from exc


def build_text_encoder(variant: str = "full", weights: str | None = None, batch_size: int = 512) -> TextEncoder:
    """The SigLIP2 text tower for the joint feature.

    Args:
        variant: ``full`` (1152-d) or ``tiny`` (32-d, random unless ``weights`` is given).
        weights: a local weights file (full open_clip state dict or text-only), or a directory with
            ``open_clip_model.safetensors`` and the tokenizer files; ``None`` = the HF cache (full).
        batch_size: prompts per forward pass (512 as in the authors' code).
    """
    tok_source = HUB_ID
    path: Path | None = None
    if weights is not None:
        path = local_file(weights, "the SigLIP2 text tower")
        if path.is_dir():
            tok_source, path = str(path), path / WEIGHTS_FILE
            if not path.exists():
                raise WeightsNotFoundError(
                    f"{path.parent} has no {WEIGHTS_FILE}.",
                    "put the open_clip weights there, or point weights at the file",
                )
    elif variant == "full":
        path = hub_file(HUB_ID, WEIGHTS_FILE, fetch_command=f"huggingface-cli download {HUB_ID}")
    with seeded_init("text_encoder", "siglip2_text", variant):  # the same random tiny tower in every process
        tower, cfg = text_tower(variant)  # built after the weights were found: a miss fails fast
    if path is not None:
        state = _text_state(load_state_dict_file(path))
        try:
            tower.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise WeightsNotFoundError(
                f"{path} does not fit the {variant} SigLIP2 text tower ({str(exc).splitlines()[0]}).",
                "use the open_clip weights of ViT-SO400M-16-SigLIP2-256 (or tiny weights with variant='tiny')",
            ) from exc
    return TextEncoder(tower, _tokenizer(variant, cfg, tok_source), batch_size=batch_size)


# Names usable as ``joint.text_encoder`` in recipes (the schema's default is "siglip2_text").
TEXT_ENCODERS = {"siglip2_text": build_text_encoder}


def text_encoder(
    name: str = "siglip2_text", variant: str = "full", weights: str | None = None, batch_size: int = 512
) -> TextEncoder:
    """The text encoder a recipe names in ``joint.text_encoder``.

    Raises:
        UnknownNameError: ``name`` is not a known text encoder (with suggestions).
    """
    from rdm_core.errors import UnknownNameError

    if name not in TEXT_ENCODERS:
        raise UnknownNameError("text encoder", name, TEXT_ENCODERS)
    return TEXT_ENCODERS[name](variant=variant, weights=weights, batch_size=batch_size)
