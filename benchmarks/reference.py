"""Benchmark: reference building. Feature-extraction throughput and Nystrom build time vs M.

1. Extraction: a folder of random PNGs goes through the real pipeline (fingerprints, decode,
   ADM crop, every encoder, atomic shard writes) of :mod:`rdm_references.reference_build`, timed
   against the baseline measured in the same run: the encoders' raw forward passes on images
   already decoded into one tensor. ``overhead`` = pipeline time / raw forward time. Encoders
   are the tiny random-weight stand-ins of the real classes (``clip``, ``convnext``).
2. Nystrom: ``rdm_mmd.nystrom.NystromReference.build`` (k-means, fp64 Cholesky, streamed
   kernel mean, k_rr) on a fixed pool as the number of landmarks M grows, with the fp64
   Cholesky of an M x M kernel matrix timed alone as the cubic baseline.

Usage: ``python benchmarks/reference.py [--quick] [--threads T]``; writes
``benchmarks/results/reference.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import save, table

ENCODERS = ["clip", "convnext"]


def _pngs(root: Path, n: int) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        sub = root / f"c{i % 4}"
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, size=(96, 80, 3), dtype=np.uint8)).save(sub / f"{i:05d}.png")


def extraction(n_images: int, resolution: int, batch: int) -> list[dict]:
    import torch

    from rdm_core.images import list_images, load_images
    from rdm_core.recipe.assemble import build_encoder
    from rdm_core.recipe.load import recipe_from_dict
    from rdm_references.build_sources import open_sources
    from rdm_references.reference_build import ReferenceBuild

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _pngs(root / "imgs", n_images)
        recipe = recipe_from_dict(
            {
                "run": {"device": "cpu"},
                "encoders": {"train": ENCODERS, "variant": "tiny"},
                "references": {
                    "dir": str(root / "refs"),
                    "train": {"name": "folder", "args": {"root": str(root / "imgs")}},
                    "resolution": resolution,
                    "batch_size": batch,
                    "shard_size": 4 * batch,
                },
            }
        )
        # Baseline: raw forward passes over pre-decoded images.
        images = load_images(list_images(root / "imgs"), resolution, workers=1)
        raw = {}
        for name in ENCODERS:
            enc = build_encoder(recipe, name)
            with torch.no_grad():
                enc(images[:batch])  # warm-up
                start = time.perf_counter()
                for s in range(0, n_images, batch):
                    enc(images[s : s + batch])
                raw[name] = time.perf_counter() - start
        raw_total = sum(raw.values())
        for name, t in raw.items():
            rows.append({"measure": f"raw forward {name}", "images": n_images, "seconds": t, "images/s": n_images / t})
        rows.append(
            {
                "measure": "raw forward, all encoders",
                "images": n_images,
                "seconds": raw_total,
                "images/s": n_images / raw_total,
            }
        )
        # The pipeline: fingerprints + decode + crop + encoders + shard writes.
        build = ReferenceBuild(recipe, list(ENCODERS), ("train",), torch.device("cpu"))
        for name in ENCODERS:
            build.encoder(name)  # model construction is not part of the throughput
        start = time.perf_counter()
        sources = open_sources(recipe, ("train",))
        build.fingerprint_sources(sources)
        build.extract(sources)
        t = time.perf_counter() - start
        rows.append(
            {
                "measure": "pipeline extraction, all encoders",
                "images": n_images,
                "seconds": t,
                "images/s": n_images / t,
                "overhead": t / raw_total,
            }
        )
        # Same encoder objects: the tiny stand-ins are randomly initialised per construction, and a
        # different initialisation rightly invalidates every shard.
        build2 = ReferenceBuild(recipe, list(ENCODERS), ("train",), torch.device("cpu"))
        build2.encoders, build2.identity = build.encoders, build.identity
        start = time.perf_counter()
        src2 = open_sources(recipe, ("train",))
        build2.fingerprint_sources(src2)
        build2.extract(src2)
        t2 = time.perf_counter() - start
        rows.append(
            {
                "measure": "re-run (all shards reused)",
                "images": n_images,
                "seconds": t2,
                "images/s": n_images / t2,
                "overhead": t2 / raw_total,
            }
        )
    return rows


def nystrom(n: int, d: int, ms: list[int]) -> list[dict]:
    import torch

    from rdm_core.numerics import median_bandwidth
    from rdm_mmd.kernels import GaussianKernel
    from rdm_mmd.nystrom import NystromReference

    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(64, d, generator=gen) * 3
    pool = centres[torch.randint(0, 64, (n,), generator=gen)] + torch.randn(n, d, generator=gen)
    kernel = GaussianKernel(median_bandwidth(pool, 1.0, 4000, 0))
    rows = []
    for m in ms:
        z = pool[:m].double()
        kzz = kernel.gram(z, z) + 1e-6 * torch.eye(m, dtype=torch.float64)
        start = time.perf_counter()
        torch.linalg.cholesky(kzz)
        chol = time.perf_counter() - start
        start = time.perf_counter()
        NystromReference.build(pool, kernel, landmarks=m, seed=0)
        t = time.perf_counter() - start
        rows.append({"measure": f"nystrom build M={m}", "n": n, "d": d, "seconds": t, "cholesky_s": chol})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about a minute on 2 CPU cores)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.quick:
        ext = extraction(n_images=128, resolution=64, batch=32)
        nys = nystrom(n=4096, d=64, ms=[256, 512, 1024, 2048])
    else:
        ext = extraction(n_images=512, resolution=64, batch=32)
        nys = nystrom(n=16384, d=64, ms=[1024, 2048, 4096, 8192])
    path = save("reference", {"quick": args.quick, "threads": args.threads, "extraction": ext, "nystrom": nys})
    print(table(ext, ["measure", "images", "seconds", "images/s", "overhead"]))
    print()
    print(table(nys, ["measure", "n", "d", "seconds", "cholesky_s"]))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
