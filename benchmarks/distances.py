"""The training distance (paper Table 4) on the digits CPU demo, at equal compute.

Arms (everything else from ``recipes/digits-cpu.yaml``: N = 1024 = 256 x 4, lr 1e-2 cosine,
4 train encoders, uniform weights, self-normalised per-encoder losses):

* ``nystrom``: the recipe (multi-scale Gaussian {0.25, 0.5, 1, 2} x median, M = 512);
* ``exact``: exact MMD, same kernel, a fresh N-row subsample of the real pool per step;
* ``rff``: random-Fourier-feature MMD; RFF supports a single Gaussian only, so this arm uses a
  Gaussian at 0.5 x median (about the geometric centre of the multi-scale set);
* ``nystrom-gaussian``: control for ``rff``: Nystrom with that same single Gaussian, so the
  kernel change and the estimator change can be told apart;
* ``frechet``: Frechet distance of the batch Gaussian to the pool Gaussian;
* ``sliced_wasserstein``: SW_2 with fresh projections and a fresh real sample per step.

Each kind's references are built by ``rdm reference build`` into its own directory. Every arm
gets the same budget ``train.max_seconds`` (process CPU seconds of the training steps); steps
per arm follow from a short calibration, so its cosine schedule ends near the budget. Scored by
``rdm eval`` (SW ratio to real val per encoder; 1000 samples; real val = 1). The learning rate
was tuned for the Nystrom arm only.

    python benchmarks/distances.py --quick      # 20 CPU s per arm (~5 min)
    python benchmarks/distances.py              # 100 CPU s per arm (~15 min)

Writes ``benchmarks/results/distances.json`` and ``distances.png``; prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from budget_runs import RECIPE, bar_png, build_references, calibrate, derived_recipe, evaluate, train_arm
from common import RESULTS, save, table

GAUSSIAN = {"kernel": "gaussian", "kernel_args": {}, "bandwidth_scale": 0.5}
# arm name -> (reference kind, distance keys replaced in the recipe or None for the recipe as is)
ARMS = {
    "nystrom": ("nystrom", None),
    "exact": ("exact", None),
    "rff": ("rff", GAUSSIAN),
    "nystrom-gaussian": ("nystrom", GAUSSIAN),
    "frechet": ("frechet", None),
    "sliced_wasserstein": ("sliced_wasserstein", None),
}


def _reference_header(refs: Path) -> dict[str, object]:
    from rdm_core.artifacts import read_meta

    first = sorted(p for p in refs.glob("*.safetensors") if not p.name.startswith(("bank", "eval")))
    meta = read_meta(first[0]) if first else {}
    keep = ("kind", "kernel", "landmarks", "num_features", "projections", "sample_size", "n")
    return {k: meta[k] for k in keep if k in meta}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="20 CPU seconds per arm instead of 100")
    p.add_argument("--budget", type=float, default=None, help="CPU seconds of training per arm (overrides the mode)")
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {', '.join(ARMS)}")
    p.add_argument("--work", default="/tmp/rdm_bench/distances", help="scratch dir for references, runs and logs")
    args = p.parse_args(argv)
    budget = args.budget or (20.0 if args.quick else 100.0)
    names = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = sorted(set(names) - set(ARMS))
    if unknown:
        raise SystemExit(f"unknown arm(s) {unknown}; choose from {', '.join(ARMS)}")
    work = Path(args.work)
    log = work / "commands.log"
    from rdm_core.console import progress

    rows = []
    with progress() as bar:
        task = bar.add_task("distances", total=4 * len(names), status="")
        for name in names:
            kind, distance = ARMS[name]
            recipe = derived_recipe(work / f"recipe-{name}.yaml", distance) if distance else RECIPE
            o = {
                "objective.distance.reference": kind,
                "references.dir": str(work / "refs" / name),
                "run.output_dir": str(work / "runs" / name),
            }
            bar.update(task, status=f"{name}: reference build")
            build_s = build_references(recipe, o, log)
            bar.advance(task)
            bar.update(task, status=f"{name}: calibrate")
            per_step = calibrate(recipe, o, work / "cal" / name, log)
            bar.advance(task)
            bar.update(task, status=f"{name}: train {budget:g} CPU s")
            run = train_arm(recipe, o, budget, per_step, log)
            bar.advance(task)
            bar.update(task, status=f"{name}: eval")
            ev = evaluate(recipe, o, run["run_dir"], log)
            bar.advance(task)
            rows.append(
                {
                    "distance": name,
                    "reference": _reference_header(work / "refs" / name),
                    "reference_build_s": build_s,
                    "cpu_s_per_step": per_step,
                    **{k: v for k, v in run.items() if k != "run_dir"},
                    **ev,
                }
            )
    cols = ["distance", "steps", "cpu_s_per_step", "train_cpu_s", "train_wall_s", "held_out_sw", "all_sw"]
    print(f"\ntraining distance, N = 1024, {budget:g} CPU s of training per arm:\n")
    print(table(rows, cols))
    png = bar_png(
        RESULTS / "distances.png",
        [f"{r['distance']}\n{r['steps']} steps" for r in rows],
        [r["held_out_sw"] for r in rows],
        [r["all_sw"] for r in rows],
        f"digits demo, training distance, N = 1024, {budget:g} CPU s per arm",
    )
    path = save(
        "distances",
        {
            "mode": "quick" if args.quick else "full",
            "budget_cpu_seconds": budget,
            "recipe": str(RECIPE.relative_to(RECIPE.parents[1])),
            "gaussian_arms": GAUSSIAN,
            "when_finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            "arms": rows,
            "png": png.name,
        },
    )
    print(f"wrote {path} and {png}")
    print(json.dumps({r["distance"]: r["reference"] for r in rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
