"""``rdm plan RECIPE --gpus 8xH200 [--mfu 0.35] [--set k=v]... [--json]``."""

from __future__ import annotations

import argparse

from rdm_core.cli.options import add_overrides


def configure(parser: argparse.ArgumentParser):
    parser.add_argument("recipe", help="recipe file or shipped recipe name")
    parser.add_argument("--gpus", default="8xH200", help="COUNTxMODEL, e.g. 8xH200, 32xH100 (default 8xH200)")
    parser.add_argument(
        "--mfu", type=float, default=0.35, help="model FLOPs utilisation assumed for time (default 0.35)"
    )
    add_overrides(parser, "override a recipe value (repeatable), e.g. --set train.micro_batch=4")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return run


def _gb(x: float) -> str:
    return f"{x / 1e9:,.2f}"


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from rdm_core.console import console, print_json, styled
    from rdm_core.errors import RecipeError
    from rdm_core.recipe.load import load_recipe
    from rdm_gradcache.plan import make_plan

    if not 0 < args.mfu <= 1:
        raise RecipeError(f"--mfu {args.mfu} is not in (0, 1].", "pass e.g. --mfu 0.35")
    recipe = load_recipe(args.recipe, args.overrides)
    plan = make_plan(recipe, args.gpus, mfu=args.mfu)
    if args.json:
        print_json(plan.to_dict())
        return 0
    console.print(
        styled((str(args.recipe), "bold")),
        f"on {plan.gpus}x{plan.gpu}: N={plan.rollout} = micro_batch {plan.micro_batch}"
        f" x {plan.gpus} GPUs x {plan.chunks} chunks; checkpointing {'on' if plan.checkpointing else 'off'};"
        f" FSDP {'on' if plan.fsdp else 'off'}; generator size from {plan.sources['generator']}",
    )
    mem = Table(title="memory per GPU (GB)")
    mem.add_column("item")
    mem.add_column("GB", justify="right")
    for key, value in plan.memory.items():
        mem.add_row(key, _gb(value))
    total = sum(plan.memory.values())
    from rdm_gradcache.plan import GPUS

    cap = GPUS[plan.gpu.lower()].memory_gb
    fits = total / 1e9 <= cap
    mem.add_row(
        styled(("total", "bold")),
        styled((_gb(total), "bold"), f" of {cap:g}", ("" if fits else " (does not fit)", "red")),
    )
    console.print(mem)
    act = Table(title="activations of one chunk (GB)")
    act.add_column("part")
    act.add_column("GB", justify="right")
    for key, value in plan.activations.items():
        act.add_row(key, _gb(value))
    console.print(act)
    hours = plan.seconds_per_step * plan.steps / 3600
    console.print(
        f"time: {plan.flops_per_step / 1e15:,.1f} PFLOP per GPU per step -> {plan.seconds_per_step:,.1f} s/step "
        f"at MFU {plan.mfu:g}; {plan.steps} steps = {hours:,.2f} h = {plan.gpu_hours:,.1f} GPU-hours"
    )
    if plan.paper:
        p = plan.paper
        console.print(
            f"paper: ~{p['gpu_hours']:g} {p['gpu']} GPU-hours to step {p['step']}; "
            f"this plan: {p['this_plan_gpu_hours_to_step']:,.1f} GPU-hours to step {p['step']}"
        )
    for note in plan.notes:
        console.print(styled(("note:", "yellow"), f" {note}"))
    return 0
