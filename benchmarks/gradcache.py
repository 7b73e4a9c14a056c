"""GradCache vs the plain full-batch step: peak memory against N, and step time.

Every (mode, N) point runs in its own subprocess. After one warm-up step (AdamW states, thread
pools), a sampling thread records the resident memory every millisecond during the next step;
the reported memory is that peak minus the resident memory just before the step. Memory workers
run with ``MALLOC_MMAP_THRESHOLD_=65536`` so freed tensors go back to the OS and the RSS tracks
live memory; that setting slows many small allocations, so step times come from a second worker
per point with the default allocator. The model is a small conv generator (noise -> 3x16x16) and two conv encoders with
a Nystrom MMD loss from rdm_mmd, so activation memory grows per sample like a real model's.

    python benchmarks/gradcache.py            # N in {256, 1024, 4096}, chunk 64
    python benchmarks/gradcache.py --quick    # N in {256, 1024}, fewer timed steps

Writes benchmarks/results/gradcache.json (+ .png) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

RESULTS = Path(__file__).parent / "results" / "gradcache.json"
CHANNELS, RES, NOISE = 16, 16, 32


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _models():
    import torch
    from torch import nn

    torch.manual_seed(0)
    gen = nn.Sequential(
        nn.Linear(NOISE, CHANNELS * 8 * 8),
        nn.Unflatten(1, (CHANNELS, 8, 8)),
        nn.SiLU(),
        nn.Upsample(scale_factor=2),
        nn.Conv2d(CHANNELS, CHANNELS, 3, padding=1),
        nn.SiLU(),
        nn.Conv2d(CHANNELS, CHANNELS, 3, padding=1),
        nn.SiLU(),
        nn.Conv2d(CHANNELS, 3, 3, padding=1),
        nn.Sigmoid(),
    )

    def encoder(dim: int) -> nn.Module:
        enc = nn.Sequential(
            nn.Conv2d(3, CHANNELS, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(CHANNELS, CHANNELS, 3, padding=1),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(CHANNELS * 16, dim),
        )
        return enc.requires_grad_(False)

    return gen, {"a": encoder(64), "b": encoder(128)}


def worker(mode: str, n: int, chunk: int, repeats: int, gen_chunk: int, what: str) -> dict:
    import torch

    from rdm_gradcache.gradcache import Chunk
    from rdm_gradcache.step import gradcache_step
    from rdm_mmd.balance import combine
    from rdm_mmd.nystrom import NystromReference

    torch.set_num_threads(1)
    gen, encoders = _models()
    with torch.no_grad():
        real = torch.rand(2048, 3, RES, RES)
        # gen_chunk bounds the repulsion block (N x gen_chunk) that both modes hold in the loss
        refs = {
            k: NystromReference.build(e(real), "gaussian", landmarks=128, seed=0, encoder=k, gen_chunk=gen_chunk)
            for k, e in encoders.items()
        }
    params = list(gen.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4)

    def encode(c: Chunk) -> dict:
        images = gen(c.noise)
        return {k: e(images) for k, e in encoders.items()}

    def loss_fn(feats: dict):
        raw = {k: refs[k].distance(f) for k, f in feats.items()}
        return combine(raw, {k: 1.0 for k in raw}), {"raw": {k: float(v) for k, v in raw.items()}}

    rng = torch.Generator().manual_seed(1)

    def step() -> None:
        if mode == "gradcache":
            chunks = [Chunk(torch.randn(chunk, NOISE, generator=rng)) for _ in range(n // chunk)]
            gradcache_step(params, opt, chunks, encode, loss_fn, grad_clip=2.0)
        else:  # the plain full-batch step: one graph over all N samples
            opt.zero_grad(set_to_none=True)
            loss, _ = loss_fn(encode(Chunk(torch.randn(n, NOISE, generator=rng))))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 2.0)
            opt.step()

    import threading

    step()  # warm-up: lazy allocations are not the step's working memory
    if what == "time":
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        return {"step_s": statistics.median(times)}
    before, peak, running = _rss_mb(), [0.0], [True]

    def sample() -> None:
        while running[0]:
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.001)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    step()
    running[0] = False
    thread.join()
    peak_mb = max(peak[0], _rss_mb())
    return {"mode": mode, "n": n, "chunk": chunk, "gen_chunk": gen_chunk, "extra_peak_mb": peak_mb - before}


def run_point(mode: str, n: int, chunk: int, repeats: int, gen_chunk: int) -> dict:
    result: dict = {}
    for what in ("memory", "time"):
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        if what == "memory":
            env["MALLOC_MMAP_THRESHOLD_"] = "65536"
        out = subprocess.run(
            [sys.executable, __file__, "--worker", mode, str(n), str(chunk), str(repeats), str(gen_chunk), what],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        result.update(json.loads(out.stdout.strip().splitlines()[-1]))
    return result


def _plot(summary: list[dict], chunk: int) -> None:
    """Peak memory and step time against N, both modes (benchmarks/results/gradcache.png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rdm_core.artifacts import atomic_path

    ns = [r["n"] for r in summary]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(ns, [r["gradcache_peak_mb"] for r in summary], "o-", label=f"GradCache (chunk {chunk})")
    plain = [(r["n"], r["plain_peak_mb"], r["plain_step_s"]) for r in summary if r["plain_peak_mb"] is not None]
    ax1.plot([p[0] for p in plain], [p[1] for p in plain], "s--", label="plain full batch")
    ax2.plot(ns, [r["gradcache_step_s"] for r in summary], "o-", label="GradCache")
    ax2.plot([p[0] for p in plain], [p[2] for p in plain], "s--", label="plain full batch")
    for ax, label in ((ax1, "extra peak RSS during a step (MB)"), (ax2, "seconds per step")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("rollout N")
        ax.set_ylabel(label)
        ax.legend()
    fig.tight_layout()
    with atomic_path(RESULTS.with_suffix(".png")) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N in {256, 1024} and 2 timed steps")
    parser.add_argument("--chunk", type=int, default=64)
    parser.add_argument("--plain-max", type=int, default=4096, help="largest N for the plain full-batch baseline")
    parser.add_argument("--gen-chunk", type=int, default=512, help="rows per repulsion block in the MMD loss")
    parser.add_argument(
        "--worker", nargs=6, metavar=("MODE", "N", "CHUNK", "REPEATS", "GEN_CHUNK", "WHAT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.worker:
        mode, n, chunk, repeats, gen_chunk, what = args.worker
        print(json.dumps(worker(mode, int(n), int(chunk), int(repeats), int(gen_chunk), what)))
        return
    from rdm_core.artifacts import write_json
    from rdm_core.console import console, progress

    sizes = [256, 1024] if args.quick else [256, 1024, 4096]
    repeats = 2 if args.quick else 3
    points = [(m, n) for n in sizes for m in ("gradcache", "plain") if m == "gradcache" or n <= args.plain_max]
    rows = []
    with progress() as bar:
        task = bar.add_task("benchmark", total=len(points), status="")
        for mode, n in points:
            bar.update(task, status=f"{mode} N={n}")
            rows.append(run_point(mode, n, args.chunk, repeats, args.gen_chunk))
            bar.advance(task)
    by = {(r["mode"], r["n"]): r for r in rows}
    base = by[("gradcache", sizes[0])]["extra_peak_mb"]
    from rich.table import Table

    table = Table(
        title=f"GradCache (chunk {args.chunk}, gen_chunk {args.gen_chunk}) vs plain full-batch step, CPU 1 thread"
    )
    for col in (
        "N",
        "GradCache peak MB",
        "ratio to N=256",
        "plain peak MB",
        "GradCache s/step",
        "plain s/step",
        "time ratio",
    ):
        table.add_column(col, justify="right")
    summary = []
    for n in sizes:
        g, p = by[("gradcache", n)], by.get(("plain", n))
        ratio_t = g["step_s"] / p["step_s"] if p else None
        summary.append(
            {
                "n": n,
                "gradcache_peak_mb": g["extra_peak_mb"],
                "peak_ratio": g["extra_peak_mb"] / base,
                "plain_peak_mb": p["extra_peak_mb"] if p else None,
                "gradcache_step_s": g["step_s"],
                "plain_step_s": p["step_s"] if p else None,
                "time_ratio": ratio_t,
            }
        )
        table.add_row(
            str(n),
            f"{g['extra_peak_mb']:.1f}",
            f"{g['extra_peak_mb'] / base:.2f}",
            f"{p['extra_peak_mb']:.1f}" if p else "-",
            f"{g['step_s']:.3f}",
            f"{p['step_s']:.3f}" if p else "-",
            f"{ratio_t:.2f}" if ratio_t else "-",
        )
    _plot(summary, args.chunk)
    write_json(
        RESULTS,
        {"chunk": args.chunk, "gen_chunk": args.gen_chunk, "quick": args.quick, "points": rows, "summary": summary},
    )
    console.print(table)
    console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
