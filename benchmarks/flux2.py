"""FLUX.2 [klein] generator benchmark: rdm's one-step path against diffusers' own pipeline.

Measured in the same run, on random-weight models of the real classes (CPU-friendly sizes):

1. one-step sample without gradients: ``Flux2KleinGenerator.generate`` vs
   ``Flux2KleinPipeline(num_inference_steps=1)`` on the same noise and context (baseline);
2. training step (forward + backward through the frozen VAE) without and with gradient
   checkpointing: time and the bytes of activations autograd saves (counted exactly with
   ``saved_tensors_hooks``), the memory checkpointing trades for recompute;
3. conditions per sample: reading rows of a memory-mapped context pool vs encoding with Qwen3.

Usage: ``python benchmarks/flux2.py [--quick]``; writes ``benchmarks/results/flux2.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

SMALL = dict(
    patch_size=1,
    in_channels=128,
    num_layers=2,
    num_single_layers=4,
    attention_head_dim=32,
    num_attention_heads=4,
    joint_attention_dim=96,
    timestep_guidance_channels=256,
    mlp_ratio=3.0,
    axes_dims_rope=(8, 8, 8, 8),
    rope_theta=2000,
    eps=1e-6,
    guidance_embeds=False,
)


def timed(fn, reps: int) -> float:
    fn()  # warm-up
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out) * 1e3


def saved_bytes(fn) -> int:
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


def build(folder: Path, size: str, resolution: int):
    from diffusers import Flux2KleinPipeline, Flux2Transformer2DModel

    from rdm_flux2.generator import Flux2KleinGenerator
    from rdm_flux2.tiny import build_tiny_pipeline

    pipe = build_tiny_pipeline(0)
    if size == "small":
        torch.manual_seed(0)
        pipe.transformer = Flux2Transformer2DModel(**SMALL)
    pipe.save_pretrained(str(folder))
    pipe = Flux2KleinPipeline.from_pretrained(str(folder), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    gen = Flux2KleinGenerator(model_dir=str(folder), variant="tiny", resolution=resolution, vae_dtype="fp32")
    return gen, pipe


def bench_case(size: str, resolution: int, batch: int, reps: int) -> dict[str, Any]:
    from rdm_core.interfaces import Conditions

    with tempfile.TemporaryDirectory() as tmp:
        gen, pipe = build(Path(tmp) / "klein", size, resolution)
        noise = torch.randn(batch, *gen.noise_shape(), generator=torch.Generator().manual_seed(0))
        ctx = gen.encode_prompts([f"prompt {i}" for i in range(batch)])
        cond = Conditions(inputs=ctx)

        def ours():
            with torch.no_grad():
                return gen.generate(noise, cond)

        def baseline():
            return pipe(
                prompt_embeds=ctx,
                latents=noise,
                num_inference_steps=1,
                height=resolution,
                width=resolution,
                guidance_scale=1.0,
                output_type="pt",
            ).images

        diff = (ours() - baseline()).abs().max().item()
        row: dict[str, Any] = {
            "size": size,
            "resolution": resolution,
            "batch": batch,
            "params": sum(p.numel() for p in gen.transformer.parameters()),
            "onestep_ms": timed(ours, reps),
            "pipeline_ms": timed(baseline, reps),
            "max_abs_diff": diff,
        }

        def train_step():
            gen.transformer.zero_grad(set_to_none=True)
            gen.generate(noise, cond).square().mean().backward()

        for on in (False, True):
            gen.set_gradient_checkpointing(on)
            key = "ckpt" if on else "nockpt"
            row[f"train_{key}_ms"] = timed(train_step, reps)
            row[f"saved_{key}_mb"] = saved_bytes(lambda: gen.generate(noise, cond).square().mean()) / 2**20
            row[f"saved_dit_{key}_mb"] = saved_bytes(lambda: gen.one_step_latents(noise, cond).square().mean()) / 2**20
        gen.set_gradient_checkpointing(False)
    return row


def bench_conditions(n_prompts: int, reps: int) -> dict[str, Any]:
    from rdm_flux2.context_pool import ContextPool, build_context_pool
    from rdm_flux2.generator import Flux2KleinGenerator

    gen = Flux2KleinGenerator(variant="tiny", resolution=64)
    prompts = [f"a photo of object number {i}" for i in range(n_prompts)]
    with tempfile.TemporaryDirectory() as tmp:
        path = build_context_pool(
            prompts,
            gen.encode_prompts,
            Path(tmp) / "pool.npy",
            ctx_len=48,
            dim=96,
            variant="tiny",
            batch_size=32,
            show_progress=False,
        )
        pool = ContextPool(path)
        rows = torch.randint(0, n_prompts, (16,), generator=torch.Generator().manual_seed(0))
        read_ms = timed(lambda: pool.rows(rows), reps) / 16
        enc_ms = timed(lambda: gen.encode_prompts([prompts[i] for i in rows.tolist()]), reps) / 16
    return {"pool_rows": n_prompts, "pool_read_ms_per_sample": read_ms, "qwen3_encode_ms_per_sample": enc_ms}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, small sizes, few repetitions")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "flux2.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    cases = (
        [("tiny", 64, 4), ("tiny", 128, 2)]
        if args.quick
        else [("tiny", 64, 4), ("tiny", 128, 4), ("small", 128, 2), ("small", 256, 1)]
    )
    reps = 3 if args.quick else 5
    rows = [bench_case(s, r, b, reps) for s, r, b in cases]
    cond = bench_conditions(64 if args.quick else 256, reps)
    result = {
        "cases": rows,
        "conditions": cond,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "quick": args.quick,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(out)

    from rich.console import Console
    from rich.table import Table

    table = Table(
        title="flux2-klein one-step vs Flux2KleinPipeline (CPU, 1 thread, ms median; saved = autograd activations)"
    )
    for col in (
        "model",
        "res",
        "B",
        "rdm 1-step",
        "pipe 1-step",
        "max|diff|",
        "train",
        "train ckpt",
        "saved MB",
        "ckpt",
        "DiT saved MB",
        "ckpt",
    ):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            f"{r['size']} ({r['params'] / 1e3:.0f}K)",
            str(r["resolution"]),
            str(r["batch"]),
            f"{r['onestep_ms']:.1f}",
            f"{r['pipeline_ms']:.1f}",
            f"{r['max_abs_diff']:.1e}",
            f"{r['train_nockpt_ms']:.1f}",
            f"{r['train_ckpt_ms']:.1f}",
            f"{r['saved_nockpt_mb']:.2f}",
            f"{r['saved_ckpt_mb']:.2f}",
            f"{r['saved_dit_nockpt_mb']:.2f}",
            f"{r['saved_dit_ckpt_mb']:.2f}",
        )
    console = Console(width=160)
    console.print(table)
    console.print(
        f"conditions: pool read {cond['pool_read_ms_per_sample']:.3f} ms/sample vs Qwen3 encode "
        f"{cond['qwen3_encode_ms_per_sample']:.2f} ms/sample (tiny Qwen3; the 4B one is far slower)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
