"""``rdm toy``: train the toy encoders into the cache, and report mode coverage of samples."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def configure(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """Add the ``rdm toy`` sub-commands; return the runner."""
    sub = parser.add_subparsers(dest="toy_command", metavar="SUBCOMMAND", required=True)
    tr = sub.add_parser("train-encoders", help="(re)train the trainable toy encoders on the digits train split")
    tr.add_argument("names", nargs="*", help="encoders to train (default: all trainable ones)")
    tr.add_argument("--cache-dir", default=None, help="cache directory (default $RDM_CACHE/toy or ~/.cache/rdm/toy)")
    tr.add_argument("--keep", action="store_true", help="reuse existing cache files instead of retraining")
    cov = sub.add_parser("coverage", help="class histogram of images (real split or a sample directory)")
    cov.add_argument("--split", default=None, help="score a digits split (train/val) instead of a directory")
    cov.add_argument("--dir", default=None, help="directory of PNG samples to score")
    cov.add_argument("--min-fraction", type=float, default=0.05)
    return run


def run(args: argparse.Namespace) -> int:
    from rdm_core.console import console, print_json
    from rdm_core.errors import RecipeError

    if args.toy_command == "train-encoders":
        from rdm_toy.specs import SPECS
        from rdm_toy.training import train_all

        unknown = [n for n in args.names if n not in SPECS]
        if unknown:
            raise RecipeError(f"unknown toy encoder(s) {unknown}.", f"use some of: {', '.join(SPECS)}")
        done = train_all(args.names or None, cache_dir=args.cache_dir, retrain=not args.keep)
        for name, where in done.items():
            console.print(f"{name}: {where}")
        return 0

    from rdm_toy.classifier import mode_coverage

    if (args.split is None) == (args.dir is None):
        raise RecipeError(
            "rdm toy coverage needs exactly one of --split and --dir.", "pass --split val or --dir SAMPLES"
        )
    if args.split:
        from rdm_toy.data import DigitsSource

        images = DigitsSource(split=args.split).all_images()
    else:
        images = _read_pngs(args.dir)
    print_json(mode_coverage(images, args.min_fraction))
    return 0


def _read_pngs(directory: str):
    from pathlib import Path

    import torch

    from rdm_core.errors import RecipeError
    from rdm_core.images import read_image

    files = sorted(p for p in Path(directory).glob("*.png") if "grid" not in p.name)
    if not files:
        raise RecipeError(f"no PNG samples in {directory}.", "pass the --out directory of `rdm generate`")
    return torch.stack([read_image(f) for f in files])
