"""Tiny random-weight FLUX.1 components (real classes) and tiny T5/CLIP tokenizers built in code.

The tokenizers need no files: a character-level ``T5Tokenizer`` (Unigram over printable ASCII) and a
byte-level ``CLIPTokenizer`` without merges. ``rdm_wan`` reuses the T5 one for its UMT5 stand-in.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import torch

from rdm_core.seeding import seeded_init
from rdm_flux1.configs import SCHEDULER, TINY_CLIP, TINY_T5, TINY_TRANSFORMER, TINY_VAE


def build_tiny_t5_tokenizer(model_max_length: int = 512) -> Any:
    """Character-level ``T5Tokenizer``: ``<pad>``, ``</s>``, ``<unk>``, then one piece per character."""
    from transformers import T5Tokenizer

    chars = [c for c in string.printable if c not in " \t\n\r\x0b\x0c"]
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -1.0)]
    pieces += [(c, -2.0) for c in chars] + [("\u2581" + c, -1.5) for c in chars]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=model_max_length)


def build_tiny_clip_tokenizer() -> Any:
    """Byte-level ``CLIPTokenizer`` with no merges (every byte, with and without ``</w>``)."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    chars = sorted(ByteLevel.alphabet(), key=ord)
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    for tok in ("<|startoftext|>", "<|endoftext|>"):
        vocab[tok] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def build_tiny_t5_encoder(vocab_size: int, seed: int = 3) -> Any:
    from transformers import T5Config, T5EncoderModel

    with seeded_init(seed=seed):
        return T5EncoderModel(T5Config(vocab_size=vocab_size, **TINY_T5)).eval()


def build_tiny_clip_text(tokenizer: Any, seed: int = 4) -> Any:
    """Tiny ``CLIPTextModel``; its bos/eos ids are the tokenizer's (the pooled token is the eos one)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **TINY_CLIP,
    )
    with seeded_init(seed=seed):
        return CLIPTextModel(config).eval()


def build_tiny_transformer(seed: int = 0) -> Any:
    from diffusers import FluxTransformer2DModel

    with seeded_init(seed=seed):
        model = FluxTransformer2DModel(**TINY_TRANSFORMER)
        for p in model.parameters():  # the output projection starts at zero; make every path live
            p.data.add_(torch.randn_like(p) * 0.02)
    return model


def build_tiny_vae(seed: int = 1) -> Any:
    from diffusers import AutoencoderKL

    with seeded_init(seed=seed):
        return AutoencoderKL(**TINY_VAE).eval()


def build_scheduler() -> Any:
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(**SCHEDULER)


def build_tiny_pipeline(seed: int = 0) -> Any:
    """A tiny ``FluxPipeline`` (schnell-like: no guidance embedding)."""
    from diffusers import FluxPipeline

    tok, tok2 = build_tiny_clip_tokenizer(), build_tiny_t5_tokenizer()
    return FluxPipeline(
        scheduler=build_scheduler(),
        vae=build_tiny_vae(seed + 1),
        text_encoder=build_tiny_clip_text(tok, seed + 4),
        tokenizer=tok,
        text_encoder_2=build_tiny_t5_encoder(len(tok2), seed + 3),
        tokenizer_2=tok2,
        transformer=build_tiny_transformer(seed),
    )


def save_tiny_pipeline(path: str | Path, seed: int = 0) -> Path:
    out = Path(path)
    build_tiny_pipeline(seed).save_pretrained(str(out), safe_serialization=True)
    return out
