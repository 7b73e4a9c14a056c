"""GenEval protocol (docs/method.md): prompts, the seeded render layout, and the task-mean summary.

* Prompts: the official 553-prompt file (``djghosh13/geneval``:
  ``prompts/evaluation_metadata.jsonl``, MIT; one JSON object per line with ``tag``, ``include``,
  ``prompt`` and, for some tasks, ``exclude``), shipped as ``assets/geneval_prompts.jsonl``
  (``pkg:rdm_eval/assets/geneval_prompts.jsonl``); ``eval.args.geneval.prompts=PATH`` picks another.
* Render: sample ``j`` of prompt ``i`` uses its OWN generator seeded
  ``46_000_000 + i * 100 + j`` (a per-prompt stream changes the score by ~0.01).
* Layout: ``<out>/geneval/<i:05d>/metadata.jsonl`` + ``samples/<j:04d>.png`` (uint8 round(x*255)),
  the layout the official scorer reads.
* Overall = unweighted mean of the six per-task rates (not the per-image mean).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rdm_core.artifacts import read_jsonl
from rdm_core.errors import ArtifactError, ShapeError

if TYPE_CHECKING:  # pragma: no cover
    from rdm_core.interfaces import Generator

TASK_COUNTS: dict[str, int] = {
    "single_object": 80,
    "two_object": 99,
    "counting": 80,
    "colors": 94,
    "position": 100,
    "color_attr": 100,
}
TASKS = tuple(TASK_COUNTS)
OFFICIAL_PROMPT_COUNT = 553
SEED_BASE = 46_000_000
MAX_SAMPLES_PER_PROMPT = 100
ASSET_PROMPTS = Path(__file__).resolve().parent / "assets" / "geneval_prompts.jsonl"
PACKAGED_PROMPTS = "pkg:rdm_eval/assets/geneval_prompts.jsonl"


@dataclass(frozen=True)
class GenEvalPrompt:
    """One GenEval prompt: its index in the file, task tag, text and the full metadata row."""

    index: int
    tag: str
    prompt: str
    metadata: dict[str, Any] = field(default_factory=dict)


def sample_seed(prompt_idx: int, sample_idx: int) -> int:
    """The per-sample noise seed ``46_000_000 + prompt_idx * 100 + sample_idx``."""
    if not 0 <= sample_idx < MAX_SAMPLES_PER_PROMPT:
        raise ValueError(f"sample_idx must be in [0, {MAX_SAMPLES_PER_PROMPT}), got {sample_idx}")
    if prompt_idx < 0:
        raise ValueError(f"prompt_idx must be >= 0, got {prompt_idx}")
    return SEED_BASE + prompt_idx * MAX_SAMPLES_PER_PROMPT + sample_idx


def load_prompts(path: str | os.PathLike[str] | None = None) -> list[GenEvalPrompt]:
    """Read a GenEval prompt file in the official JSONL format.

    Args:
        path: the JSONL file (``pkg:`` paths allowed); ``None`` -> the shipped official 553 prompts.

    Raises:
        ArtifactError: missing file, bad JSON, or a row without ``tag``/``prompt``/``include``.
    """
    from rdm_core.prompts import resolve_path

    p = resolve_path(path) if path else ASSET_PROMPTS
    if not p.is_file():
        raise ArtifactError(
            f"GenEval prompt file {p} not found.",
            "omit eval.args.geneval.prompts to use the shipped official 553 prompts, or pass an existing file",
        )
    prompts: list[GenEvalPrompt] = []
    for lineno, row in read_jsonl(p, fix="use the official evaluation_metadata.jsonl"):
        missing = [k for k in ("tag", "prompt", "include") if k not in row] if isinstance(row, dict) else []
        if not isinstance(row, dict) or missing:
            raise ArtifactError(
                f"{p}:{lineno} lacks field(s) {', '.join(missing) or '(not an object)'}.",
                "each line must be a JSON object with tag, include and prompt (official format)",
            )
        prompts.append(GenEvalPrompt(len(prompts), str(row["tag"]), str(row["prompt"]), row))
    if not prompts:
        raise ArtifactError(f"{p} holds no prompts.", "use the official evaluation_metadata.jsonl")
    return prompts


def prompt_set_report(prompts: Sequence[GenEvalPrompt]) -> dict[str, Any]:
    """Counts per tag and whether the set looks like the official 553 (recorded in reports)."""
    counts: dict[str, int] = {}
    for pr in prompts:
        counts[pr.tag] = counts.get(pr.tag, 0) + 1
    return {
        "n": len(prompts),
        "counts": counts,
        "official": len(prompts) == OFFICIAL_PROMPT_COUNT and counts == TASK_COUNTS,
    }


def prompt_dir(out: str | os.PathLike[str], prompt_idx: int) -> Path:
    return Path(out) / f"{prompt_idx:05d}"


def _complete(folder: Path, n: int) -> bool:
    return (folder / "metadata.jsonl").is_file() and all(
        (folder / "samples" / f"{j:04d}.png").is_file() for j in range(n)
    )


def render(
    generator: Generator,
    prompts: Sequence[GenEvalPrompt],
    out: str | os.PathLike[str],
    *,
    samples_per_prompt: int = 4,
    device: Any = "cpu",
    resume: bool = True,
    precision: str = "fp32",
) -> Path:
    """Render the GenEval images in the official layout; returns the image directory.

    Each sample has its own noise generator (:func:`sample_seed`); the conditions come from
    ``generator.conditions_from_prompts`` (text-to-image generators provide it). Prompt folders
    that are already complete are skipped when ``resume``. The generator runs under the
    autocast of ``precision`` (the recipe's ``train.precision``), as in training.
    """
    import torch

    from rdm_core.artifacts import atomic_path
    from rdm_core.capabilities import PromptConditionedGenerator, require
    from rdm_core.console import progress
    from rdm_core.images import save_png
    from rdm_core.interfaces import as_image_batch
    from rdm_core.precision import generator_autocast

    prompted = require(
        generator,
        PromptConditionedGenerator,
        what="the generator",
        needed_by="GenEval (it renders the GenEval prompts)",
        fix="GenEval needs a text-to-image generator; drop 'geneval' from --metrics",
    )
    if not 1 <= samples_per_prompt <= MAX_SAMPLES_PER_PROMPT:
        raise ValueError(f"samples_per_prompt must be in [1, {MAX_SAMPLES_PER_PROMPT}], got {samples_per_prompt}")
    root = Path(out)
    module = generator.trainable_module()
    was_training = module.training
    module.eval()
    try:
        with progress(transient=True) as bar:
            task = bar.add_task("geneval render", total=len(prompts), status="")
            for pr in prompts:
                folder = prompt_dir(root, pr.index)
                if not (resume and _complete(folder, samples_per_prompt)):
                    noise = torch.stack(
                        [
                            torch.randn(
                                generator.noise_shape(),
                                device=device,
                                generator=torch.Generator(device=device).manual_seed(sample_seed(pr.index, j)),
                            )
                            for j in range(samples_per_prompt)
                        ]
                    )
                    cond = prompted.conditions_from_prompts([pr.prompt] * samples_per_prompt).to(device)
                    with torch.no_grad(), generator_autocast(precision, device):
                        images = as_image_batch(generator.generate(noise, cond)).float()
                    for j in range(samples_per_prompt):
                        save_png(images[j], folder / "samples" / f"{j:04d}.png")
                    with atomic_path(folder / "metadata.jsonl") as tmp:
                        tmp.write_text(json.dumps(pr.metadata) + "\n")
                bar.update(task, advance=1)
    finally:
        module.train(was_training)
    return root


def read_results(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of a scorer results JSONL (official format: one object per image with ``tag`` and ``correct``)."""
    p = Path(path)
    if not p.is_file():
        raise ArtifactError(
            f"GenEval results file {p} not found.", "run the scorer first, or pass the results JSONL it wrote"
        )
    rows = []
    for lineno, row in read_jsonl(p, fix="re-run the scorer"):
        if not isinstance(row, dict) or "tag" not in row or "correct" not in row:
            raise ArtifactError(
                f"{p}:{lineno} lacks 'tag' or 'correct'.", "pass the results JSONL of the official GenEval scorer"
            )
        rows.append(row)
    if not rows:
        raise ArtifactError(f"{p} holds no results.", "re-run the scorer")
    return rows


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-task correctness rates and the overall score = unweighted mean of task rates.

    The per-image mean is reported too (``per_image``) because it differs (it weights tasks by
    their image counts and under-reports by ~0.5-1 pp on the official set).
    """
    totals: dict[str, list[int]] = {}
    for row in rows:
        hit = row["correct"]
        if not isinstance(hit, (bool, int)) or (isinstance(hit, int) and hit not in (0, 1)):
            raise ShapeError(f"GenEval 'correct' must be a boolean, got {hit!r}.", "pass the official scorer's results")
        t = totals.setdefault(str(row["tag"]), [0, 0])
        t[0] += int(bool(hit))
        t[1] += 1
    rates = {tag: c / n for tag, (c, n) in totals.items()}
    ordered = {tag: rates[tag] for tag in [*TASKS, *sorted(set(rates) - set(TASKS))] if tag in rates}
    hits, count = sum(c for c, _ in totals.values()), sum(n for _, n in totals.values())
    return {
        "overall": sum(ordered.values()) / len(ordered) if ordered else math.nan,
        "tasks": ordered,
        "counts": {tag: totals[tag][1] for tag in ordered},
        "per_image": hits / count if count else math.nan,
        "missing_tasks": [t for t in TASKS if t not in ordered],
    }
