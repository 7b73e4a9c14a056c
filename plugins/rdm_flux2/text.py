"""Qwen3 text context for FLUX.2 [klein]: chat template, fixed length, hidden states 9/18/27.

Per prompt: chat template (user turn, generation prompt, thinking disabled), tokenised with
``padding="max_length"`` to an explicit ``ctx_len`` (the DiT has no text mask, so pad tokens are part
of the context and the length must match between training and evaluation), Qwen3 with
``output_hidden_states=True``, the selected hidden states stacked per token (layer-major) ->
``(B, ctx_len, 3 x hidden)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rdm_core.errors import RdmError, ShapeError
from rdm_flux2.configs import TEXT_LAYERS


class Qwen3ContextEncoder:
    """Frozen Qwen3 + tokenizer turning prompts into the klein context tensor.

    Args:
        text_encoder: a ``Qwen3ForCausalLM`` (frozen here).
        tokenizer: its tokenizer (chat template included).
        layers: hidden-state indices to stack (``(9, 18, 27)`` for klein).
        batch_size: prompts per forward pass.
    """

    def __init__(
        self, text_encoder: Any, tokenizer: Any, layers: Sequence[int] = TEXT_LAYERS, batch_size: int = 16
    ) -> None:
        n_layers = text_encoder.config.num_hidden_layers
        if max(layers) >= n_layers:
            # hidden_states[n_layers] is the final-norm output, not a raw layer: refuse silently wrong ctx.
            raise ShapeError(
                f"text layers {tuple(layers)} need a Qwen3 with more than {max(layers)} layers; "
                f"this one has {n_layers}.",
                "use the klein text encoder (36 layers) or >= 28 layers when tiny",
            )
        if tokenizer.padding_side != "right":
            tokenizer.padding_side = "right"  # klein contexts are right-padded; left padding shifts every row
        self.text_encoder = text_encoder.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.layers = tuple(int(i) for i in layers)
        self.batch_size = batch_size

    @property
    def dim(self) -> int:
        """Context width: ``len(layers) x hidden``."""
        return len(self.layers) * int(self.text_encoder.config.hidden_size)

    @classmethod
    def from_folder(
        cls, folder: str | Path, *, dtype: torch.dtype = torch.float32, **kwargs: Any
    ) -> Qwen3ContextEncoder:
        """Load ``text_encoder/`` and ``tokenizer/`` of a local klein folder (never trust_remote_code)."""
        from transformers import AutoTokenizer, Qwen3ForCausalLM

        root = Path(folder)
        for sub in ("text_encoder", "tokenizer"):
            if not (root / sub).is_dir():
                from rdm_core.errors import WeightsNotFoundError

                raise WeightsNotFoundError(
                    f"{root} has no {sub}/ folder (not a Flux2KleinPipeline layout).",
                    "point model_dir at a FLUX.2-klein folder with text_encoder/ and tokenizer/",
                )
        model = Qwen3ForCausalLM.from_pretrained(str(root / "text_encoder"), dtype=dtype, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(str(root / "tokenizer"), local_files_only=True)
        return cls(model, tokenizer, **kwargs)

    def to(self, device: torch.device | str) -> Qwen3ContextEncoder:
        self.text_encoder.to(device)
        return self

    def token_ids(self, prompts: Sequence[str], ctx_len: int) -> tuple[Tensor, Tensor]:
        """``(input_ids, attention_mask)``, each ``(B, ctx_len)``, chat-templated and right-padded."""
        if ctx_len <= 0:
            raise RdmError(
                f"ctx_len must be positive, got {ctx_len}.", "use 48 (training, GenEval) or 232 (PickScore-pa)"
            )
        ids, masks = [], []
        for prompt in prompts:
            if not isinstance(prompt, str):
                raise RdmError(f"prompts must be strings, got {type(prompt).__name__}.", "pass a list of str")
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True, enable_thinking=False
            )
            enc = self.tokenizer(text, return_tensors="pt", padding="max_length", truncation=True, max_length=ctx_len)
            ids.append(enc["input_ids"])
            masks.append(enc["attention_mask"])
        return torch.cat(ids), torch.cat(masks)

    @torch.no_grad()
    def encode(self, prompts: Sequence[str], ctx_len: int) -> Tensor:
        """Contexts ``(len(prompts), ctx_len, dim)`` in float32 on CPU."""
        prompts = list(prompts)
        if not prompts:
            return torch.zeros(0, ctx_len, self.dim)
        device = next(self.text_encoder.parameters()).device
        out = []
        for start in range(0, len(prompts), self.batch_size):
            ids, mask = self.token_ids(prompts[start : start + self.batch_size], ctx_len)
            res = self.text_encoder(
                input_ids=ids.to(device), attention_mask=mask.to(device), output_hidden_states=True, use_cache=False
            )
            hidden = torch.stack([res.hidden_states[k] for k in self.layers], dim=1)  # (B, 3, L, H)
            b, n, length, h = hidden.shape
            out.append(hidden.permute(0, 2, 1, 3).reshape(b, length, n * h).float().cpu())
        return torch.cat(out)
