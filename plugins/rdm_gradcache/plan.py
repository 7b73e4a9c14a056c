"""``rdm plan``: per-GPU memory and time per step of a recipe, from arithmetic (no weights).

Formulas are documented in ``docs/training.md``; every number is an estimate. Generators may
expose ``plan_stats()`` (a static/class method taking the generator args, or an instance method);
otherwise parameters are counted on the built generator.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from rdm_core.capabilities import PlanStatsProvider
from rdm_core.errors import RdmError, RecipeError
from rdm_core.interfaces import EncoderSpec, ObjectiveCost
from rdm_core.recipe.assemble import encoder_names, plain

GB = 1e9


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_gb: float
    bf16_tflops: float  # dense peak


GPUS = {
    g.name.lower(): g
    for g in (
        Gpu("H200", 141, 989),
        Gpu("H100", 80, 989),
        Gpu("H100-94", 94, 835),
        Gpu("B200", 180, 2250),
        Gpu("A100", 80, 312),
        Gpu("A100-40", 40, 312),
        Gpu("L40S", 48, 362),
        Gpu("A10G", 24, 125),
        Gpu("RTX4090", 24, 165),
    )
}

# Encoder battery (published sizes; docs/encoders.md): params, tokens (or None for conv nets), width, and for
# conv nets an explicit forward GFLOPs per image. Activation bytes follow the ViT rule below.
ENCODERS: dict[str, dict[str, float]] = {
    "inception": {"params": 23.85e6, "gflops": 11.5, "act_mb": 60, "fp32": 1},
    "convnext": {"params": 87.69e6, "gflops": 30.8, "act_mb": 150},
    "mae": {"params": 303.3e6, "tokens": 197, "width": 1024},
    "clip": {"params": 303.2e6, "tokens": 362, "width": 1024},
    "dinov3_l": {"params": 303.1e6, "tokens": 201, "width": 1024},
    "pe_core_l": {"params": 316.1e6, "tokens": 257, "width": 1024},
    "siglip2": {"params": 427.9e6, "tokens": 196, "width": 1152},
    "aimv2_huge": {"params": 680.9e6, "tokens": 256, "width": 1536},
    "webssl_dino_1b": {"params": 1134.8e6, "tokens": 257, "width": 1536},
    "dreamsim": {"params": 258.2e6, "tokens": 3 * 197, "width": 768},
    "dinov2": {"params": 304.4e6, "tokens": 362, "width": 1024},
    "siglip_v1": {"params": 428.2e6, "tokens": 784, "width": 1152},
    "cradiov3_l": {"params": 319.9e6, "tokens": 259, "width": 1024},
    "flux_vae": {"params": 34.3e6, "gflops": 270.0, "act_mb": 400},
}

# Documented generator sizes for planning without weights (the published model sizes).
KNOWN_GENERATORS: dict[str, dict[str, Any]] = {
    "flux2-klein": {
        "params": 3.8755e9,
        "blocks": 25,
        "width": 3072,
        "patch_tokens_per_512": 1024,
        "vae_decode_gflops_per_512": 2500.0,
        "vae_params": 84e6,
    },
}

# The paper's own compute for comparison (arXiv 2607.02375).
PAPER = {
    "flux2-klein": {"gpu": "H200", "gpus": 8, "step": 180, "gpu_hours": 90.0},
    "pmf": {"gpu": "H200", "gpus": 8, "step": 4000, "gpu_hours": 80.0},  # the ImageNet run, 4000 steps at N = 5120
}


def objective_cost(recipe: Any, encoder_dims: dict[str, int], notes: list[str]) -> ObjectiveCost:
    """The objective's own estimate (its spec's ``plan``), or the bare features when it has none."""
    from rdm_core.recipe.objective import objective_name, objective_spec, resolve_declared

    name = objective_name(recipe.objective)
    spec = objective_spec(name)
    if spec is None or spec.plan is None:
        notes.append(f"objective {name!r} gives no cost estimate: its loss memory and FLOPs are not counted")
        return ObjectiveCost(feature_dims=dict(encoder_dims))
    return resolve_declared(spec.plan)(recipe, encoder_dims)


def parse_gpus(text: str) -> tuple[int, Gpu]:
    """``8xH200`` -> (8, H200)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX*]\s*([\w-]+)\s*", text)
    if not m or m.group(2).lower() not in GPUS:
        raise RecipeError(
            f"--gpus {text!r} is not COUNTxMODEL with a known model.",
            f"write e.g. 8xH200; models: {', '.join(g.name for g in GPUS.values())}",
        )
    return int(m.group(1)), GPUS[m.group(2).lower()]


