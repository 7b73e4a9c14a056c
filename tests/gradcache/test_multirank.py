"""The trainer on two real gloo ranks, in the default suite (the torchrun/FSDP2 run is `-m slow`).

Two spawned processes run ``GradCacheTrainer`` (the code `rdm train` runs under torchrun) on the
tiny recipe, recording every chunk each rank draws. Three things must hold:

- ranks draw different samples (every rank with the same seed would train on one batch repeated
  across ranks);
- the two-rank run takes exactly the steps one process takes on the global batch (every rank's
  chunks in rank order): the loss sees the gathered batch, and gradients are averaged;
- a run stopped after step 2 and resumed ends bit-identical to the uninterrupted run, which
  needs every rank's RNG state in the checkpoint.

The process group meets through a file store (no TCP port to race for).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from rdm_core.artifacts import load_tensors, save_tensors
from rdm_core.interfaces import Conditions, TrainerOptions
from rdm_core.recipe.load import load_recipe
from rdm_gradcache.gradcache import Chunk
from rdm_gradcache.trainer import GradCacheTrainer
from rdm_testing.gradcache.project import build_references, register_tiny_plugin, write_recipe

WORLD, STEPS, CUT = 2, 3, 2
# fp64 training with dropout off: one process replaying the global batch must match to rounding.
SECTIONS = {
    "generator": {"args": {"dropout": 0.0}},
    "train": {"steps": STEPS, "precision": "fp64", "checkpoint_every": CUT, "sample_count": 0},
}


def _trainer(path: Path, *overrides: str) -> GradCacheTrainer:
    return GradCacheTrainer(
        load_recipe(path, list(overrides)), TrainerOptions(recipe_ref=str(path), show_progress=False)
    )


def _record_draws(trainer: GradCacheTrainer) -> list[list[Chunk]]:
    """Wrap ``draw_chunks`` so every step's chunks are kept (the trainer still uses them)."""
    drawn: list[list[Chunk]] = []
    draw = trainer.draw_chunks

    def recording(device: torch.device) -> list[Chunk]:
        chunks = draw(device)
        drawn.append(chunks)
        return chunks

    trainer.draw_chunks = recording  # type: ignore[method-assign]
    return drawn


def _save_draws(path: Path, drawn: list[list[Chunk]]) -> None:
    tensors = {}
    for step, chunks in enumerate(drawn, start=1):
        for k, chunk in enumerate(chunks):
            tensors[f"{step}.{k}.noise"] = chunk.noise
            tensors[f"{step}.{k}.ids"] = chunk.conditions.inputs
    save_tensors(path, tensors, {"steps": len(drawn), "chunks": len(drawn[0])})


def _load_draws(path: Path) -> list[list[Chunk]]:
    tensors, meta = load_tensors(path)
    return [
        [
            Chunk(
                tensors[f"{s}.{k}.noise"],
                Conditions(inputs=tensors[f"{s}.{k}.ids"], caption_ids=tensors[f"{s}.{k}.ids"]),
            )
            for k in range(meta["chunks"])
        ]
        for s in range(1, meta["steps"] + 1)
    ]


