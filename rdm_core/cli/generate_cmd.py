"""``rdm generate``: write samples of any recipe's generator as individual PNGs plus a grid PNG.

::

    rdm generate RECIPE (--checkpoint C | --weights W [--weights-format F] | --base)
                 (--prompt TEXT ... | --prompts FILE | --num K) [--per-prompt N] [--seed S]
                 [--teacher-steps K] [--batch-size B] --out DIR [--set key=value ...]

Sample ``i`` (in output order) uses noise drawn from its own CPU generator seeded
``seed * 1_000_003 + i``, so a sample does not depend on the batch size or on the other samples.
With prompts, conditions come from ``generator.conditions_from_prompts`` (prompts encoded from their
own text); without, from ``generator.sample_conditions(K, rng)`` with ``rng`` seeded ``seed``.
Video generators ``(B, 3, F, H, W)`` are written as one horizontal frame strip per sample.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rdm_core.cli.options import add_overrides

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

SEED_STRIDE = 1_000_003


def configure(parser: argparse.ArgumentParser):
    parser.add_argument("recipe", help="recipe file or shipped recipe name")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--checkpoint",
        help="run dir (latest checkpoint), checkpoint dir, model.safetensors, or a third-party container the "
        'generator reads (e.g. the authors\' {"model": ...} .pth)',
    )
    src.add_argument("--weights", help="third-party generator weights, read by the generator's load_weights")
    src.add_argument(
        "--base", action="store_true", help="sample the recipe's base generator (generator.weights) explicitly"
    )
    parser.add_argument(
        "--weights-format", default="auto", help="format for --weights (generator-specific, e.g. rdm, bfl)"
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--prompt", action="append", help="a prompt (repeatable)")
    what.add_argument("--prompts", help="prompts file: .txt (one per line) or .jsonl (prompt/caption/text)")
    what.add_argument("--num", type=int, help="number of samples with conditions drawn by the generator")
    parser.add_argument("--per-prompt", type=int, default=1, help="samples per prompt (with --prompt/--prompts)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (sample i uses seed*1000003+i)")
    parser.add_argument(
        "--teacher-steps",
        type=int,
        default=0,
        help="sample with the generator's multi-step teacher instead of one step (0 = one step)",
    )
    parser.add_argument("--batch-size", type=int, default=16, help="samples per forward pass")
    parser.add_argument("--out", required=True, help="output directory")
    add_overrides(parser)
    return run


def sample_noise(shape: tuple[int, ...], indices: range, seed: int) -> Tensor:
    """Noise for samples ``indices``, each from its own generator (``seed * 1000003 + i``)."""
    import torch

    rows = [torch.randn(shape, generator=torch.Generator().manual_seed(seed * SEED_STRIDE + i)) for i in indices]
    return torch.stack(rows)


def generate_samples(
    gen: Any,
    conditions_for: Any,
    total: int,
    *,
    seed: int,
    batch_size: int,
    teacher_steps: int = 0,
    device: str = "cpu",
    autocast: bool = False,
    generator_label: str = "the generator",
) -> list[Any]:
    """``total`` uint8 samples; ``conditions_for(start, stop)`` returns the batch's Conditions.

    ``generator_label`` names the generator in errors (e.g. ``"generator 'flux2-klein'"``).
    """
    import contextlib

    import torch

    from rdm_core.capabilities import TeacherSampler, require
    from rdm_core.console import progress
    from rdm_core.images import hwc_uint8

    if teacher_steps:
        require(
            gen,
            TeacherSampler,
            what=generator_label,
            needed_by="rdm generate --teacher-steps",
            fix="drop --teacher-steps",
        )
    out: list[Any] = []
    amp = torch.autocast(torch.device(device).type, dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with progress() as bar, torch.no_grad(), amp:
        task = bar.add_task("generate", total=total, status="")
        for start in range(0, total, batch_size):
            stop = min(start + batch_size, total)
            noise = sample_noise(tuple(gen.noise_shape()), range(start, stop), seed).to(device)
            cond = conditions_for(start, stop).to(device)
            x = gen.teacher_sample(noise, cond, teacher_steps) if teacher_steps else gen.generate(noise, cond)
            out.extend(list(hwc_uint8(x)))
            bar.update(task, completed=stop)
    return out


def run(args: argparse.Namespace) -> int:
    from rdm_core.console import console, styled
    from rdm_core.errors import RdmError
    from rdm_core.prompts import read_prompts
    from rdm_core.recipe.load import load_recipe

    if args.batch_size <= 0 or args.per_prompt <= 0 or (args.num is not None and args.num <= 0):
        raise RdmError("--num, --per-prompt and --batch-size must be positive.", "pass e.g. --num 16")
    recipe = load_recipe(args.recipe, args.overrides)
    prompts = args.prompt or (read_prompts(args.prompts) if args.prompts else None)
    out = write_samples(
        recipe,
        args.out,
        checkpoint=args.checkpoint,
        weights=args.weights,
        weights_format=args.weights_format,
        prompts=prompts,
        num=args.num,
        per_prompt=args.per_prompt,
        seed=args.seed,
        teacher_steps=args.teacher_steps,
        batch_size=args.batch_size,
        recipe_ref=str(args.recipe),
    )
    console.print(styled(("ok", "green"), f" samples + grid.png -> {out}"))
    return 0


def load_sampling_generator(
    recipe: Any, *, checkpoint: str | None = None, weights: str | None = None, weights_format: str = "auto"
) -> Any:
    """The recipe's generator on its device, with trained weights (a checkpoint or third-party
    weights; neither: the base weights), in eval mode."""
    from rdm_core.checkpoints import load_generator_weights
    from rdm_core.devices import resolve_device
    from rdm_core.recipe.assemble import build_generator

    gen = build_generator(recipe, device=resolve_device(recipe.run.device))
    if checkpoint:
        load_generator_weights(checkpoint, gen)
    elif weights:
        gen.load_weights(weights, format=weights_format)
    gen.trainable_module().eval()
    return gen


def write_samples(
    recipe: Any,
    out: str | Path,
    *,
    checkpoint: str | None = None,
    weights: str | None = None,
    weights_format: str = "auto",
    prompts: list[str] | None = None,
    num: int | None = None,
    per_prompt: int = 1,
    seed: int = 0,
    teacher_steps: int = 0,
    batch_size: int = 16,
    recipe_ref: str = "",
    generator: Any = None,
) -> Path:
    """Write samples as ``<out>/<i:05d>.png``, ``grid.png`` and ``samples.json`` (seeds, prompts).

    With ``prompts``, ``per_prompt`` samples of each (encoded from their own text); otherwise
    ``num`` samples whose conditions the generator draws (``sample_conditions``, seeded ``seed``);
    their captions, when the generator has them, are recorded too. ``generator``: one already
    built by :func:`load_sampling_generator` (callers writing several sets build it once).
    """
    import numpy as np
    import torch

    from rdm_core.artifacts import write_json
    from rdm_core.capabilities import PromptConditionedGenerator, require
    from rdm_core.devices import resolve_device
    from rdm_core.images import save_grid, save_png

    device = resolve_device(recipe.run.device)
    gen = generator or load_sampling_generator(
        recipe, checkpoint=checkpoint, weights=weights, weights_format=weights_format
    )
    label = f"generator {recipe.generator.name!r}"

    if prompts is not None:
        prompted = require(
            gen,
            PromptConditionedGenerator,
            what=label,
            needed_by="rdm generate --prompt/--prompts",
            fix="use --num K (conditions drawn by the generator) instead",
        )
        captions: list[str] | None = [p for p in prompts for _ in range(per_prompt)]
        total = len(captions)

        def conditions_for(start: int, stop: int) -> Any:
            return prompted.conditions_from_prompts(captions[start:stop])
    else:
        total = int(num or 0)
        rng = torch.Generator().manual_seed(seed)
        cond_all = gen.sample_conditions(total, rng)  # drawn once, so batching does not change them
        captions = list(cond_all.captions) if cond_all.captions is not None else None

        def conditions_for(start: int, stop: int) -> Any:
            return _slice_conditions(cond_all, start, stop)

    autocast = recipe.train.precision == "bf16"  # the training autocast, on any device
    images = generate_samples(
        gen,
        conditions_for,
        total,
        seed=seed,
        batch_size=batch_size,
        teacher_steps=teacher_steps,
        device=device,
        autocast=autocast,
        generator_label=label,
    )
    out = Path(out)
    index = []
    for i, img in enumerate(images):
        name = f"{i:05d}.png"
        save_png(img, out / name)
        row: dict[str, Any] = {"file": name, "noise_seed": seed * SEED_STRIDE + i}
        if captions is not None:
            row["prompt"] = captions[i]
        index.append(row)
    save_grid(np.stack(images), out / "grid.png", min_side=0)  # 1:1 pixels, like the PNGs
    write_json(
        out / "samples.json",
        {
            "recipe": recipe_ref,
            "checkpoint": checkpoint or weights or "base",
            "seed": seed,
            "teacher_steps": teacher_steps,
            "samples": index,
        },
    )
    return out


def _slice_conditions(cond: Any, start: int, stop: int) -> Any:
    """Rows ``start:stop`` of a Conditions (tensor or tuple inputs, ids, captions)."""
    import torch

    from rdm_core.interfaces import Conditions

    def cut(x: Any) -> Any:
        if x is None:
            return None
        if isinstance(x, tuple):
            return tuple(cut(v) for v in x)
        if isinstance(x, (torch.Tensor, list)):
            return x[start:stop]
        return x  # not per-sample (e.g. a shared setting): the same for every slice

    return Conditions(cut(cond.inputs), cut(cond.caption_ids), cut(cond.captions))
