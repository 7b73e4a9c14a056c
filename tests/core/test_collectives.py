"""The collectives on two real gloo processes against the single-process computation.

The process group meets through a file store in ``tmp_path`` (no TCP port to race for);
``init_from_env`` then finds the group initialised and reads rank and world size as torchrun
would have set them.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from rdm_core import distributed as D


def _loss(x: torch.Tensor) -> torch.Tensor:
    # couples every pair of rows, like the MMD repulsion
    return torch.exp(-(torch.cdist(x, x) ** 2)).mean()


def _worker(rank: int, world: int, store: str, full: torch.Tensor, out: dict) -> None:
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    ctx = D.init_from_env("cpu")
    rows = full.shape[0] // world
    local = full[rank * rows : (rank + 1) * rows].clone().requires_grad_(True)
    gathered = D.all_gather_with_grad(local)
    _loss(gathered).backward()
    g = local.grad.clone()
    mean = torch.tensor([float(rank + 1)])
    D.all_reduce_mean_([mean])
    out[rank] = (ctx.rank, ctx.world_size, gathered.detach(), g, mean)
    D.destroy()


def test_gather_with_grad_and_mean_match_single_process(tmp_path):
    torch.manual_seed(0)
    full = torch.randn(6, 3, dtype=torch.float64)
    manager = mp.get_context("spawn").Manager()
    out = manager.dict()
    mp.spawn(_worker, args=(2, str(tmp_path / "store"), full, out), nprocs=2, join=True)
    ref = full.clone().requires_grad_(True)
    _loss(ref).backward()
    for rank in (0, 1):
        r, w, gathered, grad, mean = out[rank]
        assert (r, w) == (rank, 2)
        assert torch.equal(gathered, full)
        # every rank computes the same global loss, so its local-row gradient is the full one's slice
        torch.testing.assert_close(grad, ref.grad[rank * 3 : (rank + 1) * 3], rtol=1e-12, atol=1e-14)
        assert mean.item() == 1.5


def test_single_process_collectives_are_identities():
    x = torch.randn(4, 2, requires_grad=True)
    assert D.all_gather_with_grad(x) is x
    t = torch.ones(2)
    D.all_reduce_mean_([t])
    assert torch.equal(t, torch.ones(2))
    assert D.current_context("cpu").world_size == 1