def _call_static_stats(factory: Any, args: dict[str, Any]) -> dict[str, Any] | None:
    """``factory.plan_stats(**args)`` when the registered class sizes itself without being built."""
    if not isinstance(factory, PlanStatsProvider):
        return None
    if inspect.isclass(factory) and not isinstance(
        inspect.getattr_static(factory, "plan_stats"), (staticmethod, classmethod)
    ):
        return None  # an instance method: needs a built generator
    return dict(factory.plan_stats(**args))


def generator_stats(recipe: Any) -> tuple[dict[str, Any], str]:
    """``(stats, source)``; stats has ``params`` and ``flops_per_sample`` (forward, trainable part)."""
    from rdm_core.plugins import registry

    name, args = str(recipe.generator.name), dict(plain(recipe.generator.args))
    factory = registry("generators").resolve(name)
    stats = _call_static_stats(factory, args)
    if stats is not None:
        return stats, "plan_stats()"
    known = KNOWN_GENERATORS.get(name)
    if known is not None and args.get("variant", "full") == "full":
        res = int(args.get("resolution", 512))
        tokens = known["patch_tokens_per_512"] * (res / 512) ** 2 + int(args.get("ctx_len", 48))
        flops = 2 * known["params"] * tokens + 4 * tokens**2 * known["width"] * known["blocks"]
        return {
            "params": known["params"],
            "flops_per_sample": flops,
            "tokens": tokens,
            "frozen_flops_per_sample": known["vae_decode_gflops_per_512"] * 1e9 * (res / 512) ** 2,
            "frozen_params": known["vae_params"],
            "blocks": known["blocks"],
            "width": known["width"],
        }, "documented size (published model card)"
    try:
        from rdm_core.recipe.assemble import build_generator

        gen = build_generator(recipe, "cpu")
    except RdmError as exc:
        raise RecipeError(
            f"cannot size generator {name!r} without building it, and building failed: {exc.problem}",
            "make its weights available, or give the generator a static plan_stats(**args)",
        ) from exc
    if isinstance(gen, PlanStatsProvider):  # an instance knows its own arguments
        return dict(gen.plan_stats()), "plan_stats()"
    params = sum(p.numel() for p in gen.trainable_module().parameters() if p.requires_grad)
    return {"params": params, "flops_per_sample": 2.0 * params}, "parameter count (flops = 2 x params: a lower bound)"


def encoder_stats(name: str, dim: int | None) -> dict[str, float]:
    """Params, forward FLOPs and activation bytes per image of one encoder (0 when unknown)."""
    info = ENCODERS.get(name)
    if info is None:
        return {"params": 0.0, "flops": 0.0, "act": 0.0, "dim": float(dim or 0), "known": 0.0}
    if "tokens" in info:
        flops = 2 * info["params"] * info["tokens"]
        layers_x_width = info["params"] / (12 * info["width"])  # params ~ 12 L w^2
        act = 34 * info["tokens"] * layers_x_width  # bytes, bf16, flash attention (Korthikanti et al.)
    else:
        flops, act = info["gflops"] * 1e9, info["act_mb"] * 1e6
    return {
        "params": info["params"],
        "flops": flops,
        "act": act,
        "dim": float(dim or 0),
        "known": 1.0,
        "bytes_per_param": 4.0,  # encoders are built in fp32; bf16 comes from autocast, not from the weights
    }


