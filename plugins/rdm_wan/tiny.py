"""Tiny random-weight Wan 2.1 components (real classes); the tokenizer is rdm_flux1's character T5."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rdm_core.seeding import seeded_init
from rdm_wan.configs import SCHEDULER, TINY_TRANSFORMER, TINY_UMT5, TINY_VAE


def build_tiny_transformer(seed: int = 0) -> Any:
    from diffusers import WanTransformer3DModel

    with seeded_init(seed=seed):
        model = WanTransformer3DModel(**TINY_TRANSFORMER)
        for p in model.parameters():  # zero-initialised output paths would hide gradients
            p.data.add_(torch.randn_like(p) * 0.02)
    return model


def build_tiny_vae(seed: int = 1) -> Any:
    from diffusers import AutoencoderKLWan

    with seeded_init(seed=seed):
        return AutoencoderKLWan(**TINY_VAE).eval()


def build_tiny_text_encoder(vocab_size: int, seed: int = 2) -> Any:
    from transformers import UMT5Config, UMT5EncoderModel

    with seeded_init(seed=seed):
        return UMT5EncoderModel(UMT5Config(vocab_size=vocab_size, **TINY_UMT5)).eval()


def build_scheduler() -> Any:
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(**SCHEDULER)


def build_tiny_pipeline(seed: int = 0) -> Any:
    from diffusers import WanPipeline

    from rdm_flux1.tiny import build_tiny_t5_tokenizer

    tok = build_tiny_t5_tokenizer()
    return WanPipeline(
        tokenizer=tok,
        text_encoder=build_tiny_text_encoder(len(tok), seed + 2),
        vae=build_tiny_vae(seed + 1),
        scheduler=build_scheduler(),
        transformer=build_tiny_transformer(seed),
    )


def save_tiny_pipeline(path: str | Path, seed: int = 0) -> Path:
    out = Path(path)
    build_tiny_pipeline(seed).save_pretrained(str(out), safe_serialization=True)
    return out
