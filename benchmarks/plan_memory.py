"""`rdm plan`'s memory estimate against the measured peak of the tiny recipes on CPU.

For each tiny recipe (same code path as its full-size parent): build its references with
`rdm run --stages references` in a temporary directory, then in a fresh process build the
trainer, record the resident set size, train the recipe's steps and take the process's peak
resident size. "measured" = peak - RSS before training (everything training allocates: weights,
optimiser, activations, cached features, the loss graph, plus allocator overhead); "estimate" =
the plan's per-GPU total for one device. Tiny encoders have no size table: the plan does not
count them, which the `encoders` column shows (their weights, measured on the built modules).

    python benchmarks/plan_memory.py      # writes benchmarks/results/plan_memory.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import save, table

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ["flux2-klein-tiny", "flux1-tiny", "wan-tiny"]

CHILD = r"""
import json, os, resource, sys
from rdm_core.interfaces import TrainerOptions
from rdm_core.recipe.load import load_recipe
from rdm_core.recipe.assemble import build_trainer

def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

recipe = load_recipe(sys.argv[1], sys.argv[2:])
trainer = build_trainer(recipe, TrainerOptions(recipe_ref=sys.argv[1], show_progress=False))
before = rss()
trainer.run()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"before": before, "peak": peak}))
"""


def measure(name: str) -> dict:
    from rdm_core.recipe.load import load_recipe
    from rdm_gradcache.plan import make_plan

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        sets = [f"run.output_dir={tmp}/runs", f"references.dir={tmp}/refs"]
        recipe_path = str(ROOT / "recipes" / f"{name}.yaml")
        recipe = load_recipe(recipe_path, sets)
        if recipe.objective.joint.enabled:
            sets.append(f"objective.joint.text_table={tmp}/refs/tau_generator.safetensors")
        args = [a for s in sets for a in ("--set", s)]
        subprocess.run(
            [sys.executable, "-m", "rdm_core", "run", recipe_path, "--stages", "references", *args],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        done = subprocess.run(
            [sys.executable, "-c", CHILD, recipe_path, *sets],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        got = json.loads(done.stdout.strip().splitlines()[-1])
        plan = make_plan(load_recipe(recipe_path, sets), "1xH200")
    measured = got["peak"] - got["before"]
    estimate = sum(plan.memory.values())
    return {
        "recipe": name,
        "estimate_mb": estimate / 1e6,
        "measured_mb": measured / 1e6,
        "ratio": estimate / measured,
        "items_mb": {k: v / 1e6 for k, v in plan.memory.items()},
        "notes": plan.notes,
    }


def main() -> None:
    rows = [measure(name) for name in RECIPES]
    save("plan_memory", {"rows": rows})
    print(table(rows, ["recipe", "estimate_mb", "measured_mb", "ratio"]))


if __name__ == "__main__":
    main()
