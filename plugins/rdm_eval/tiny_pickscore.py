"""A tiny random-weight PickScore stand-in (2-layer CLIP, character-level tokenizer, 32-px
processor) saved with ``save_pretrained`` and loaded back through the real loading code.

Used by ``rdm run --rehearse`` (``model: tiny``) and the tests: no download, the scores mean
nothing, every code path of :class:`rdm_eval.pickscore.PickScorer` runs.
"""

from __future__ import annotations

import string
from pathlib import Path

TINY = "tiny"


def build_tiny_pickscore(path: str | Path) -> Path:
    """Write the tiny CLIP model and its processor to ``path`` (seeded: the same weights every time)."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    from rdm_core.seeding import seeded_init

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in string.ascii_lowercase + string.digits + ".,'!-":
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    text = dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2)
    text.update(num_attention_heads=2, max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    vision = dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64)
    vision.update(num_hidden_layers=2, num_attention_heads=2)
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=16, logit_scale_init_value=2.6592)
    with seeded_init(seed=0):
        model = CLIPModel(config)
    out = Path(path)
    model.save_pretrained(out)
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
    )
    processor.save_pretrained(out)
    return out


def tiny_pickscore_dir() -> Path:
    """The tiny model under ``$RDM_CACHE/tiny/pickscore`` (default ``~/.cache/rdm``), built once, atomically."""
    import os
    import shutil
    import tempfile

    final = Path(os.environ.get("RDM_CACHE", "~/.cache/rdm")).expanduser() / "tiny" / "pickscore"
    if not (final / "config.json").is_file():
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".pickscore.", dir=final.parent))
        build_tiny_pickscore(tmp)
        try:
            tmp.rename(final)
        except OSError:  # another process finished first: keep its copy
            shutil.rmtree(tmp, ignore_errors=True)
    return final
