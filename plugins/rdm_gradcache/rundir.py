"""The run directory: resolved recipe, metrics log, checkpoints with full training state, PNGs.

``<run.output_dir>/<run.name>/``::

    recipe.yaml             the resolved recipe (rdm_core.recipe.load.to_yaml)
    metrics.jsonl           one row per step (rank 0)
    checkpoints/step_N/     model.safetensors + state.safetensors + state.json (rdm_core.checkpoints)
    samples/step_N.png      sample grids from fixed seeded noise
    loss.png                per-encoder raw L_e and the pre-clip gradient norm

A checkpoint holds everything an exact resume needs (the authors' checkpoints hold weights only): model weights, AdamW
state, controller state, every RNG state of every rank, and the step.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rdm_core.artifacts import append_jsonl, atomic_path, read_jsonl
from rdm_core.checkpoints import latest_checkpoint, load_checkpoint, save_checkpoint
from rdm_core.errors import ArtifactError
from rdm_gradcache.state import merge_state, split_state


class RunDir:
    """Paths and writers of one run directory (only rank 0 writes)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def recipe(self) -> Path:
        return self.root / "recipe.yaml"

    def sample_path(self, step: int) -> Path:
        return self.root / "samples" / f"step_{step:07d}.png"

    @property
    def loss_png(self) -> Path:
        return self.root / "loss.png"

    def write_recipe(self, text: str) -> None:
        with atomic_path(self.recipe) as tmp:
            tmp.write_text(text)

    def log(self, row: dict[str, Any]) -> None:
        append_jsonl(self.metrics, row)

    def truncate_metrics(self, step: int) -> None:
        """Drop rows after ``step`` (written after the checkpoint a resume starts from)."""
        if not self.metrics.exists():
            return
        # a line cut by the kill is dropped with the rows after the checkpoint
        kept = [row for _, row in read_jsonl(self.metrics, skip_invalid=True) if int(row.get("step", 0)) <= step]
        with atomic_path(self.metrics) as tmp:
            tmp.write_text("".join(f"{json.dumps(row)}\n" for row in kept))

    def latest(self) -> Path | None:
        return latest_checkpoint(self.root)

    # -- checkpoints --------------------------------------------------------------------------
    def save(
        self,
        step: int,
        model: dict[str, Tensor],
        optimizer: dict[str, Any],
        objective: dict[str, Any],
        rng_per_rank: list[dict[str, Tensor]],
        extra: dict[str, Any],
        *,
        meta: dict[str, Any],
        keep: int,
        finite: bool = True,
    ) -> Path:
        """Write checkpoint ``step`` atomically (rank 0 only; ``rng_per_rank`` from every rank).

        ``finite=False`` marks weights written during a run of non-finite steps (see
        :mod:`rdm_gradcache.divergence`) even when every number in them is finite.
        """
        tensors: dict[str, Tensor] = {}
        opt_tensors, opt_tree = split_state(optimizer, "optim")
        obj_tensors, obj_tree = split_state(objective, "objective")
        tensors.update(opt_tensors)
        tensors.update(obj_tensors)
        for rank, rng in enumerate(rng_per_rank):
            tensors.update({f"rng.{rank}.{k}": v for k, v in rng.items()})
        state = {
            "optimizer": opt_tree,
            "objective": obj_tree,
            "world_size": len(rng_per_rank),
            "rng_keys": sorted(rng_per_rank[0]),
            **extra,
        }
        return save_checkpoint(self.root, step, model, tensors, state, meta=meta, keep=keep or None, finite=finite)

    @staticmethod
    def load(path: Path, rank: int, world_size: int) -> dict[str, Any]:
        """``{step, model, optimizer, objective, rng, extra}`` of a checkpoint for this rank."""
        model, tensors, state = load_checkpoint(path)
        saved_world = int(state.get("world_size", 1))
        if saved_world != world_size:
            raise ArtifactError(
                f"checkpoint {path} was written by {saved_world} process(es); this run has {world_size}.",
                f"resume with the same number of processes ({saved_world}), or start a new run "
                f"with generator.weights={path}",
            )
        rng = {k: tensors[f"rng.{rank}.{k}"] for k in state["rng_keys"]}
        return {
            "step": int(state["step"]),
            "model": model,
            "optimizer": merge_state(state["optimizer"], tensors),
            "objective": merge_state(state["objective"], tensors),
            "rng": rng,
            "extra": {k: v for k, v in state.items() if k not in ("optimizer", "objective", "rng_keys")},
        }


def peak_memory_gb(device: torch.device) -> float:
    """Peak allocated CUDA memory, or the process's peak RSS on CPU, in GiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
