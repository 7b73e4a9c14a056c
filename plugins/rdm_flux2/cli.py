"""``rdm context``: build and inspect the precomputed text-context pool of a recipe's generator.

``rdm context build RECIPE --prompts FILE -o POOL.npy [--batch-size B] [--set k=v]`` loads only the
generator's text encoder (never the DiT's training state), encodes every prompt at the recipe's
``ctx_len`` and writes a resumable float16 pool; ``rdm context import RECIPE POOL.npy [--tau T.npy]``
takes the paper authors' pool and tau table (``rdm_import.context``); ``rdm context info POOL``
prints its metadata.
"""

from __future__ import annotations

import argparse
from typing import Any

from rdm_core.cli.options import add_overrides


def configure(parser: argparse.ArgumentParser):
    sub = parser.add_subparsers(dest="context_command", metavar="SUBCOMMAND", required=True)
    build = sub.add_parser("build", help="encode a prompts file into a context pool")
    build.add_argument("recipe", help="recipe file or shipped name (its generator encodes the prompts)")
    build.add_argument(
        "--prompts", required=True, help="prompts file: .txt (one per line) or .jsonl (prompt/caption/text)"
    )
    build.add_argument("-o", "--out", required=True, help="pool path (.npy); _meta.json and _prompts.json go beside it")
    build.add_argument("--batch-size", type=int, default=16, help="prompts per chunk (one resume point per chunk)")
    build.add_argument("--device", default="auto", help="auto | cpu | cuda")
    add_overrides(build)
    from rdm_import.cli import add_context_import

    add_context_import(sub)
    info = sub.add_parser("info", help="print a pool's metadata")
    info.add_argument("pool", help="pool path (.npy)")
    return run


def run(args: argparse.Namespace) -> int:
    from rdm_core.console import console, print_json, styled

    if args.context_command == "import":
        from rdm_import.cli import run_context_import

        return run_context_import(args)
    if args.context_command == "info":
        from rdm_flux2.context_pool import ContextPool

        pool = ContextPool(args.pool)
        print_json({"path": str(pool.path), **pool.meta})
        return 0

    from rdm_core.devices import resolve_device
    from rdm_core.recipe.load import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    out, n, gen = build_recipe_pool(recipe, args.prompts, args.out, args.batch_size, resolve_device(args.device))
    console.print(styled(("ok", "green"), f" {n} contexts ({gen.ctx_len} x {gen.ctx_dim}, float16) -> {out}"))
    return 0


def build_recipe_pool(recipe: Any, prompts_file: str, out: str, batch_size: int = 16, device: Any = "cpu") -> Any:
    """Encode ``prompts_file`` with the recipe generator's text encoder into the pool ``out`` (resumable).

    Returns:
        ``(pool path, number of prompts, generator)``.
    """
    from omegaconf import OmegaConf

    from rdm_core.capabilities import ContextEncoder, require
    from rdm_core.prompts import read_prompts
    from rdm_core.recipe.assemble import build_generator
    from rdm_diffusers.base import DiffusersOneStepGenerator
    from rdm_flux2.configs import TEXT_LAYERS
    from rdm_flux2.context_pool import build_context_pool

    recipe = OmegaConf.create(OmegaConf.to_container(recipe))  # a copy: the caller's recipe keeps its pool
    # the pool is what we are building: the generator must not try to open it
    if "context_pool" in recipe.generator.args:
        recipe.generator.args.context_pool = None
    recipe.generator.weights = None
    gen = require(
        build_generator(recipe, device=device),
        ContextEncoder,
        what=f"generator {recipe.generator.name!r}",
        needed_by="rdm context build (pools of precomputed text contexts)",
        fix="use a flux2-klein recipe; other generators encode their prompts themselves",
    )
    # where the contexts come from, recorded in the pool (diffusers generators know their folder)
    diffusers = isinstance(gen, DiffusersOneStepGenerator)
    prompts = read_prompts(prompts_file)
    path = build_context_pool(
        prompts,
        gen.encode_prompts,
        out,
        ctx_len=gen.ctx_len,
        dim=gen.ctx_dim,
        variant=gen.variant if diffusers else "unknown",
        batch_size=batch_size,
        info={
            "generator": recipe.generator.name,
            "model_dir": str(gen.model_dir) if diffusers and gen.model_dir else None,
            "text_layers": list(TEXT_LAYERS),
            "prompts_file": str(prompts_file),
        },
    )
    return path, len(prompts), gen
