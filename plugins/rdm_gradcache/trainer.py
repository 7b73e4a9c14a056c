"""``GradCacheTrainer``: runs a recipe with exact full-batch GradCache steps (docs/method.md).

Single process or ``torchrun`` (gloo on CPU, NCCL on GPU); no DDP wrapper: every rank holds the
generator, computes the same loss on the gathered global batch, and gradients are averaged with
one all-reduce per tensor (or reduce-scattered by FSDP2 when ``train.fsdp``).
"""

from __future__ import annotations

import contextlib
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rdm_core.capabilities import (
    FeatureCoupling,
    PlottingObjective,
    StatefulObjective,
    SteppedObjective,
)
from rdm_core.console import err_console, progress
from rdm_core.distributed import DistContext, all_reduce_mean_, barrier, init_from_env
from rdm_core.errors import RecipeError
from rdm_core.interfaces import Conditions, ObjectiveContext, TrainerOptions, as_image_batch
from rdm_core.recipe.assemble import build_encoders, build_generator, build_objective, plain
from rdm_core.recipe.load import to_yaml
from rdm_gradcache.budget import CpuBudget
from rdm_gradcache.divergence import DivergenceGuard
from rdm_gradcache.generator_setup import broadcast_module_, enable_gradient_checkpointing
from rdm_gradcache.gradcache import Chunk
from rdm_gradcache.layout import Layout, lr_at, resolve_layout
from rdm_gradcache.plots import save_loss_curve
from rdm_gradcache.rundir import RunDir, peak_memory_gb
from rdm_gradcache.samples import save_sample_grid
from rdm_gradcache.sharding import (
    full_model_state,
    full_optimizer_state,
    is_sharded,
    load_full_model_state,
    load_full_optimizer_state,
    shard,
)
from rdm_gradcache.state import capture_rng, restore_rng
from rdm_gradcache.step import StepResult, gradcache_step

# Conditions get their own stream: seeding it like the noise stream would tie class/prompt
# choices to the noise values drawn from the same Mersenne-Twister sequence.
CONDITION_SEED_OFFSET = 1_000_003
# The dtype of the trained weights (and of the optimizer state) per train.precision: bf16 keeps
# fp32 master weights and computes the forward passes under bf16 autocast.
MASTER_WEIGHTS_DTYPE = {"bf16": torch.float32, "fp32": torch.float32, "fp64": torch.float64}


