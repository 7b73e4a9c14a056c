"""PNG outputs of a run: sample grids and the per-encoder loss curve."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rdm_core.artifacts import atomic_path


def save_grid(images: Tensor, path: str | os.PathLike[str], *, columns: int | None = None, pad: int = 2) -> Path:
    """Tile ``(B,3,H,W)`` images in ``[0,1]`` (video: its first frame) into one PNG, atomically."""
    from PIL import Image

    x = images.detach().float().cpu()
    if x.dim() == 5:  # (B,3,F,H,W): show the first frame
        x = x[:, :, 0]
    x = x.clamp(0, 1)
    b, c, h, w = x.shape
    if c == 1:
        x = x.expand(-1, 3, -1, -1)
    cols = columns or max(1, math.ceil(math.sqrt(b)))
    rows = math.ceil(b / cols)
    canvas = torch.ones(3, rows * (h + pad) + pad, cols * (w + pad) + pad)
    for i in range(b):
        r, col = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        canvas[:, top : top + h, left : left + w] = x[i, :3]
    array = (canvas.permute(1, 2, 0).numpy() * 255).round().astype("uint8")
    image = Image.fromarray(array)
    if max(image.size) < 512:  # tiny demo images: upscale so the PNG is viewable
        factor = max(1, 512 // max(image.size))
        image = image.resize((image.size[0] * factor, image.size[1] * factor), Image.NEAREST)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return Path(path)


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    p = Path(path)
    if not p.exists():
        return []
    rows = []
    for line in p.read_text().splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill; the next resume truncates it
                continue
    return rows


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
    norms = [(r["step"], r["grad_norm"]) for r in rows if r.get("grad_norm") is not None and math.isfinite(r["grad_norm"])]
    if norms:
        ax2.plot(*zip(*norms), color="tab:gray")
    ax2.set_xlabel("step")
    ax2.set_ylabel("pre-clip grad norm")
    ax2.set_title("gradient norm")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(out)
