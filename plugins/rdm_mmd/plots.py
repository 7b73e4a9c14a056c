"""The mmd objective's own figure: the gated Lagrangian controller at work (``controller.png``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rdm_core.artifacts import atomic_path, read_jsonl


def _metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of a run's ``metrics.jsonl`` (none when it does not exist yet; a line cut by a kill
    is skipped, the next resume truncates it)."""
    if not Path(path).is_file():
        return []
    return [row for _, row in read_jsonl(path, skip_invalid=True) if isinstance(row, dict)]


def save_controller_plot(
    metrics_path: str | os.PathLike[str], floors: dict[str, float], out: str | os.PathLike[str]
) -> Path | None:
    """The controller at work: per-encoder weights, raw scores against their floors (dashed), and
    the score-to-floor ratio (1 = at the floor, where the encoder's weight is gated to zero)."""
    rows = [r for r in _metrics(metrics_path) if r.get("raw") and r.get("weights")]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_w, ax_s, ax_r) = plt.subplots(1, 3, figsize=(15, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, name in enumerate(rows[0]["raw"]):
        color = colors[i % len(colors)]
        kept = [r for r in rows if name in r["raw"] and name in r["weights"]]
        steps = [r["step"] for r in kept]
        ax_w.plot(steps, [r["weights"][name] for r in kept], color=color, label=name)
        ax_s.plot(steps, [r["raw"][name] for r in kept], color=color, label=name)
        floor = floors.get(name)
        if floor is not None:
            ax_s.axhline(floor, color=color, linestyle="--", linewidth=1)
            if floor > 0:
                ax_r.plot(steps, [r["raw"][name] / floor for r in kept], color=color, label=name)
    ax_w.set_title("controller weight per encoder")
    ax_s.set_title("raw L_e (dashed: floor b_e)")
    ax_r.set_title("L_e / b_e")
    ax_r.axhline(1.0, color="black", linestyle="--", linewidth=1)
    if all(v > 0 for r in rows for v in r["raw"].values()):
        ax_s.set_yscale("log")
        ax_r.set_yscale("log")
    for ax in (ax_w, ax_s, ax_r):
        ax.set_xlabel("step")
    ax_w.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(out)
