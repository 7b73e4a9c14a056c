"""``GradCacheTrainer``: runs a recipe with exact full-batch GradCache steps (docs/method.md).

Single process or ``torchrun`` (gloo on CPU, NCCL on GPU); no DDP wrapper: every rank holds the
generator, computes the same loss on the gathered global batch, and gradients are averaged with
one all-reduce per tensor (or reduce-scattered by FSDP2 when ``train.fsdp``).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rdm_core.console import err_console, progress
from rdm_core.distributed import DistContext, all_reduce_mean_, barrier, init_from_env
from rdm_core.errors import RecipeError
from rdm_core.images import save_grid
from rdm_core.interfaces import Conditions, as_image_batch
from rdm_core.recipe.assemble import build_encoders, build_generator, plain
from rdm_core.recipe.load import to_yaml
from rdm_gradcache.gradcache import Chunk
from rdm_gradcache.layout import Layout, lr_at, resolve_layout
from rdm_gradcache.objective import Objective
from rdm_gradcache.plots import save_controller_plot, save_loss_curve
from rdm_gradcache.rundir import RunDir, peak_memory_gb
from rdm_gradcache.sharding import (
    full_model_state,
    full_optimizer_state,
    is_sharded,
    load_full_model_state,
    load_full_optimizer_state,
    shard,
)
from rdm_gradcache.state import capture_rng, restore_rng
from rdm_gradcache.step import gradcache_step

# Conditions get their own stream: seeding it like the noise stream would tie class/prompt
# choices to the noise values drawn from the same Mersenne-Twister sequence.
CONDITION_SEED_OFFSET = 1_000_003
SAMPLE_SEED_OFFSET = 7_919
# Fault injection for crash-safety tests and drills: SIGKILL this process right after step k.
KILL_ENV = "RDM_DEBUG_KILL_AFTER_STEP"
DTYPES = {"bf16": torch.float32, "fp32": torch.float32, "fp64": torch.float64}


def enable_gradient_checkpointing(generator: Any) -> None:
    """Generator-level switch if it has one, else the diffusers-style module method."""
    if hasattr(generator, "set_gradient_checkpointing"):
        generator.set_gradient_checkpointing(True)
        return
    module = generator.trainable_module()
    if hasattr(module, "enable_gradient_checkpointing"):
        module.enable_gradient_checkpointing()
        return
    raise RecipeError(
        f"generator.gradient_checkpointing is on but {type(generator).__name__} supports none.",
        "set generator.gradient_checkpointing: false (or add set_gradient_checkpointing to the generator)",
    )


def broadcast_module_(module: nn.Module) -> None:
    """Make every rank's replica identical to rank 0's (parameters and buffers)."""
    import torch.distributed as dist

    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


class GradCacheTrainer:
    """Implements :class:`rdm_core.interfaces.Trainer` for a loaded recipe.

    Args:
        recipe: a loaded recipe (``rdm_core.recipe.load.load_recipe``).
        recipe_ref: how the user named the recipe, quoted in "rebuild with ..." hints.
        show_progress: draw the rich progress bar on rank 0.
    """

    def __init__(self, recipe: Any, recipe_ref: str | None = None, show_progress: bool = True) -> None:
        self.recipe = recipe
        self.recipe_ref = recipe_ref or "RECIPE"
        self.show_progress = show_progress

    # -- set-up ---------------------------------------------------------------------------------
    def _setup(self, ctx: DistContext) -> None:
        recipe, train = self.recipe, self.recipe.train
        if train.precision not in DTYPES:
            raise RecipeError(f"train.precision {train.precision!r} is unknown.", "use bf16, fp32 or fp64")
        self.layout: Layout = resolve_layout(train, ctx.world_size)
        self.dtype = DTYPES[train.precision]
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
            if self.dtype == torch.float64:
                enc.to(torch.float64)
        self.objective = Objective(recipe, self.encoders, ctx.device, self.layout.rollout, self.recipe_ref)
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
        """generator -> [0,1] images (video frames flattened) -> encoders -> joint coupling."""
        device = chunk.noise.device
        with self._autocast(device):
            out = self.generator.generate(chunk.noise, chunk.conditions)
            frames = out.shape[2] if out.dim() == 5 else 1
            images = as_image_batch(out)
            feats = {name: enc(images) for name, enc in self.encoders.items()}
        ids = chunk.conditions.caption_ids if isinstance(chunk.conditions, Conditions) else None
        return self.objective.couple(feats, ids, frames)

    def _sync_hook(self):  # FSDP: reduce-scatter gradients once, after the last chunk
        if not is_sharded(self.module) or not hasattr(self.module, "set_requires_gradient_sync"):
            return None

        def hook(index: int, is_last: bool) -> None:
            self.module.set_requires_gradient_sync(is_last)

        return hook

    def save_samples(self, path: Path, ctx: DistContext) -> None:
        """A grid from fixed seeded noise and conditions (all ranks run it; FSDP needs them)."""
        count = int(self.recipe.train.sample_count)
        if count <= 0 or (not ctx.is_main and not is_sharded(self.module)):
            return  # replicated: rank 0 alone; FSDP: every rank must join the forward
        seed = int(self.recipe.run.seed) + SAMPLE_SEED_OFFSET
        noise_rng, cond_rng = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
        shape = tuple(self.generator.noise_shape())
        outs = []
        # fork_rng: sampling must not move the training RNG (resume exactness).
        with torch.random.fork_rng(devices=[ctx.device] if ctx.device.type == "cuda" else []), torch.no_grad():
            for start in range(0, count, self.layout.micro_batch):
                b = min(self.layout.micro_batch, count - start)
                noise = torch.randn((b, *shape), generator=noise_rng).to(ctx.device, self.dtype)
                cond = self.generator.sample_conditions(b, cond_rng)
                cond = cond.to(ctx.device) if isinstance(cond, Conditions) else cond
                with self._autocast(ctx.device):
                    outs.append(self.generator.generate(noise, cond).float().cpu())
        if ctx.is_main:
            save_grid(torch.cat(outs), path)
            real = Path(self.recipe.references.dir) / "real_grid.png"  # written by `rdm reference build`
            if real.is_file() and not (path.parent / "real.png").exists():
                shutil.copyfile(real, path.parent / "real.png")

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
                self.objective.state_dict(),
                rngs,
                {"layout": vars(self.layout), "samples_seen": step * self.layout.rollout},
                meta=meta,
                keep=int(self.recipe.train.keep_checkpoints),
            )
        barrier()

    def _resume(self, run: RunDir, ctx: DistContext) -> int:
        path = run.latest()
        if path is None:
            if ctx.is_main:
                err_console.print(f"[yellow]--resume: no checkpoint in {run.root}; starting from step 0[/]")
            return 0
        state = RunDir.load(path, ctx.rank, ctx.world_size)
        load_full_model_state(self.module, {k: v.to(ctx.device) for k, v in state["model"].items()})
        load_full_optimizer_state(self.module, self.optimizer, state["optimizer"])
        self.objective.load_state_dict(state["objective"])
        restore_rng(state["rng"], self.rngs)
        if ctx.is_main:
            run.truncate_metrics(state["step"])
            err_console.print(f"resumed from {path} (step {state['step']})")
        return int(state["step"])

    # -- the loop -------------------------------------------------------------------------------
    def run(self, *, resume: bool = False) -> dict[str, Any]:
        """Train for ``train.steps`` steps; returns a summary (run dir, final step, last raw L_e)."""
        recipe, train = self.recipe, self.recipe.train
        ctx = init_from_env(str(recipe.run.device))
        run = RunDir(Path(recipe.run.output_dir) / recipe.run.name)
        if not resume and run.latest() is not None:
            raise RecipeError(
                f"run directory {run.root} already has checkpoints.",
                "pass --resume to continue it, or choose another run.name / run.output_dir",
            )
        self._setup(ctx)
        start = self._resume(run, ctx) if resume else 0
        if ctx.is_main:
            run.root.mkdir(parents=True, exist_ok=True)
            run.write_recipe(to_yaml(recipe))
            if start == 0 and run.metrics.exists():
                run.metrics.unlink()  # a run that died before its first checkpoint
        barrier()
        kill_after = int(os.environ.get(KILL_ENV, "0") or 0)
        steps, n = int(train.steps), self.layout.rollout
        sync_hook = self._sync_hook()
        average = None if is_sharded(self.module) else all_reduce_mean_  # FSDP already averages
        last: dict[str, Any] = {}
        # Compute budget: process CPU seconds of the training steps of this segment only (a resumed
        # run starts from 0), so load from other jobs on a shared machine does not shrink it.
        budget = None if train.get("max_seconds") is None else float(train.max_seconds)
        if budget is not None and not budget > 0:
            raise RecipeError(
                f"train.max_seconds must be positive, got {budget}.",
                "set train.max_seconds to a positive number of CPU seconds, or null for no budget",
            )
        cpu_used = 0.0
        bar = progress() if (ctx.is_main and self.show_progress) else None
        with bar if bar is not None else contextlib.nullcontext():
            task = bar.add_task("train", total=steps, completed=start, status="") if bar is not None else None
            for step in range(start + 1, steps + 1):
                lr = lr_at(train, step - 1)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                t0, c0 = time.perf_counter(), time.process_time()
                chunks = self.draw_chunks(ctx.device)
                self.objective.begin_step(step)
                result = gradcache_step(
                    self.params,
                    self.optimizer,
                    chunks,
                    self.encode,
                    self.objective.loss_fn,
                    grad_clip=float(train.grad_clip),
                    average=average,
                    before_chunk_backward=sync_hook,
                )
                raw = result.logs.get("raw", {})
                if not result.skipped:
                    self.objective.after_step(raw)
                if ctx.device.type == "cuda":
                    torch.cuda.synchronize(ctx.device)
                seconds = time.perf_counter() - t0
                cpu_used += time.process_time() - c0
                # Every rank stops at the same step: rank 0's verdict is broadcast.
                out_of_budget = budget is not None and _agree(cpu_used > budget, ctx)
                last = {
                    "step": step,
                    "raw": raw,
                    "weights": result.logs.get("weights", {}),
                    "loss": result.loss,
                    "grad_norm": result.grad_norm,
                    "lr": lr,
                    "samples_per_s": n / seconds,
                    "step_seconds": seconds,
                    "peak_memory_gb": peak_memory_gb(ctx.device),
                    "skipped": result.skipped,
                }
                if budget is not None:
                    last["train_cpu_seconds"] = cpu_used
                final = step == steps or out_of_budget
                if ctx.is_main and (step % max(1, int(train.log_every)) == 0 or result.skipped or final):
                    run.log(last)
                if result.skipped and ctx.is_main:
                    err_console.print(f"[yellow]step {step}: non-finite loss or gradient, optimizer step skipped[/]")
                if bar is not None:
                    losses = " ".join(f"{k}={v:.3g}" for k, v in raw.items())
                    bar.update(task, completed=step, status=f"{losses} | {n / seconds:.0f} samples/s")
                at_checkpoint = step % max(1, int(train.checkpoint_every)) == 0 or final
                if at_checkpoint:
                    self.save_checkpoint(run, step, ctx)
                sample_every = int(train.sample_every)
                if at_checkpoint or (sample_every > 0 and step % sample_every == 0):
                    self.save_samples(run.sample_path(step), ctx)
                    if ctx.is_main:
                        save_loss_curve(run.metrics, run.loss_png)
                        floors = self.objective.floors()
                        if floors is not None:
                            save_controller_plot(run.metrics, floors, run.controller_png)
                if kill_after and step == kill_after:
                    os.kill(os.getpid(), signal.SIGKILL)
                if out_of_budget:
                    if ctx.is_main:
                        err_console.print(
                            f"train.max_seconds {budget:g} reached after step {step} "
                            f"({cpu_used:.1f} CPU s of training steps)"
                        )
                    break
        if start >= steps and ctx.is_main:
            err_console.print(f"run {run.root} is already at step {start} >= train.steps {steps}; nothing to do")
        done = int(last["step"]) if last else max(start, steps)
        summary = {"run_dir": str(run.root), "step": done, "last": last, "layout": vars(self.layout)}
        if budget is not None:
            summary["train_cpu_seconds"] = cpu_used
        return summary


def _agree(flag: bool, ctx: DistContext) -> bool:
    """Rank 0's ``flag`` on every rank (CPU clocks differ between processes)."""
    if not ctx.distributed:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def gradcache_trainer(recipe: Any, recipe_ref: str | None = None, show_progress: bool = True) -> GradCacheTrainer:
    """Factory registered as trainer ``gradcache`` (``factory(recipe)``)."""
    return GradCacheTrainer(recipe, recipe_ref=recipe_ref, show_progress=show_progress)
