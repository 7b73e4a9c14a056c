"""Command-line ends of the importers (``rdm reference import``, ``rdm context import``)."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

from rdm_import.kinds import Converted


def warn_missing(items: Iterable[Converted]) -> None:
    """One warning line per imported file naming the fields its source did not record."""
    from rdm_core.console import err_console

    for item in items:
        if item.missing:
            err_console.print(
                f"[yellow]warning[/]: {item.source} ({item.kind}, {item.encoder}) does not record "
                f"{', '.join(item.missing)}; stored as null in {item.path.name}",
                soft_wrap=True,
            )


def report(items: list[Converted]) -> None:
    from rdm_core.console import console

    for item in items:
        console.print(
            f"[green]imported[/] {item.kind:<10} {item.encoder:<16} -> {item.path}  ({item.summary})", soft_wrap=True
        )


def add_reference_import(sub: argparse._SubParsersAction) -> None:
    from rdm_import.references import IMPORT_KINDS

    p = sub.add_parser(
        "import",
        help="import the paper authors' bundles, banks, pools, sigma files and floor JSONs",
        description="Convert the authors' .pt/.json reference files (or their whole data/fid_stats folder) "
        "into rdm reference files. Nothing in the files is executed: only tensors, numbers and strings are read.",
    )
    p.add_argument("files", nargs="+", help="authors' .pt / .json files, or their data/fid_stats folder")
    p.add_argument("-o", "--output", required=True, help="references directory (or, for one file, the output file)")
    p.add_argument("--encoder", help="rdm encoder name (default: from the file name)")
    p.add_argument("--kind", default="auto", choices=IMPORT_KINDS, help="file kind (default: from its keys)")
    p.add_argument("--split", choices=["train", "val"], help="split of a pool / SW bank (default: from the name)")
    p.add_argument(
        "--layout",
        default="auto",
        choices=["auto", "imagenet", "joint"],
        help="for a folder: which bundles to import (bundles/nystrom or bundles/nystrom_joint)",
    )
    p.add_argument(
        "--floors-n",
        type=int,
        default=None,
        help="the generated batch size N the controller floors were computed at (their JSON does not say)",
    )


def run_reference_import(args: argparse.Namespace) -> int:
    from rdm_import.references import import_paths

    items = import_paths(
        [Path(f) for f in args.files],
        Path(args.output),
        kind=args.kind,
        encoder=args.encoder,
        split=args.split,
        layout=args.layout,
        floors_n=args.floors_n,
    )
    report(items)
    warn_missing(items)
    return 0