def _worker(rank: int, root: str, straight: str, cut: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", init_method=f"file://{root}/store", rank=rank, world_size=WORLD)
    try:
        register_tiny_plugin()
        trainer = _trainer(Path(straight))
        drawn = _record_draws(trainer)
        trainer.run()
        _save_draws(Path(root) / f"draws_rank{rank}.safetensors", drawn)
        _trainer(Path(cut), f"train.steps={CUT}").run()  # stops after step CUT (a checkpoint)
        _trainer(Path(cut)).run(resume=True)  # a new trainer, as a restarted job builds it
    finally:
        dist.destroy_process_group()


def _checkpoint(run: Path, step: int) -> dict[str, torch.Tensor]:
    folder = run / "checkpoints" / f"step_{step:07d}"
    model, _ = load_tensors(folder / "model.safetensors")
    state, _ = load_tensors(folder / "state.safetensors")
    return {**{f"model.{k}": v for k, v in model.items()}, **{f"state.{k}": v for k, v in state.items()}}


def _rows(run: Path) -> list[dict]:
    keep = ("step", "raw", "weights", "loss", "grad_norm")
    return [{k: r[k] for k in keep} for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Run both two-rank jobs once; the tests below read what they wrote."""
    root = tmp_path_factory.mktemp("multirank")
    build_references(root)
    straight = write_recipe(root, name="straight", **SECTIONS)
    cut = write_recipe(root, name="cut", **SECTIONS)
    mp.spawn(_worker, args=(str(root), str(straight), str(cut)), nprocs=WORLD, join=True)
    return root


def test_ranks_draw_different_samples(two_ranks):
    draws = [_load_draws(two_ranks / f"draws_rank{r}.safetensors") for r in range(WORLD)]
    assert [len(d) for d in draws] == [STEPS, STEPS]
    for step in range(STEPS):
        noise = [torch.cat([c.noise for c in d[step]]) for d in draws]
        assert noise[0].shape == (8, *noise[0].shape[1:])  # rollout 16 = 2 ranks x 2 chunks x 4
        assert not torch.equal(noise[0], noise[1]), f"step {step + 1}: both ranks drew the same noise"
        ids = [torch.cat([c.conditions.inputs for c in d[step]]) for d in draws]
        assert not torch.equal(ids[0], ids[1]), f"step {step + 1}: both ranks drew the same conditions"
    # and every step draws afresh
    assert not torch.equal(draws[0][0][0].noise, draws[0][1][0].noise)


def test_two_ranks_take_the_steps_of_one_process_on_the_global_batch(two_ranks):
    """One process fed every rank's chunks in rank order must end where the two ranks ended."""
    register_tiny_plugin()
    draws = [_load_draws(two_ranks / f"draws_rank{r}.safetensors") for r in range(WORLD)]
    global_batches = iter([draws[0][s] + draws[1][s] for s in range(STEPS)])
    single = _trainer(two_ranks / "straight.yaml", "run.name=single")
    single.draw_chunks = lambda device: next(global_batches)  # type: ignore[method-assign]
    single.run()

    want = _rows(two_ranks / "runs" / "single")
    got = _rows(two_ranks / "runs" / "straight")
    assert [r["step"] for r in got] == [1, 2, 3]
    # Measured: raw MMDs and weights equal to the last bit, grad norms within 2e-16 relative, weights
    # within 6e-17 absolute (7e-15 relative); tolerances are ~100x those.
    for a, b in zip(got, want, strict=True):
        # the loss and per-encoder MMDs are computed on the same 16 rows in the same order
        assert a["raw"] == pytest.approx(b["raw"], rel=1e-12, abs=0)
        assert a["weights"] == pytest.approx(b["weights"], rel=1e-12, abs=0)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-14)
    multi, one = _checkpoint(two_ranks / "runs" / "straight", STEPS), _checkpoint(two_ranks / "runs" / "single", STEPS)
    for key, value in one.items():
        if key.startswith("model."):
            torch.testing.assert_close(multi[key], value, rtol=1e-12, atol=1e-14, msg=key)


def test_resume_restores_every_ranks_rng(two_ranks):
    straight, cut = two_ranks / "runs" / "straight", two_ranks / "runs" / "cut"
    a, b = _checkpoint(straight, STEPS), _checkpoint(cut, STEPS)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"the resumed run differs at {key}"
    assert _rows(cut) == _rows(straight)
    # what made that possible: each rank's own streams are in the checkpoint
    state, _ = load_tensors(straight / "checkpoints" / f"step_{CUT:07d}" / "state.safetensors")
    for key in ("generator.noise", "generator.conditions", "torch_cpu"):
        assert not torch.equal(state[f"rng.0.{key}"], state[f"rng.1.{key}"]), key
