"""`rdm plan`'s memory estimate against the measured peak of the tiny recipes on CPU.

For each tiny recipe (same code path as its full-size parent): build its references with
`rdm run --stages references` in a temporary directory, then in a fresh process build the
trainer and train it under the PyTorch profiler with ``profile_memory=True``. The profiler logs
every tensor allocation and free of the CPU allocator with the running total of live tensor
bytes; "measured" is the peak of that total (weights, optimiser state, activations, cached
features, the loss graph: everything the plan estimates, none of Python's or the allocator's own
overhead, which is why resident-set size was not used). "estimate" is the plan's per-GPU total
for one device. Tiny encoders have no size table, so the plan does not count their weights; the
child measures them on the built modules and the ratio is given with and without them.

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
import json, sys, tempfile
from torch.profiler import ProfilerActivity, profile
from rdm_core.interfaces import TrainerOptions
from rdm_core.recipe.load import load_recipe
from rdm_core.recipe.assemble import build_trainer

recipe = load_recipe(sys.argv[1], sys.argv[2:])
with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
    trainer = build_trainer(recipe, TrainerOptions(recipe_ref=sys.argv[1], show_progress=False))
    trainer.run()
encoder_bytes = sum(
    p.numel() * p.element_size() for enc in trainer.encoders.values() for p in enc.parameters()
)
with tempfile.NamedTemporaryFile(suffix=".json") as trace:
    prof.export_chrome_trace(trace.name)
    events = json.load(open(trace.name))["traceEvents"]
totals = [e["args"]["Total Allocated"] for e in events if e.get("name") == "[memory]"]
print(json.dumps({"peak": max(totals), "encoder_bytes": encoder_bytes, "allocations": len(totals)}))
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
    measured, encoders = got["peak"], got["encoder_bytes"]
    estimate = sum(plan.memory.values())
    return {
        "recipe": name,
        "estimate_mb": estimate / 1e6,
        "measured_mb": measured / 1e6,
        "ratio": estimate / measured,
        "tiny_encoders_mb": encoders / 1e6,
        "ratio_with_encoders": (estimate + encoders) / measured,
        "items_mb": {k: v / 1e6 for k, v in plan.memory.items()},
        "notes": plan.notes,
    }


def main() -> None:
    rows = [measure(name) for name in RECIPES]
    save("plan_memory", {"rows": rows})
    print(table(rows, ["recipe", "estimate_mb", "measured_mb", "ratio", "tiny_encoders_mb", "ratio_with_encoders"]))


if __name__ == "__main__":
    main()
