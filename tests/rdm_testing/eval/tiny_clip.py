"""A tiny random CLIP (PickScore's architecture) saved locally, for the PickScore and eval tests:
the one rehearsals build (``rdm_eval.tiny_pickscore``)."""

from __future__ import annotations


def build_tiny_clip(path) -> None:
    """A 2-layer CLIP (text + vision) with a character-level BPE tokenizer and a 32-px processor."""
    from rdm_eval.tiny_pickscore import build_tiny_pickscore

    build_tiny_pickscore(path)
