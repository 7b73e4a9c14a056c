"""What ``rdm eval`` leaves behind: the outcome object, where its files go, and writing them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from rdm_core.interfaces import MetricResult


@dataclass
class EvalOutcome:
    """What an evaluation produced: metric results and the files written."""

    results: dict[str, MetricResult]
    encoders: list[str]
    held_out: list[str]
    out_dir: Path
    context: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


def default_out_dir(recipe: Any, kind: str, checkpoint: str | None) -> Path:
    """Where ``rdm eval`` writes without ``--out``.

    A checkpoint's evaluation goes beside it, never into the recipe's run directory (which may
    be another run): an rdm checkpoint ``RUN/checkpoints/step_N`` (or ``RUN`` itself, meaning its
    latest checkpoint) -> ``RUN/eval/step_N``; any other weights file or folder ``X`` ->
    ``<folder of X>/eval/<name of X>``. Other inputs go to ``<recipe run dir>/eval/<input kind>``.
    """
    from rdm_core.run_dir import run_directory

    if kind != "checkpoint" or checkpoint is None:
        return run_directory(recipe) / "eval" / kind
    from rdm_core.checkpoints import rdm_model_file

    model = rdm_model_file(checkpoint)
    if model is not None and model.parent.parent.name == "checkpoints":
        return model.parent.parent.parent / "eval" / model.parent.name
    p = Path(checkpoint).expanduser()
    return p.parent / "eval" / (p.stem if p.is_file() else p.name)


def write_outputs(outcome: EvalOutcome) -> None:
    """Write ``eval.json`` and the ratio chart into ``outcome.out_dir``; record every file in ``outcome.files``."""
    from rdm_eval.report import bar_chart, write_report

    outcome.files["report"] = str(write_report(outcome.out_dir / "eval.json", outcome.results, outcome.context))
    png = bar_chart(
        outcome.out_dir / "ratios.png",
        outcome.results,
        outcome.encoders,
        outcome.held_out,
        title=f"{outcome.context['input']['kind']}: ratio to real val (dashed = 1; * held-out, hatched)",
    )
    if png is not None:
        outcome.files["chart"] = str(png)
    if "generated" in outcome.context and "features_file" in outcome.context["generated"]:
        outcome.files["features"] = outcome.context["generated"]["features_file"]


def headline(outcome: EvalOutcome) -> dict[str, float]:
    """Metric name -> headline value."""
    return {name: res.value for name, res in outcome.results.items()}