@dataclass
class Plan:
    """The estimate; sizes in bytes per GPU, times in seconds."""

    gpus: int
    gpu: str
    rollout: int
    micro_batch: int
    chunks: int
    fsdp: bool
    checkpointing: bool
    mfu: float
    memory: dict[str, float] = field(default_factory=dict)
    activations: dict[str, float] = field(default_factory=dict)
    flops_per_step: float = 0.0
    seconds_per_step: float = 0.0
    steps: int = 0
    gpu_hours: float = 0.0
    sources: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    paper: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_plan(recipe: Any, gpus: str, *, mfu: float = 0.35, stats: dict[str, Any] | None = None) -> Plan:
    """Estimate per-GPU memory and time per step for ``recipe`` on ``gpus`` (e.g. ``8xH200``)."""
    from rdm_core.plugins import registry

    count, gpu = parse_gpus(gpus)
    train = recipe.train
    n, b = int(train.rollout), int(train.micro_batch)
    if n % (b * count):
        raise RecipeError(
            f"train.rollout {n} is not divisible by micro_batch {b} x {count} GPUs.",
            f"pick a rollout that is a multiple of {b * count}",
        )
    k = n // (b * count)
    ckpt, fsdp = bool(recipe.generator.gradient_checkpointing), bool(train.fsdp)
    source = "given"
    if stats is None:
        stats, source = generator_stats(recipe)
    plan = Plan(count, gpu.name, n, b, k, fsdp, ckpt, mfu, steps=int(train.steps), sources={"generator": source})
    p = float(stats.get("params", 0))
    shard = count if fsdp else 1
    plan.memory["trainable weights (fp32)"] = 4 * p / shard
    plan.memory["gradients (fp32)"] = 4 * p / shard
    plan.memory["AdamW moments (2 x fp32)"] = 8 * p / shard
    frozen = float(stats.get("frozen_params", stats.get("vae_params", 0)))
    plan.memory["frozen generator parts (bf16)"] = 2 * frozen

    enc_spec = registry("encoders")
    encs = {}
    for name in encoder_names(recipe, "train"):
        spec = enc_spec.spec(name) if name in enc_spec else None
        # The size table describes the full encoders; tiny stand-ins only share their names.
        table_name = name if str(recipe.encoders.variant) == "full" else f"{name} (tiny)"
        encs[name] = encoder_stats(table_name, spec.dim if isinstance(spec, EncoderSpec) else None)
    unknown = [e for e, s in encs.items() if not s["known"]]
    if unknown:
        plan.notes.append(f"no size table for encoders {unknown}: their weights/FLOPs are not counted")
    plan.memory["frozen encoders (fp32)"] = sum(s["params"] * s.get("bytes_per_param", 4.0) for s in encs.values())
    cond = float(stats.get("condition_bytes_per_sample", 0.0))
    if cond:  # a step draws the conditions of all its chunks up front
        plan.memory["conditions of all chunks (fp32)"] = cond * b * k

    # Activations of one chunk (pass 2 holds exactly one chunk's graph).
    tokens, blocks, width = stats.get("tokens"), stats.get("blocks"), stats.get("width")
    if tokens and blocks and width:
        full = 34 * tokens * width * blocks * b  # bf16 transformer activations, flash attention
        kept = 2 * tokens * width * blocks * b + 34 * tokens * width * b  # block inputs + one live block
        plan.activations = {"generator, no checkpointing": full, "generator, checkpointing": kept}
    elif "activation_bytes_per_sample" in stats:
        plan.activations = {
            "generator, no checkpointing": stats["activation_bytes_per_sample"] * b,
            "generator, checkpointing": stats.get(
                "checkpointed_activation_bytes_per_sample", stats["activation_bytes_per_sample"]
            )
            * b,
        }
    else:
        plan.notes.append("generator activations unknown (plan_stats gives no tokens/blocks/width)")
    frozen_act = stats.get("frozen_activation_bytes_per_sample")
    if frozen_act is not None:
        plan.activations["frozen decoder (backward through it)"] = float(frozen_act) * b
    elif frozen:
        plan.notes.append(
            "activations of the frozen decoder (e.g. the VAE) are not counted: plan_stats gives no "
            "frozen_activation_bytes_per_sample"
        )
    plan.activations["encoders (all, one chunk)"] = sum(s["act"] for s in encs.values()) * b
    gen_act = plan.activations.get("generator, checkpointing" if ckpt else "generator, no checkpointing", 0.0)
    plan.memory["activations (one chunk)"] = (
        gen_act
        + plan.activations["encoders (all, one chunk)"]
        + plan.activations.get("frozen decoder (backward through it)", 0.0)
    )

    cost = objective_cost(recipe, {name: int(s["dim"]) for name, s in encs.items()}, plan.notes)
    dims = sum(cost.feature_dims.values())
    plan.memory["cached features (local + G + global, fp32)"] = 4 * dims * (2 * b * k + n)
    plan.memory.update(cost.memory)

    # FLOPs per GPU per step: pass 1 forward, pass 2 forward + backward (+ recompute).
    per_sample_gen = float(stats.get("flops_per_sample", 2 * p))
    per_sample_frozen = float(stats.get("frozen_flops_per_sample", 0.0))
    per_image_enc = sum(s["flops"] for s in encs.values())
    gen_factor = 4 + (1 if ckpt else 0)  # fwd, fwd, 2x bwd (+1 fwd recompute)
    per_sample = gen_factor * per_sample_gen + 3 * (per_sample_frozen + per_image_enc)  # frozen: input grads only
    plan.flops_per_step = per_sample * b * k + cost.flops
    plan.seconds_per_step = plan.flops_per_step / (gpu.bf16_tflops * 1e12 * mfu)
    plan.gpu_hours = plan.seconds_per_step * plan.steps * count / 3600
    if not per_sample_frozen and "vae" in str(stats).lower():
        plan.notes.append("frozen decoder FLOPs unknown: not counted")
    ref = PAPER.get(str(recipe.generator.name))
    if ref is not None and plain(recipe.generator.args).get("variant", "full") == "full":
        mine = plan.seconds_per_step * ref["step"] * count / 3600
        plan.paper = {**ref, "this_plan_gpu_hours_to_step": mine}
    return plan
