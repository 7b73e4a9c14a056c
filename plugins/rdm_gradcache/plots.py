"""PNG outputs of a run: sample grids and the per-encoder loss curve."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from rdm_core.artifacts import atomic_path, read_jsonl


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of a run's ``metrics.jsonl`` ([] before the first step); a line cut by a kill is
    skipped (the next resume truncates it)."""
    if not Path(path).exists():
        return []
    return [row for _, row in read_jsonl(path, skip_invalid=True)]


def save_loss_curve(metrics_path: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path | None:
    """Per-encoder raw ``L_e`` against step (log scale when all positive) and the grad norm."""
    rows = [r for r in read_metrics(metrics_path) if r.get("raw")]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    names = list(rows[0]["raw"])
    all_positive = True
    for name in names:
        steps = [r["step"] for r in rows if name in r["raw"]]
        values = [r["raw"][name] for r in rows if name in r["raw"]]
        all_positive &= all(v > 0 for v in values)
        ax.plot(steps, values, label=name)
    if all_positive:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("raw L_e (MMD^2)")
    ax.set_title("per-encoder loss")
    ax.legend(fontsize=7)
    norms = [
        (r["step"], r["grad_norm"]) for r in rows if r.get("grad_norm") is not None and math.isfinite(r["grad_norm"])
    ]
    if norms:
        ax2.plot(*zip(*norms, strict=True), color="tab:gray")
    ax2.set_xlabel("step")
    ax2.set_ylabel("pre-clip grad norm")
    ax2.set_title("gradient norm")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(out)