class GradCacheTrainer:
    """Implements :class:`rdm_core.interfaces.Trainer` for a loaded recipe.

    Args:
        recipe: a loaded recipe (``rdm_core.recipe.load.load_recipe``).
        options: how ``rdm train`` was invoked (recipe spelling for hints, progress bar, step
            callbacks).
    """

    def __init__(self, recipe: Any, options: TrainerOptions | None = None) -> None:
        self.recipe = recipe
        self.options = options or TrainerOptions()

    # -- set-up ---------------------------------------------------------------------------------
    def _setup(self, ctx: DistContext) -> None:
        recipe, train = self.recipe, self.recipe.train
        if train.precision not in MASTER_WEIGHTS_DTYPE:
            raise RecipeError(f"train.precision {train.precision!r} is unknown.", "use bf16, fp32 or fp64")
        self.layout: Layout = resolve_layout(train, ctx.world_size)
        self.dtype = MASTER_WEIGHTS_DTYPE[train.precision]
        self.autocast = train.precision == "bf16"
        # Build with the same global seed on every rank so replicas start identical even if a
        # plugin initialises from the global RNG; per-rank streams are seeded afterwards.
        torch.manual_seed(int(recipe.run.seed))
        self.generator = build_generator(recipe, ctx.device)
        self.module = self.generator.trainable_module()
        self.module.to(device=ctx.device, dtype=self.dtype)
        if recipe.generator.gradient_checkpointing:
            enable_gradient_checkpointing(self.generator)
        self.encoders = build_encoders(recipe, "train", ctx.device)
        for enc in self.encoders.values():
            enc.requires_grad_(False)
            enc.eval()
            if self.dtype == torch.float64:  # an exactness run: noise to features in float64
                enc.to(torch.float64)  # (encoders compute in their weights' dtype, rdm_core.precision)
        self.objective = build_objective(
            ObjectiveContext(recipe, self.encoders, ctx.device, self.layout.rollout, self.options.recipe_ref)
        )
        if train.fsdp:
            shard(self.module, ctx.world_size)
        if train.compile or recipe.generator.compile:
            self.module.compile()
        if ctx.distributed and not is_sharded(self.module):
            broadcast_module_(self.module)
        seed = int(recipe.run.seed) + ctx.rank
        torch.manual_seed(seed)  # dropout and any other op on the global RNG
        random.seed(seed)
        np.random.seed(seed % 2**32)
        self.rngs = {
            "noise": torch.Generator().manual_seed(seed),
            "conditions": torch.Generator().manual_seed(seed + CONDITION_SEED_OFFSET),
        }
        self.params = [p for p in self.module.parameters() if p.requires_grad]
        if not self.params:
            raise RecipeError(
                "the generator's trainable module has no parameters with requires_grad.",
                "unfreeze the parameters to train in trainable_module()",
            )
        self.optimizer = torch.optim.AdamW(
            self.params,
            lr=float(train.lr),
            betas=tuple(float(b) for b in train.betas),
            weight_decay=float(train.weight_decay),
            eps=float(train.eps),
        )

    # -- one step's pieces ---------------------------------------------------------------------
    def draw_chunks(self, device: torch.device) -> list[Chunk]:
        """This rank's chunks for one step, from the dedicated noise and condition streams."""
        shape = tuple(self.generator.noise_shape())
        chunks = []
        for _ in range(self.layout.chunks):
            noise = torch.randn((self.layout.micro_batch, *shape), generator=self.rngs["noise"])
            cond = self.generator.sample_conditions(self.layout.micro_batch, self.rngs["conditions"])
            cond = cond.to(device) if isinstance(cond, Conditions) else cond
            chunks.append(Chunk(noise.to(device=device, dtype=self.dtype), cond))
        return chunks

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        if not self.autocast:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=torch.bfloat16)

    def encode(self, chunk: Chunk) -> dict[str, Tensor]:
        """generator -> [0,1] images (video frames flattened) -> encoders (-> the objective's coupling)."""
        device = chunk.noise.device
        with self._autocast(device):
            out = self.generator.generate(chunk.noise, chunk.conditions)
            frames = out.shape[2] if out.dim() == 5 else 1
            images = as_image_batch(out)
            feats = {name: enc(images) for name, enc in self.encoders.items()}
        if isinstance(self.objective, FeatureCoupling):
            feats = self.objective.couple(feats, chunk.conditions, frames)
        return feats

    def _sync_hook(self):  # FSDP: reduce-scatter gradients once, after the last chunk
        from torch.distributed.fsdp import FSDPModule

        if not isinstance(self.module, FSDPModule):  # replicated: gradients are all-reduced after pass 2
            return None

        def hook(index: int, is_last: bool) -> None:
            self.module.set_requires_gradient_sync(is_last)

        return hook

    def save_samples(self, path: Path, ctx: DistContext) -> None:
        """A grid from fixed seeded noise and conditions (all ranks run it; FSDP needs them)."""
        if not ctx.is_main and not is_sharded(self.module):
            return  # replicated: rank 0 alone; FSDP: every rank must join the forward
        save_sample_grid(
            self.generator,
            self.recipe,
            path,
            ctx,
            batch=self.layout.micro_batch,
            dtype=self.dtype,
            autocast=lambda: self._autocast(ctx.device),
        )

    # -- checkpoints ----------------------------------------------------------------------------
    def _rng_all_ranks(self, ctx: DistContext) -> list[dict[str, Tensor]]:
        mine = capture_rng(self.rngs)
        if not ctx.distributed:
            return [mine]
        import torch.distributed as dist

        gathered: list[dict[str, Tensor]] = [{} for _ in range(ctx.world_size)]
        for key in sorted(mine):
            local = mine[key].to(ctx.device)
            parts = [torch.empty_like(local) for _ in range(ctx.world_size)]
            dist.all_gather(parts, local)
            for rank, part in enumerate(parts):
                gathered[rank][key] = part.cpu()
        return gathered

    def save_checkpoint(self, run: RunDir, step: int, ctx: DistContext) -> None:
        model = full_model_state(self.module)
        optim = full_optimizer_state(self.module, self.optimizer)
        rngs = self._rng_all_ranks(ctx)
        if ctx.is_main:
            meta = {
                "generator": str(self.recipe.generator.name),
                "generator_args": plain(self.recipe.generator.args),
                "run": str(self.recipe.run.name),
            }
            run.save(
                step,
                model,
                optim,
                self.objective.state_dict() if isinstance(self.objective, StatefulObjective) else {},
                rngs,
                {"layout": vars(self.layout), "samples_seen": step * self.layout.rollout},
                meta=meta,
                keep=int(self.recipe.train.keep_checkpoints),
                finite=not self.divergence.diverging,
            )
        barrier()

    def _resume(self, run: RunDir, ctx: DistContext) -> int:
        path = run.latest()
        if path is None:
            if ctx.is_main:
                err_console.print(f"--resume: no checkpoint in {run.root}; starting from step 0", style="yellow")
            return 0
        state = RunDir.load(path, ctx.rank, ctx.world_size)
        load_full_model_state(self.module, {k: v.to(ctx.device) for k, v in state["model"].items()})
        load_full_optimizer_state(self.module, self.optimizer, state["optimizer"])
        if isinstance(self.objective, StatefulObjective):
            self.objective.load_state_dict(state["objective"])
        restore_rng(state["rng"], self.rngs)
        if ctx.is_main:
            run.truncate_metrics(state["step"])
            err_console.print(f"resumed from {path} (step {state['step']})")
        return int(state["step"])

    # -- the loop -------------------------------------------------------------------------------
    def run(self, *, resume: bool = False) -> dict[str, Any]:
        """Train for ``train.steps`` steps; returns a summary (run dir, final step, last metrics row)."""
        recipe, train = self.recipe, self.recipe.train
        ctx = init_from_env(str(recipe.run.device))
        run = RunDir(Path(recipe.run.output_dir) / recipe.run.name)
        if not resume and run.latest() is not None:
            raise RecipeError(
                f"run directory {run.root} already has checkpoints.",
                "pass --resume to continue it, or choose another run.name / run.output_dir",
            )
        budget = CpuBudget.from_recipe(train)
        self.divergence = DivergenceGuard(int(train.max_nonfinite_steps))
        self._setup(ctx)
        start = self._resume(run, ctx) if resume else 0
        self._open_run_dir(run, start, ctx)
        steps = int(train.steps)
        last: dict[str, Any] = {}
        bar = progress() if (ctx.is_main and self.options.show_progress) else None
        with bar if bar is not None else contextlib.nullcontext():
            task = bar.add_task("train", total=steps, completed=start, status="") if bar is not None else None
            for step in range(start + 1, steps + 1):
                # Schedule: this step's learning rate.
                lr = lr_at(train, step - 1)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr

                # Step: draw the chunks, exact GradCache gradient of the global loss, AdamW.
                wall = time.perf_counter()
                budget.start_step()
                result = self.train_step(step, ctx)
                if ctx.device.type == "cuda":
                    torch.cuda.synchronize(ctx.device)
                seconds = time.perf_counter() - wall
                out_of_budget = budget.end_step(ctx)  # every rank stops at the same step
                self.divergence.record(step, finite=not result.skipped)  # the same verdict on every rank
                final = step == steps or out_of_budget

                # Logging: one metrics row (rank 0), the progress bar.
                last = self._metrics_row(step, lr, result, seconds, ctx, budget)
                self._log_step(run, last, result, final, ctx)
                if bar is not None:
                    terms = " ".join(f"{k}={v:.3g}" for k, v in (last.get("raw") or {}).items())
                    bar.update(task, completed=step, status=f"{terms} | {last['samples_per_s']:.0f} samples/s")

                # Cadence: checkpoints, sample grids and plots; then the step callbacks.
                self._cadence(run, step, final, ctx)
                for callback in self.options.step_callbacks:
                    callback(step)

                # Divergence: stop after train.max_nonfinite_steps non-finite steps in a row.
                if self.divergence.exhausted:
                    raise self.divergence.error(step, run.root, self.options.recipe_ref)

                # Budget: stop after the first step over train.max_seconds.
                if out_of_budget:
                    if ctx.is_main:
                        err_console.print(
                            f"train.max_seconds {budget.limit:g} reached after step {step} "
                            f"({budget.used:.1f} CPU s of training steps)"
                        )
                    break
        if start >= steps and ctx.is_main:
            err_console.print(f"run {run.root} is already at step {start} >= train.steps {steps}; nothing to do")
        done = int(last["step"]) if last else max(start, steps)
        summary = {"run_dir": str(run.root), "step": done, "last": last, "layout": vars(self.layout)}
        if budget.enabled:
            summary["train_cpu_seconds"] = budget.used
        return summary

    def _log_step(self, run: RunDir, row: dict[str, Any], result: StepResult, final: bool, ctx: DistContext) -> None:
        """Rank 0 appends the row every ``log_every`` steps, on skipped steps and at the end."""
        if not ctx.is_main:
            return
        if row["step"] % max(1, int(self.recipe.train.log_every)) == 0 or result.skipped or final:
            run.log(row)
        if result.skipped:
            err_console.print(
                f"step {row['step']}: non-finite loss or gradient, optimizer step skipped", style="yellow"
            )

    def _cadence(self, run: RunDir, step: int, final: bool, ctx: DistContext) -> None:
        """A checkpoint every ``checkpoint_every`` steps and at the end; sample grids, ``loss.png``
        and the objective's plots with every checkpoint and every ``sample_every`` steps."""
        train = self.recipe.train
        at_checkpoint = step % max(1, int(train.checkpoint_every)) == 0 or final
        if at_checkpoint:
            self.save_checkpoint(run, step, ctx)
        sample_every = int(train.sample_every)
        if not (at_checkpoint or (sample_every > 0 and step % sample_every == 0)):
            return
        self.save_samples(run.sample_path(step), ctx)
        if ctx.is_main:
            save_loss_curve(run.metrics, run.loss_png)
            if isinstance(self.objective, PlottingObjective):
                self.objective.save_plots(run.metrics, run.root)

    def _open_run_dir(self, run: RunDir, start: int, ctx: DistContext) -> None:
        """The resolved recipe beside the checkpoints; a metrics log without a checkpoint is stale."""
        if ctx.is_main:
            run.root.mkdir(parents=True, exist_ok=True)
            run.write_recipe(to_yaml(self.recipe))
            if start == 0 and run.metrics.exists():
                run.metrics.unlink()  # a run that died before its first checkpoint
        barrier()

    def train_step(self, step: int, ctx: DistContext) -> StepResult:
        """Optimizer step ``step``: chunks -> GradCache (pass 1, global loss, pass 2) -> average,
        clip, AdamW; the objective hears about the step before and (if it was taken) after."""
        chunks = self.draw_chunks(ctx.device)
        if isinstance(self.objective, SteppedObjective):
            self.objective.begin_step(step)
        result = gradcache_step(
            self.params,
            self.optimizer,
            chunks,
            self.encode,
            self.objective.loss,
            grad_clip=float(self.recipe.train.grad_clip),
            average=None if is_sharded(self.module) else all_reduce_mean_,  # FSDP already averages
            before_chunk_backward=self._sync_hook(),
        )
        if not result.skipped and isinstance(self.objective, SteppedObjective):
            self.objective.after_step(self.objective_logs(result))
        return result

    @staticmethod
    def objective_logs(result: StepResult) -> dict[str, Any]:
        """What the objective's ``loss`` logged (GradCache's own ``finite`` flag removed)."""
        return {k: v for k, v in result.logs.items() if k != "finite"}

    def _metrics_row(
        self, step: int, lr: float, result: StepResult, seconds: float, ctx: DistContext, budget: CpuBudget
    ) -> dict[str, Any]:
        row = {
            "step": step,
            **self.objective_logs(result),
            "loss": result.loss,
            "grad_norm": result.grad_norm,
            "lr": lr,
            "samples_per_s": self.layout.rollout / seconds,
            "step_seconds": seconds,
            "peak_memory_gb": peak_memory_gb(ctx.device),
            "skipped": result.skipped,
        }
        if budget.enabled:
            row["train_cpu_seconds"] = budget.used
        return row


def gradcache_trainer(recipe: Any, options: TrainerOptions | None = None) -> GradCacheTrainer:
    """Factory registered as trainer ``gradcache`` (``factory(recipe, options)``)."""
    return GradCacheTrainer(recipe, options)
