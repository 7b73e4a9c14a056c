"""Tiny random-weight FLUX.2 [klein] components built from the real classes (offline tests, CPU demo).

Every builder is deterministic for a given seed. :func:`save_tiny_pipeline` writes a folder in the
``Flux2KleinPipeline`` layout, so the real loading code (``from_pretrained(dir, local_files_only=True)``)
is what the tests exercise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rdm_core.seeding import seeded_init
from rdm_flux2.configs import (
    KLEIN_SCHEDULER,
    QWEN3_CHAT_TEMPLATE,
    QWEN_SPECIAL_TOKENS,
    TINY_QWEN3,
    TINY_TRANSFORMER,
    TINY_VAE,
)


def build_tiny_transformer(seed: int = 0) -> Any:
    """The tiny ``Flux2Transformer2DModel`` (1 double + 2 single blocks, 91 K params)."""
    from diffusers import Flux2Transformer2DModel

    with seeded_init(seed=seed):
        model = Flux2Transformer2DModel(**TINY_TRANSFORMER)
        # diffusers zero-initialises nothing that matters here, but the output projection of a
        # fresh model is small; perturb every tensor so gradients and parity tests see real values.
        for p in model.parameters():
            p.data.add_(torch.randn_like(p) * 0.02)
    return model


def build_tiny_vae(seed: int = 1) -> Any:
    """The tiny ``AutoencoderKLFlux2`` with randomised BN running stats (so denormalisation matters)."""
    from diffusers import AutoencoderKLFlux2

    with seeded_init(seed=seed):
        vae = AutoencoderKLFlux2(**TINY_VAE)
        vae.bn.running_mean.copy_(torch.randn_like(vae.bn.running_mean) * 0.5)
        vae.bn.running_var.copy_(torch.rand_like(vae.bn.running_var) * 1.5 + 0.25)
    return vae.eval()


def build_tiny_tokenizer() -> Any:
    """A byte-level ``Qwen2Tokenizer``: 256 byte tokens, no merges, the Qwen special tokens.

    Its chat template renders exactly like Qwen3's with ``enable_thinking=False``.
    """
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import Qwen2Tokenizer

    byte_chars = sorted(ByteLevel.alphabet(), key=lambda ch: ord(ch))
    vocab = {ch: i for i, ch in enumerate(byte_chars)}
    tok = Qwen2Tokenizer(vocab=vocab, merges=[], unk_token=None, pad_token="<|endoftext|>", eos_token="<|im_end|>")
    tok.add_special_tokens({"additional_special_tokens": list(QWEN_SPECIAL_TOKENS[1:])})
    tok.add_tokens([QWEN_SPECIAL_TOKENS[0]], special_tokens=True)
    tok.chat_template = QWEN3_CHAT_TEMPLATE
    tok.padding_side = "right"
    return tok


def build_tiny_text_encoder(vocab_size: int, seed: int = 2) -> Any:
    """The tiny ``Qwen3ForCausalLM`` (hidden 32, 28 layers, 2 heads / 1 KV head)."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(vocab_size=vocab_size, **TINY_QWEN3)
    with seeded_init(seed=seed):
        model = Qwen3ForCausalLM(config)
    return model.eval()


def build_scheduler() -> Any:
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(**KLEIN_SCHEDULER)


def build_tiny_pipeline(seed: int = 0) -> Any:
    """A complete tiny ``Flux2KleinPipeline`` (distilled, like klein 4B)."""
    from diffusers import Flux2KleinPipeline

    tokenizer = build_tiny_tokenizer()
    return Flux2KleinPipeline(
        scheduler=build_scheduler(),
        vae=build_tiny_vae(seed + 1),
        text_encoder=build_tiny_text_encoder(len(tokenizer), seed + 2),
        tokenizer=tokenizer,
        transformer=build_tiny_transformer(seed),
        is_distilled=True,
    )


def save_tiny_pipeline(path: str | Path, seed: int = 0) -> Path:
    """Write a tiny klein folder (``Flux2KleinPipeline`` layout, safetensors) and return it."""
    out = Path(path)
    build_tiny_pipeline(seed).save_pretrained(str(out), safe_serialization=True)
    return out
