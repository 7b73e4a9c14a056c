"""Overhead of the rdm encoder wrapper vs the backing library model, measured in the same run.

For each encoder: ``rdm`` = ``encoder(images)`` on ``[0,1]`` images already at the encoder's
resolution (so no resize: the wrapper adds normalisation, the precision context, pooling and the
fp32 cast); ``library`` = the library model called directly on the same, already normalised input,
with the same autocast and the same pooling written inline. Runs alternate (ABAB...); the overhead
uses the minimum process CPU time over repetitions (the least-disturbed run on a shared CPU);
medians are also reported. Goal: overhead within 5%.

Usage: ``python benchmarks/encoders.py [--quick]`` -> table on stdout, JSON in
``benchmarks/results/encoders.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

from rdm_core.registry import import_object
from rdm_encoders.specs import FACTORIES

SMALL_VIT = dict(embed_dim=192, depth=4, num_heads=3)  # "small-size": big enough that compute dominates


def _autocast() -> torch.autocast:
    return torch.autocast("cpu", dtype=torch.bfloat16)


def cases() -> dict[str, tuple[dict, Callable]]:
    """name -> (factory kwargs, library call on the preprocessed input)."""

    def timm_pool(fn):
        def call(enc, xp):
            with _autocast():
                return fn(enc.backbone, enc.backbone.forward_features(xp)).float()

        return call

    def webssl(enc, xp):
        with _autocast():
            return enc.backbone(pixel_values=xp).pooler_output.float()

    def inception(enc, xp):
        return enc.backbone(xp)

    def flux(enc, xp):
        with _autocast():
            m = enc.backbone.encode(xp).latent_dist.mean
            b, c, h, w = m.shape
            return m.reshape(b, c, h // 4, 4, w // 4, 4).mean(dim=(3, 5)).flatten(1).float()

    return {
        "inception": (dict(variant="tiny"), inception),
        "convnext": (
            dict(variant="tiny", depths=(2, 2, 2, 2), dims=(48, 96, 192, 384)),
            timm_pool(lambda m, ff: ff.mean((2, 3))),
        ),
        "mae": (dict(variant="tiny", **SMALL_VIT), timm_pool(lambda m, ff: ff[:, 1:].mean(1))),
        "clip": (dict(variant="tiny", **SMALL_VIT), timm_pool(lambda m, ff: ff[:, 0])),
        "siglip2": (dict(variant="tiny", **SMALL_VIT), timm_pool(lambda m, ff: m.forward_head(ff, pre_logits=True))),
        "webssl_dino_1b": (dict(variant="tiny"), webssl),
        "flux_vae": (dict(variant="tiny"), flux),
    }


def _time(fn: Callable[[], torch.Tensor]) -> float:
    # Process CPU time, not wall time: on a shared 2-core machine the wall clock mostly measures
    # the other jobs (one intra-op thread, so CPU time is the work done by this call).
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def bench(name: str, kwargs: dict, library: Callable, batch: int, reps: int) -> dict:
    enc = import_object(FACTORIES[name])(**kwargs)
    r = enc.spec.resolution
    x = torch.rand(batch, 3, r, r, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        xp = enc.preprocess(x)  # the library gets the normalised input directly
        a, b = enc(x), library(enc, xp)
        assert torch.equal(a, b), f"{name}: rdm and library outputs differ ({(a - b).abs().max()})"
        for _ in range(2):  # warm-up
            enc(x), library(enc, xp)
        t_rdm, t_lib = [], []
        for _ in range(reps):
            t_rdm.append(_time(lambda: enc(x)))
            t_lib.append(_time(lambda: library(enc, xp)))
    rdm, lib = min(t_rdm), min(t_lib)
    return {
        "encoder": name,
        "batch": batch,
        "resolution": r,
        "params_M": sum(p.numel() for p in enc.parameters()) / 1e6,
        "rdm_ms": 1e3 * rdm,
        "library_ms": 1e3 * lib,
        "overhead_pct": 100 * (rdm - lib) / lib,
        "rdm_median_ms": 1e3 * statistics.median(t_rdm),
        "library_median_ms": 1e3 * statistics.median(t_lib),
        "reps": reps,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer encoders and repetitions (~1 min)")
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    chosen = cases()
    if args.quick:
        chosen = {k: chosen[k] for k in ("inception", "mae", "siglip2", "flux_vae")}
    reps = 7 if args.quick else 15
    rows = [bench(n, kw, fn, args.batch, reps) for n, (kw, fn) in chosen.items()]
    out = {
        "benchmark": "encoders",
        "quick": args.quick,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "clock": "process_time",
        "threads": torch.get_num_threads(),
        "goal_overhead_pct": 5.0,
        "rows": rows,
    }
    path = Path(__file__).parent / "results" / "encoders.json"
    from rdm_core.artifacts import write_json

    write_json(path, out)
    print(
        "| encoder | batch x res | params (M) | library min (ms) | rdm min (ms) | overhead | library / rdm median (ms) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['encoder']} | {r['batch']} x {r['resolution']} | {r['params_M']:.2f} | {r['library_ms']:.1f} | "
            f"{r['rdm_ms']:.1f} | {r['overhead_pct']:+.1f}% | {r['library_median_ms']:.1f} / {r['rdm_median_ms']:.1f} |"
        )
    print(f"\nwrote {path}")
    print(json.dumps({"max_overhead_pct": max(r["overhead_pct"] for r in rows)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
