"""What the trainer's seams cost per step: ``GradCacheTrainer.train_step`` against the bare step.

The trainer reaches the objective only through the ``Objective`` contract and its capabilities
(``isinstance`` checks for stepped / coupling / stateful objectives, the ``mmd`` objective built
from the registry). This measures one optimizer step of the shipped digits recipe (N = 1024 =
256 x 4 chunks, four encoders, Nystrom references with 512 landmarks) two ways in one process,
on the very same generator, encoders and references:

- ``trainer``: ``GradCacheTrainer.train_step`` (draw chunks, ``begin_step``, ``gradcache_step``
  with the trainer's ``encode`` and ``MMDObjective.loss``, ``after_step``);
- ``bare``: the same chunks drawn up front, then ``gradcache_step`` with a hand-written encode
  (generator -> encoders) and loss (each reference's distance, ``combine``): no registry, no
  objective object, no capability checks.

Process CPU time per step (other jobs on the shared machine do not count), the two arms
alternating, minimum over the repeats.

    python benchmarks/trainer_seams.py              # 12 repeats of 3 steps per arm
    python benchmarks/trainer_seams.py --quick      # 4 repeats

Writes benchmarks/results/trainer_seams.json and prints a table.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import save, table

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "digits-cpu.yaml"
STEPS_PER_REPEAT = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    repeats = 4 if args.quick else 12

    import torch

    from rdm_core.distributed import init_from_env
    from rdm_core.interfaces import TrainerOptions
    from rdm_core.recipe.load import load_recipe
    from rdm_gradcache.step import gradcache_step
    from rdm_gradcache.trainer import GradCacheTrainer
    from rdm_mmd.balance import combine
    from rdm_references.pipeline import build_references

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        recipe = load_recipe(RECIPE, [f"references.dir={tmp}/refs", f"run.output_dir={tmp}/runs"])
        build_references(recipe)
        trainer = GradCacheTrainer(recipe, TrainerOptions(show_progress=False))
        ctx = init_from_env("cpu")
        trainer._setup(ctx)  # the trainer's own set-up (generator, encoders, objective, AdamW)
        references = trainer.objective.references
        eps = float(recipe.objective.balance.eps)

        def bare_encode(chunk):
            images = trainer.generator.generate(chunk.noise, chunk.conditions)
            return {name: enc(images) for name, enc in trainer.encoders.items()}

        def bare_loss(features):
            raw = {n: references[n].distance(features[n].float()) for n in references}
            loss = combine(raw, {n: 1.0 for n in raw}, eps)
            return loss, {"raw": {n: float(v.detach()) for n, v in raw.items()}}

        def bare_step(step: int) -> None:
            chunks = trainer.draw_chunks(ctx.device)
            gradcache_step(
                trainer.params,
                trainer.optimizer,
                chunks,
                bare_encode,
                bare_loss,
                grad_clip=float(recipe.train.grad_clip),
            )

        arms = {"trainer": lambda step: trainer.train_step(step, ctx), "bare": bare_step}
        per_step: dict[str, list[float]] = {name: [] for name in arms}
        step = 0
        for run in arms.values():  # warm-up: AdamW states, thread pools, allocator
            step += 1
            run(step)
        for _ in range(repeats):
            for name, run in arms.items():
                start = time.process_time()
                for _ in range(STEPS_PER_REPEAT):
                    step += 1
                    run(step)
                per_step[name].append((time.process_time() - start) / STEPS_PER_REPEAT)

    rows = [
        {
            "arm": name,
            "cpu_s_per_step_min": min(times),
            "cpu_s_per_step_median": sorted(times)[len(times) // 2],
            "ratio_to_bare_min": min(times) / min(per_step["bare"]),
        }
        for name, times in per_step.items()
    ]
    payload = {
        "recipe": "digits-cpu",
        "rollout": int(recipe.train.rollout),
        "chunks": int(recipe.train.chunks),
        "landmarks": int(recipe.objective.distance.landmarks),
        "repeats": repeats,
        "steps_per_repeat": STEPS_PER_REPEAT,
        "rows": rows,
        "raw_seconds": per_step,
    }
    path = save("trainer_seams", payload)
    print(table(rows, ["arm", "cpu_s_per_step_min", "cpu_s_per_step_median", "ratio_to_bare_min"]))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
