"""Benchmark of the CPU digits demo: Nystrom reference vs exact-pool baseline, and encoder caching.

Measured in one run on this machine:

* toy-encoder set-up: fitting every trainable encoder from scratch vs loading it from the cache;
* the full-batch RDM loop of ``rdm_toy.prototype`` (generator + 4 training encoders, N samples
  per step): seconds per step and held-out SW ratio after the same number of steps, with the
  Nystrom attraction (M landmarks) vs the exact attraction over the whole train pool.

Writes ``benchmarks/results/toy_demo.json`` and prints a table. ``--quick`` keeps it to about a
minute on 2 cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _encoder_setup(cache: str) -> dict[str, float]:
    from rdm_toy.training import train_all

    t0 = time.perf_counter()
    train_all(cache_dir=cache, retrain=True)
    fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    train_all(cache_dir=cache, retrain=False)
    cached = time.perf_counter() - t0
    return {"fit_seconds": fit, "cached_seconds": cached}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer steps and a smaller rollout")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--rollout", type=int, default=None)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "toy_demo.json"))
    a = p.parse_args(argv)

    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from rdm_core.artifacts import write_json
    from rdm_toy.prototype import TUNED, run

    steps = a.steps or (30 if a.quick else TUNED.steps)
    rollout = a.rollout or (512 if a.quick else TUNED.rollout)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["RDM_CACHE"] = cache
        setup = _encoder_setup(str(Path(cache) / "toy"))
        rows = []
        for reference in ("exact", "nystrom"):
            cfg = dataclasses.replace(TUNED, steps=steps, rollout=rollout, reference=reference)
            res = run(cfg, log=lambda *_: None)
            rows.append(
                {
                    "reference": reference,
                    "landmarks": cfg.landmarks if reference == "nystrom" else None,
                    "steps": steps,
                    "rollout": rollout,
                    "seconds_per_step": res["seconds_per_step"],
                    "held_out_sw_before": res["held_out_sw_before"],
                    "held_out_sw_after": res["held_out_sw_after"],
                    "min_class_fraction": min(res["class_histogram"]),
                }
            )
    result = {"threads": torch.get_num_threads(), "quick": a.quick, "encoder_setup": setup, "loop": rows}
    write_json(a.out, result)

    from rich.table import Table

    from rdm_core.console import console

    t = Table(title=f"digits demo loop ({steps} steps, N={rollout}, {torch.get_num_threads()} thread(s))")
    for col in ("reference", "s/step", "held-out SW before", "held-out SW after", "min class share"):
        t.add_column(col)
    for r in rows:
        name = r["reference"] + (f" (M={r['landmarks']})" if r["landmarks"] else " (baseline)")
        t.add_row(
            name,
            f"{r['seconds_per_step']:.3f}",
            f"{r['held_out_sw_before']:.2f}",
            f"{r['held_out_sw_after']:.3f}",
            f"{r['min_class_fraction']:.3f}",
        )
    console.print(t)
    console.print(
        f"toy encoders: fit from scratch {setup['fit_seconds']:.1f} s, from cache {setup['cached_seconds']:.3f} s"
    )
    console.print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
