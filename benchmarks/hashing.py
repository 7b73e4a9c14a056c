"""Benchmark: what content hashes cost when rdm writes and reads a large artifact.

For a checkpoint-like state (64 tensors, total ``--mb`` MiB of fp32) it times, in the same run:

* ``durable write (before hashes)``: ``safetensors.torch.save_file`` of the CPU copies into a
  temporary file, ``fsync`` and rename: what ``save_tensors`` did before content hashes;
* ``save_tensors``: the same plus the hash computed from memory;
* ``read (before hashes)``: ``load_file`` with every tensor touched (it maps lazily);
* ``load_tensors``: the same read plus the verification;
* ``hash``: :func:`~rdm_core.artifacts.content_digest` alone, with 1 and with ``--threads`` threads.

Ratios are to the "before hashes" timing of the same run. The file sits in the page cache after
the write, so the read ratio is an upper bound (a cold read from disk is slower, hashing is not).
Each timing is the best of ``--reps``.

Usage: ``python benchmarks/hashing.py [--mb 512] [--threads 2] [--reps 3]``; writes
``benchmarks/results/hashing.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import save, table


def best(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()

    import torch
    from safetensors.torch import load_file, save_file

    from rdm_core.artifacts import atomic_path, content_digest, load_tensors, save_tensors

    n = args.mb * 2**20 // 4 // 64
    state = {f"layer{i:02d}.weight": torch.randn(n) for i in range(64)}
    rows = []

    def durable_write(path: Path) -> None:
        clean = {k: v.contiguous().clone() for k, v in state.items()}
        with atomic_path(path) as tmp:
            save_file(clean, str(tmp), metadata={"rdm": "{}"})

    def plain_read(path: Path) -> None:
        for t in load_file(str(path)).values():
            t.clone()

    with tempfile.TemporaryDirectory() as tmp:
        plain, hashed = Path(tmp) / "plain.safetensors", Path(tmp) / "hashed.safetensors"
        torch.set_num_threads(args.threads)
        t_plain_save = best(lambda: durable_write(plain), args.reps)
        t_plain_load = best(lambda: plain_read(plain), args.reps)
        t_save = best(lambda: save_tensors(hashed, state, {}), args.reps)
        t_load = best(lambda: load_tensors(hashed), args.reps)
        for threads in sorted({1, args.threads}):
            torch.set_num_threads(threads)
            t_hash = best(lambda: content_digest("{}", state), args.reps)
            rows.append({"step": f"hash ({threads} thread{'s' if threads > 1 else ''})", "seconds": t_hash})
        torch.set_num_threads(args.threads)
    rows = [
        {"step": "durable write (before hashes)", "seconds": t_plain_save, "ratio": 1.0},
        {"step": "save_tensors (hash + durable write)", "seconds": t_save, "ratio": t_save / t_plain_save},
        {"step": "read (before hashes)", "seconds": t_plain_load, "ratio": 1.0},
        {"step": "load_tensors (read + verify)", "seconds": t_load, "ratio": t_load / t_plain_load},
        *rows,
    ]
    for r in rows:
        r["MiB/s"] = args.mb / r["seconds"]
    path = save("hashing", {"mb": args.mb, "threads": args.threads, "reps": args.reps, "rows": rows})
    print(table(rows, ["step", "seconds", "ratio", "MiB/s"]))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
