"""Presenting evaluation results: a rich table per encoder, a JSON report, a bar chart PNG."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rdm_core.artifacts import atomic_path, write_json

if TYPE_CHECKING:  # pragma: no cover
    from rich.table import Table

    from rdm_core.interfaces import MetricResult

RATIO_METRICS = ("sw_r14", "mmd_r14")


def encoder_label(name: str, held_out: Sequence[str]) -> str:
    """``name*`` for held-out encoders (never in the training loss), ``name`` otherwise."""
    return f"{name}*" if name in set(held_out) else name


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def ratio_table(results: dict[str, MetricResult], encoders: Sequence[str], held_out: Sequence[str]) -> Table:
    """One row per encoder (held-out marked ``*``) with each ratio metric's numbers, then the means."""
    from rich.table import Table

    table = Table(
        title="off-objective evaluation (ratio to real val; real = 1.00, lower is better)",
        caption="* held-out encoder (not in the training loss)",
    )
    table.add_column("encoder")
    present = [m for m in RATIO_METRICS if m in results]
    for m in present:
        if m == "sw_r14":
            table.add_column("SW gen", justify="right")
            table.add_column("SW val", justify="right")
            table.add_column("r_SW", justify="right", style="bold")
        else:
            table.add_column("m gen", justify="right")
            table.add_column("m val", justify="right")
            table.add_column("r_MMD", justify="right", style="bold")
    for k, enc in enumerate(encoders):
        row = [encoder_label(enc, held_out)]
        for m in present:
            d = results[m].extra.get("details", {}).get(enc, {})
            a, b = ("sw_gen", "sw_val") if m == "sw_r14" else ("m_gen", "m_val")
            row += [_fmt(d.get(a), 4), _fmt(d.get(b), 4), _fmt(results[m].per_item.get(enc))]
        table.add_row(*row, end_section=k == len(encoders) - 1)
    for label, key in (("mean (all)", None), ("mean train", "mean_train"), ("mean held-out*", "mean_held_out")):
        row = [label]
        for m in present:
            v = results[m].value if key is None else results[m].extra.get(key)
            row += ["", "", _fmt(v)]
        table.add_row(*row)
    return table


def scalar_table(results: dict[str, MetricResult]) -> Table | None:
    """PickScore / GenEval headline numbers and their per-item values."""
    from rich.table import Table

    others = {k: v for k, v in results.items() if k not in RATIO_METRICS}
    if not others:
        return None
    table = Table(title="other metrics")
    table.add_column("metric")
    table.add_column("item")
    table.add_column("value", justify="right")
    for name, res in others.items():
        table.add_row(name, "overall" if name == "geneval" else "mean", _fmt(res.value, 4), style="bold")
        for item, v in res.per_item.items():
            table.add_row("", item, _fmt(v, 4))
    return table


def write_report(path: str | os.PathLike[str], results: dict[str, MetricResult], context: dict[str, Any]) -> Path:
    """The JSON report: context (inputs, seeds, N, held-out list) plus every metric's result."""
    data = {"context": context, "metrics": {name: asdict(res) for name, res in results.items()}}
    write_json(path, data)
    return Path(path)


def bar_chart(
    path: str | os.PathLike[str],
    results: dict[str, MetricResult],
    encoders: Sequence[str],
    held_out: Sequence[str],
    title: str = "",
) -> Path | None:
    """Per-encoder ratio bars, one panel per ratio metric (their scales differ by orders of
    magnitude), the real-val floor at 1.0 dashed; held-out encoders hatched and starred. A panel
    switches to a log axis when its ratios span more than a factor of 20."""
    present = [m for m in RATIO_METRICS if m in results]
    if not present or not encoders:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    held = set(held_out)
    fig, axes = plt.subplots(
        len(present),
        1,
        sharex=True,
        squeeze=False,
        figsize=(max(6.0, 0.6 * len(encoders) + 2), 2.0 + 2.2 * len(present)),
    )
    for ax, m in zip(axes[:, 0], present, strict=True):
        ys = [results[m].per_item.get(e, float("nan")) for e in encoders]
        colors = ["tab:orange" if e in held else "tab:blue" for e in encoders]
        bars = ax.bar(range(len(encoders)), ys, color=colors)
        for bar_, enc in zip(bars, encoders, strict=True):
            if enc in held:
                bar_.set_hatch("//")
        ax.axhline(1.0, color="black", linestyle="--", linewidth=1)
        finite = [y for y in ys if y == y and y > 0]
        if finite and max(finite) / min([*finite, 1.0]) > 20:
            ax.set_yscale("log")
        ax.set_ylabel(f"{m}\n(mean {results[m].value:.3f})")
    axes[-1, 0].set_xticks(range(len(encoders)))
    axes[-1, 0].set_xticklabels([encoder_label(e, held_out) for e in encoders], rotation=45, ha="right")
    fig.suptitle(title or "per-encoder ratio to real val (dashed = 1, lower is better; * held-out)", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return Path(path)
