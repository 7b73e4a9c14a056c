"""Command-line ends of the importers (``rdm reference import``, ``rdm context import``)."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

from rdm_core.cli.options import add_overrides
from rdm_import.kinds import Converted


def warn_missing(items: Iterable[Converted]) -> None:
    """One warning line per imported file naming the fields its source did not record."""
    from rdm_core.console import err_console, styled

    for item in items:
        if item.missing:
            err_console.print(
                styled(
                    ("warning", "yellow"),
                    f": {item.source} ({item.kind}, {item.encoder}) does not record "
                    f"{', '.join(item.missing)}; stored as null in {item.path.name}",
                ),
                soft_wrap=True,
            )


def report(items: list[Converted]) -> None:
    from rdm_core.console import console, styled

    for item in items:
        console.print(
            styled(("imported", "green"), f" {item.kind:<10} {item.encoder:<16} -> {item.path}  ({item.summary})"),
            soft_wrap=True,
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


def add_context_import(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="import the authors' Qwen3 context pool (.npy + _meta.json) and tau table (.npy)",
        description="Check the authors' context pool and tau table against the recipe (ctx_len, context width, "
        "rows of the generator's prompt file) and write them where the recipe reads them.",
    )
    p.add_argument("recipe", help="recipe file or shipped name (the generator the pool is for)")
    p.add_argument("pool", nargs="?", help="the authors' context pool .npy (float16 (N, ctx_len, dim))")
    p.add_argument("--tau", help="the authors' tau table .npy ((N, 1152), row-aligned with the pool)")
    p.add_argument("--prompts", help="the pool's prompts, one per row (default: generator.args.prompts)")
    p.add_argument("--pool-out", help="where to put the pool (default: generator.args.context_pool)")
    p.add_argument("--tau-out", help="where to write the text table (default: objective.joint.text_table)")
    add_overrides(p)


def run_context_import(args: argparse.Namespace) -> int:
    from rdm_core.console import console, err_console, styled
    from rdm_core.errors import RecipeError
    from rdm_core.prompts import read_prompts
    from rdm_core.recipe.assemble import plain
    from rdm_core.recipe.load import load_recipe
    from rdm_import.context import expected_ctx_dim, import_context_pool, import_tau_table
    from rdm_mmd.config import mmd_settings

    recipe = load_recipe(args.recipe, args.overrides)
    gen_args = plain(recipe.generator.args) or {}
    if not args.pool and not args.tau:
        raise RecipeError("nothing to import.", "pass the context pool .npy and/or --tau TAU.npy")
    prompt_file = args.prompts or gen_args.get("prompts")
    prompts = read_prompts(prompt_file) if prompt_file else None
    done = []
    if args.pool:
        out = args.pool_out or gen_args.get("context_pool")
        if not out:
            raise RecipeError(
                "the recipe has no generator.args.context_pool to put the pool at.",
                "pass --pool-out POOL.npy (and set generator.args.context_pool to it)",
            )
        done.append(
            (
                "context pool",
                import_context_pool(
                    Path(args.pool),
                    Path(out),
                    ctx_len=int(gen_args.get("ctx_len", 48)),
                    dim=expected_ctx_dim(gen_args),
                    prompts=prompts,
                    variant=str(gen_args.get("variant", "full")),
                ),
                args.pool,
            )
        )
    if args.tau:
        joint = mmd_settings(recipe, "importing a tau table").joint
        out = args.tau_out or joint.text_table
        if not out:
            raise RecipeError(
                "the recipe has no objective.joint.text_table to write to.", "pass --tau-out TABLE.safetensors"
            )
        done.append(
            (
                "tau table",
                import_tau_table(Path(args.tau), Path(out), text_encoder=str(joint.text_encoder), prompts=prompts),
                args.tau,
            )
        )
    for what, item, src in done:
        console.print(styled(("imported", "green"), f" {what}: {item['n']} rows -> {item['path']}"), soft_wrap=True)
        if item["missing"]:
            err_console.print(
                styled(
                    ("warning", "yellow"),
                    f": {Path(src).name} does not record {', '.join(item['missing'])}; stored as null",
                ),
                soft_wrap=True,
            )
    return 0
