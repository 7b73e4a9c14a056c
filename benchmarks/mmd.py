"""Benchmark: Nystrom MMD loss + gradient, rdm_mmd's fused estimator vs a naive fp32 version.

For each (N, d, M) it times ``loss.backward()`` of ``k_gg - 2 * mean K(g, Z) @ alpha + k_rr``

* ``naive``: builds every matrix whole (``(N, N)`` and ``(N, M)``) and lets autograd keep them;
* ``rdm``: :func:`rdm_mmd.estimator.mmd_loss` (fused blockwise value + gradient, upper-triangle
  repulsion, default 512 MiB block budget),

and measures this machine's fp32 GEMM rate in the same run (inside the same worker processes).
"Naive FLOPs" counts the naive formulation's matrix products (forward ``g g^T`` and ``g Z^T``,
backward two ``N x N x d`` and one ``N x M x d`` products): ``6 N^2 d + 4 N M d``;
``%GEMM`` = naive FLOPs / time / GEMM rate (above 100% means fewer FLOPs than the naive form).

Peak memory: every measurement runs in a fresh subprocess; peak extra memory = the process's
peak resident set (``getrusage(RUSAGE_SELF).ru_maxrss``, the kernel's high-water mark) minus its
resident set right after the inputs were allocated (``psutil``). Torch's CPU allocator returns
large blocks to the OS, so the high-water mark sees every transient matrix.

The machine is shared, so each worker measures the GEMM rate itself, just before and after
its timed runs, and the two methods alternate over ``--rounds`` (best time kept per method).

Usage: ``python benchmarks/mmd.py [--quick] [--threads T] [--reps R] [--rounds K]``; writes
``benchmarks/results/mmd.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

FULL_GRID = [(n, d, m) for n in (2048, 4096, 10240) for d in (1024, 2048) for m in (4096, 8192)]
QUICK_GRID = [(2048, 1024, 4096), (10240, 1024, 8192)]
GOAL = (10240, 1024, 8192)


def naive_flops(n: int, d: int, m: int) -> float:
    return 6.0 * n * n * d + 4.0 * n * m * d


# -- worker (runs in a fresh subprocess) --------------------------------------------------------


GEMM_SIZE = 2048  # small enough that its scratch (~3 x 16 MiB at d=1024) never sets the memory peak


def gemm_rate(d: int, seconds: float = 1.5) -> float:
    """Sustained fp32 GFLOP/s of back-to-back (2048 x d) @ (d x 2048) products over ``seconds``.

    Sustained rather than best-burst: the timed losses run for seconds too, on a shared machine
    whose load (and clock) changes, so a single fast burst would overstate the reachable rate.
    """
    import torch

    a, b = torch.randn(GEMM_SIZE, d), torch.randn(d, GEMM_SIZE)
    out = torch.empty(GEMM_SIZE, GEMM_SIZE)
    torch.mm(a, b, out=out)
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        torch.mm(a, b, out=out)
        count += 1
    return 2.0 * GEMM_SIZE * GEMM_SIZE * d * count / (time.perf_counter() - t0) / 1e9


def _worker(method: str, n: int, d: int, m: int, reps: int, threads: int) -> dict:
    import resource

    import psutil
    import torch

    torch.set_num_threads(threads)

    from rdm_mmd.estimator import mmd_loss
    from rdm_mmd.kernels import GaussianKernel

    gen = torch.Generator().manual_seed(0)
    g0 = torch.randn(n, d, generator=gen)
    z = torch.randn(m, d, generator=gen)
    alpha = torch.randn(m, generator=gen) / m
    sigma = float((2.0 * d) ** 0.5)  # ~ the median distance of these Gaussian features
    gamma = 1.0 / (2.0 * sigma**2)
    kernel = GaussianKernel(sigma)
    k_rr = 0.1

    def naive(g: torch.Tensor) -> torch.Tensor:
        g_sq = g.pow(2).sum(1)
        d_gg = (g_sq[:, None] + g_sq[None, :] - 2.0 * (g @ g.T)).clamp_min(0.0)
        k_gg = torch.exp(-gamma * d_gg).mean()
        z_sq = z.pow(2).sum(1)
        d_gz = (g_sq[:, None] + z_sq[None, :] - 2.0 * (g @ z.T)).clamp_min(0.0)
        k_gr = (torch.exp(-gamma * d_gz) @ alpha).mean()
        return k_gg - 2.0 * k_gr + k_rr

    def fused(g: torch.Tensor) -> torch.Tensor:
        return mmd_loss(g, z, alpha, kernel, k_rr)

    fn = naive if method == "naive" else fused
    import gc

    # The machine is shared: the GEMM rate is measured in this process, right around the timed
    # runs, so both see the same load. Its scratch is freed before the memory baseline.
    gemm_before = gemm_rate(d)
    gc.collect()
    base = psutil.Process().memory_info().rss
    warmup = 1 if n < 4096 else 0  # big runs are dominated by compute, not first-call overheads
    times, value, grad_norm = [], 0.0, 0.0
    for _ in range(reps + warmup):
        g = g0.clone().requires_grad_()
        t0 = time.perf_counter()
        loss = fn(g)
        loss.backward()
        times.append(time.perf_counter() - t0)
        value, grad_norm = float(loss.detach()), float(g.grad.norm())
        del g, loss
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    gemm_after = gemm_rate(d)
    return {
        "time_s": min(times[warmup:]),
        "times_s": times[warmup:],
        "peak_extra_mib": max(0, peak - base) / 2**20,
        "value": value,
        "grad_norm": grad_norm,
        "gemm_gflops": max(gemm_before, gemm_after),
    }


def _run_worker(method: str, cfg: tuple[int, int, int], reps: int, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", method, *map(str, cfg), "--reps", str(reps), "--threads", str(threads)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"worker {method} {cfg} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _plot(rows: list[dict], path: Path) -> None:
    """Bar charts of time and peak extra memory, naive vs rdm, one group per (N, d, M)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"N={r['N']}\nd={r['d']}\nM={r['M']}" for r in rows]
    xs = range(len(rows))
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.6 * len(rows) + 4), 4))
    for ax, key, unit in (
        (axes[0], "time_s", "loss+grad time (s)"),
        (axes[1], "peak_extra_mib", "peak extra memory (MiB)"),
    ):
        ax.bar([x - 0.2 for x in xs], [r["naive"][key] for r in rows], width=0.4, label="naive fp32")
        ax.bar([x + 0.2 for x in xs], [r["rdm"][key] for r in rows], width=0.4, label="rdm fused")
        ax.set_xticks(list(xs), labels, fontsize=8)
        ax.set_ylabel(unit)
        ax.legend()
    fig.suptitle("Nystrom MMD loss + gradient (fp32 CPU)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"only {QUICK_GRID}")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=1, help="timed runs per worker")
    parser.add_argument("--rounds", type=int, default=2, help="workers per method, alternating naive/rdm")
    parser.add_argument("--worker", nargs=4, metavar=("METHOD", "N", "D", "M"), help=argparse.SUPPRESS)
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "mmd.json"))
    args = parser.parse_args(argv)
    if args.worker:
        method, n, d, m = args.worker[0], *map(int, args.worker[1:])
        print(json.dumps(_worker(method, n, d, m, args.reps, args.threads)))
        return 0

    from rdm_core.artifacts import write_json
    from rdm_core.console import console, progress

    grid = QUICK_GRID if args.quick else FULL_GRID
    rows = []
    with progress() as bar:
        task = bar.add_task("mmd benchmark", total=len(grid) * 2 * args.rounds, status="")
        for cfg in grid:
            res: dict[str, dict] = {}
            # Alternate the two methods over rounds so load changes hit both alike; keep each
            # method's fastest worker (with the GEMM rate measured inside that worker).
            for _ in range(args.rounds):
                for method in ("naive", "rdm"):
                    bar.update(task, status=f"{method} N={cfg[0]} d={cfg[1]} M={cfg[2]}")
                    out = _run_worker(method, cfg, args.reps, args.threads)
                    best = res.get(method)
                    if best is None or out["time_s"] < best["time_s"]:
                        out["peak_extra_mib"] = max(out["peak_extra_mib"], (best or out)["peak_extra_mib"])
                        res[method] = out
                    else:
                        best["peak_extra_mib"] = max(best["peak_extra_mib"], out["peak_extra_mib"])
                    bar.advance(task)
            n, d, m = cfg
            flops = naive_flops(n, d, m)
            rows.append(
                {
                    "N": n,
                    "d": d,
                    "M": m,
                    "naive": res["naive"],
                    "rdm": res["rdm"],
                    "speedup": res["naive"]["time_s"] / res["rdm"]["time_s"],
                    "gemm_gflops": res["rdm"]["gemm_gflops"],
                    "rdm_pct_gemm": 100.0 * flops / res["rdm"]["time_s"] / 1e9 / res["rdm"]["gemm_gflops"],
                    "naive_pct_gemm": 100.0 * flops / res["naive"]["time_s"] / 1e9 / res["naive"]["gemm_gflops"],
                    "memory_ratio": res["rdm"]["peak_extra_mib"] / max(res["naive"]["peak_extra_mib"], 1e-9),
                    "value_diff": abs(res["rdm"]["value"] - res["naive"]["value"]),
                }
            )
    result = {
        "threads": args.threads,
        "reps": args.reps,
        "rounds": args.rounds,
        "quick": args.quick,
        "memory_method": "getrusage ru_maxrss high-water mark minus psutil RSS after input allocation, "
        "fresh subprocess per measurement",
        "flops_counted": "naive formulation: 6 N^2 d + 4 N M d",
        "rows": rows,
        "goal": {"config": GOAL, "speedup>=": 1.5, "pct_gemm>=": 60, "memory_ratio<=": 0.5},
    }
    write_json(args.output, result)
    _plot(rows, Path(args.output).with_suffix(".png"))

    from rich.table import Table

    table = Table(
        title=f"Nystrom MMD loss+grad, fp32, {args.threads} threads "
        f"(best of {args.rounds} x {args.reps} runs per method)"
    )
    for col in (
        "N",
        "d",
        "M",
        "naive s",
        "rdm s",
        "speedup",
        "GEMM GF/s",
        "rdm %GEMM",
        "naive %GEMM",
        "naive MiB",
        "rdm MiB",
        "mem ratio",
        "|dL|",
    ):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            str(r["N"]),
            str(r["d"]),
            str(r["M"]),
            f"{r['naive']['time_s']:.2f}",
            f"{r['rdm']['time_s']:.2f}",
            f"{r['speedup']:.2f}x",
            f"{r['gemm_gflops']:.0f}",
            f"{r['rdm_pct_gemm']:.0f}%",
            f"{r['naive_pct_gemm']:.0f}%",
            f"{r['naive']['peak_extra_mib']:.0f}",
            f"{r['rdm']['peak_extra_mib']:.0f}",
            f"{r['memory_ratio']:.2f}",
            f"{r['value_diff']:.1e}",
        )
    from rich.console import Console

    wide = Console(width=170, highlight=False)  # the table is wider than a default 80-column pipe
    wide.print(table)
    console.print(
        f"GEMM GF/s: sustained fp32 ({GEMM_SIZE} x d) @ (d x {GEMM_SIZE}) rate over 1.5 s, measured inside "
        "the rdm worker just before and after its timed runs (the higher of the two)"
    )
    console.print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
