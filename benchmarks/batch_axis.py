"""The batch-size axis (paper Table 6 / Fig. 4) on the digits CPU demo, at equal compute.

Arms: rollout N in {64, 256, 1024, 2048}, everything else from ``recipes/digits-cpu.yaml``
(Nystrom MMD, multi-scale kernel, 4 train encoders, cosine schedule), except:

* layout: ``micro_batch = min(N, 256)``, ``chunks = N / micro_batch`` (GradCache: the gradient is
  the exact full-batch one whatever the split);
* learning rate by the paper's square-root sweep rule, ``lr_N = lr_1024 * sqrt(N / 1024)`` with the recipe's
  ``lr_1024 = 1e-2``;
* ``grad_clip`` rescaled by ``(micro_batch / N) / (256 / 1024)``: the trainer's gradient is
  ``(micro_batch / N) dL/dtheta`` (docs/training.md), so this clips the same true-gradient norm
  in every arm as the recipe does at N = 1024.

Budget: the same ``train.max_seconds`` (process CPU seconds of the training steps) for every arm;
each arm's ``train.steps`` is set from a short calibration so its cosine schedule ends near the
budget. Scored by ``rdm eval`` (SW ratio to real val per encoder, 1000 samples, real val = 1).

    python benchmarks/batch_axis.py --quick      # 20 CPU s per arm (~3 min)
    python benchmarks/batch_axis.py              # 100 CPU s per arm (~9 min)

Writes ``benchmarks/results/batch_axis.json`` and ``batch_axis.png``; prints a markdown table.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from budget_runs import RECIPE, bar_png, build_references, calibrate, evaluate, train_arm
from common import RESULTS, save, table

ROLLOUTS = (64, 256, 1024, 2048)
LR_1024, CLIP_1024, MB_1024 = 1e-2, 2.0, 256


def arm_overrides(n: int, work: Path) -> dict[str, object]:
    mb = min(n, 256)
    return {
        "run.output_dir": str(work / f"n{n}"),
        "references.dir": str(work / "refs"),
        "train.rollout": n,
        "train.micro_batch": mb,
        "train.chunks": n // mb,
        "train.lr": LR_1024 * math.sqrt(n / 1024),
        "train.grad_clip": CLIP_1024 * (mb / n) / (MB_1024 / 1024),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="20 CPU seconds per arm instead of 100")
    p.add_argument("--budget", type=float, default=None, help="CPU seconds of training per arm (overrides the mode)")
    p.add_argument("--work", default="/tmp/rdm_bench/batch_axis", help="scratch dir for references, runs and logs")
    args = p.parse_args(argv)
    budget = args.budget or (20.0 if args.quick else 100.0)
    work = Path(args.work)
    log = work / "commands.log"
    from rdm_core.console import progress

    rows = []
    with progress() as bar:
        task = bar.add_task("batch axis", total=1 + 3 * len(ROLLOUTS), status="reference build")
        refs_s = build_references(RECIPE, {"references.dir": str(work / "refs"), "run.output_dir": str(work)}, log)
        bar.advance(task)
        for n in ROLLOUTS:
            o = arm_overrides(n, work)
            bar.update(task, status=f"N={n}: calibrate")
            per_step = calibrate(RECIPE, o, work / f"n{n}-cal", log, steps=max(5, 3072 // n))
            bar.advance(task)
            bar.update(task, status=f"N={n}: train {budget:g} CPU s")
            run = train_arm(RECIPE, o, budget, per_step, log)
            bar.advance(task)
            bar.update(task, status=f"N={n}: eval")
            ev = evaluate(RECIPE, o, run["run_dir"], log)
            bar.advance(task)
            rows.append(
                {
                    "N": n,
                    "micro_batch x chunks": f"{o['train.micro_batch']} x {o['train.chunks']}",
                    "lr": o["train.lr"],
                    "grad_clip": o["train.grad_clip"],
                    "cpu_s_per_step": per_step,
                    **{k: v for k, v in run.items() if k != "run_dir"},
                    "samples_seen": run["steps"] * n,
                    **ev,
                }
            )
    cols = [
        "N",
        "micro_batch x chunks",
        "lr",
        "steps",
        "samples_seen",
        "train_cpu_s",
        "train_wall_s",
        "held_out_sw",
        "all_sw",
    ]
    print(f"\nbatch axis, {budget:g} CPU s of training per arm (lr_N = 1e-2 * sqrt(N/1024)):\n")
    print(table(rows, cols))
    best = min(rows, key=lambda r: r["held_out_sw"])
    print(f"\nbest held-out SW ratio: N = {best['N']} ({best['held_out_sw']:.3f})")
    png = bar_png(
        RESULTS / "batch_axis.png",
        [f"N={r['N']}\n{r['steps']} steps" for r in rows],
        [r["held_out_sw"] for r in rows],
        [r["all_sw"] for r in rows],
        f"digits demo, {budget:g} CPU s per arm, lr = 1e-2 sqrt(N/1024)",
    )
    path = save(
        "batch_axis",
        {
            "mode": "quick" if args.quick else "full",
            "budget_cpu_seconds": budget,
            "recipe": str(RECIPE.relative_to(RECIPE.parents[1])),
            "reference_build_s": refs_s,
            "lr_rule": "lr_N = 1e-2 * sqrt(N / 1024) (the paper's sweep rule)",
            "grad_clip_rule": "2.0 * (micro_batch / N) / (256 / 1024)",
            "when_finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            "arms": rows,
            "best_held_out": best["N"],
            "png": png.name,
        },
    )
    print(f"wrote {path} and {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
