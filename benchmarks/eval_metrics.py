"""Cost of the off-objective metrics per encoder, against naive baselines in the same run.

* SW_r14: rdm_eval scores gen AND val against the train bank in one pass over the seeded
  directions (train projections sorted once per chunk of 64). Baseline: two independent SW calls,
  each materialising all L projections at once and re-sorting the train side.
* MMD_r14: rdm_eval's chunked fp32 RFF mean embedding (fp64 accumulation). Baseline: the full
  (N, D) feature matrix in float64.

Both report the max relative difference of the values, which must be ~0 (same math).

    python benchmarks/eval_metrics.py [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch
from common import save, table

from rdm_eval.rff import RffBank
from rdm_eval.sliced import projection_chunks, sliced_wasserstein_many


def naive_sw(x: torch.Tensor, y: torch.Tensor, num_projections: int) -> float:
    """All directions at once (same seeded draw), both sides sorted every call."""
    theta = torch.cat(list(projection_chunks(x.shape[1], num_projections=num_projections)), dim=1)
    diff = torch.sort(x @ theta, dim=0).values - torch.sort(y @ theta, dim=0).values
    return float(diff.double().pow(2).mean().sqrt())


def naive_mean_embedding(bank: RffBank, x: torch.Tensor) -> torch.Tensor:
    w, b = bank.rff.weight.double(), bank.rff.bias.double()
    phi = math.sqrt(2.0 / w.shape[1]) * torch.cos(x.double() @ w + b)
    return phi.mean(dim=0)


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    sizes = [(2048, 256), (4096, 768)] if args.quick else [(4096, 768), (16384, 1024)]
    num_projections, rff_dim = 1024, 4096
    rows = []
    for n, d in sizes:
        g = torch.Generator().manual_seed(0)
        train, gen, val = (torch.randn(n, d, generator=g) for _ in range(3))
        gen += 0.05
        t_new, (sw, _) = best_of(
            lambda: sliced_wasserstein_many({"gen": gen, "val": val}, train, num_projections=num_projections),
            args.repeats,
        )
        t_old, old = best_of(
            lambda: (naive_sw(gen, train, num_projections), naive_sw(val, train, num_projections)), args.repeats
        )
        err = max(abs(sw["gen"] - old[0]) / old[0], abs(sw["val"] - old[1]) / old[1])
        rows.append(
            {
                "metric": "SW gen+val (L=1024)",
                "N": n,
                "d": d,
                "rdm_eval_s": t_new,
                "baseline_s": t_old,
                "speedup": t_old / t_new,
                "max_rel_diff": err,
            }
        )
        bank = RffBank.from_train(train, features=rff_dim, sigma_subsample=2048)
        t_new, new = best_of(lambda: (bank.rff.mean_embedding(gen), bank.rff.mean_embedding(val)), args.repeats)
        t_old, old = best_of(lambda: (naive_mean_embedding(bank, gen), naive_mean_embedding(bank, val)), args.repeats)
        m_new = [1000 * float((e - bank.mu_r).pow(2).sum()) for e in new]
        m_old = [1000 * float((e - bank.mu_r).pow(2).sum()) for e in old]
        err = max(abs(a - b) / b for a, b in zip(m_new, m_old, strict=True))
        rows.append(
            {
                "metric": "RFF m(gen), m(val) (D=4096)",
                "N": n,
                "d": d,
                "rdm_eval_s": t_new,
                "baseline_s": t_old,
                "speedup": t_old / t_new,
                "max_rel_diff": err,
            }
        )
    columns = ["metric", "N", "d", "rdm_eval_s", "baseline_s", "speedup", "max_rel_diff"]
    path = save("eval_metrics", {"quick": args.quick, "threads": 1, "rows": rows})
    print(table(rows, columns))
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()
