"""Two gloo processes take the same optimizer step as one process on the same global batch."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from rdm_core.artifacts import load_tensors, save_tensors
from rdm_gradcache.step import gradcache_step
from rdm_testing.gradcache.tiny_models import make_chunks, make_encode, make_loss, make_setup

K_PER_RANK, B, WORLD = 2, 4, 2


def _step(chunks, out: str | None = None):
    gen, encoders, refs = make_setup()
    params = list(gen.parameters())
    opt = torch.optim.AdamW(params, lr=1e-2, betas=(0.9, 0.95), weight_decay=0.0)
    result = gradcache_step(params, opt, chunks, make_encode(gen, encoders), make_loss(refs), grad_clip=0.05)
    state = {f"param.{n}": p.detach().clone() for n, p in gen.named_parameters()}
    state.update({f"grad.{n}": p.grad.detach().clone() for n, p in gen.named_parameters()})
    if out:
        save_tensors(out, state, {"loss": result.loss, "grad_norm": result.grad_norm})
    return state, result


def _worker(rank: int, store: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        everything = make_chunks(K_PER_RANK * WORLD, B)
        mine = everything[rank * K_PER_RANK : (rank + 1) * K_PER_RANK]  # rank order = gather order
        _step(mine, os.path.join(out_dir, f"rank{rank}.safetensors"))
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_equal_one_process(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD, join=True)
    single, result = _step(make_chunks(K_PER_RANK * WORLD, B))
    assert not result.skipped and result.grad_norm > 0.05  # the clip is active
    for rank in range(WORLD):
        got, meta = load_tensors(tmp_path / f"rank{rank}.safetensors")
        assert abs(meta["loss"] - result.loss) < 1e-12
        # One process scales by 1/(2K) = 1/K_total; each rank by 1/K then averages over 2 ranks.
        assert abs(meta["grad_norm"] - result.grad_norm) < 1e-10 * result.grad_norm
        for key, value in single.items():
            assert torch.allclose(got[key], value, rtol=1e-12, atol=1e-15), key  # measured: 4e-18
    start, _, _ = make_setup()
    moved = [not torch.equal(single[f"param.{n}"], p) for n, p in start.named_parameters()]
    assert all(moved)


@pytest.mark.slow  # two torchrun launches of 2 ranks each (~50 s on 2 busy cores)
def test_torchrun_trainer_fsdp_matches_replicated(tmp_path):
    """`rdm train` under torchrun (2 gloo ranks): FSDP2 sharding gives the replicated run's result."""
    import subprocess
    import sys

    from rdm_testing import subprocess_env
    from rdm_testing.gradcache.project import build_references, write_recipe

    build_references(tmp_path)
    runs = {}
    for fsdp in (False, True):
        name = f"fsdp_{fsdp}".lower()
        path = write_recipe(
            tmp_path, name=name, train={"steps": 2, "fsdp": fsdp, "checkpoint_every": 2, "sample_count": 0}
        )
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                "--nproc-per-node",
                "2",
                "-m",
                "rdm_testing.gradcache.run_rdm",
                "train",
                str(path),
                "--no-progress",
            ],
            env=subprocess_env(),
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        runs[fsdp], _meta = load_tensors(
            tmp_path / "runs" / name / "checkpoints" / "step_0000002" / "model.safetensors"
        )
        state, _ = load_tensors(tmp_path / "runs" / name / "checkpoints" / "step_0000002" / "state.safetensors")
        assert "rng.1.generator.noise" in state  # every rank's RNG is checkpointed
        assert not torch.equal(state["rng.0.generator.noise"], state["rng.1.generator.noise"])  # seed + rank
    for key, value in runs[False].items():
        assert torch.allclose(runs[True][key], value, rtol=1e-5, atol=1e-7), key
