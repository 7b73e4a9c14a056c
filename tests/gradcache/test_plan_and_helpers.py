"""rdm plan arithmetic, the rollout layout, the lr schedule, state round trips, skipped steps."""

from __future__ import annotations

import math
import random
import typing

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from rdm_core.errors import RecipeError
from rdm_core.recipe.load import load_recipe, shipped_recipes_dir
from rdm_gradcache.layout import lr_at, resolve_layout
from rdm_gradcache.plan import encoder_stats, generator_stats, make_plan, parse_gpus
from rdm_gradcache.state import capture_rng, merge_state, restore_rng, split_state
from rdm_gradcache.step import gradcache_step
from rdm_testing.gradcache.tiny_models import make_chunks, make_encode, make_setup


def _train(**kw):
    base = {
        "rollout": 10240,
        "micro_batch": 8,
        "chunks": None,
        "lr": 1.0,
        "warmup_steps": 0,
        "schedule": "constant",
        "steps": 100,
        "min_lr_ratio": 0.0,
    }
    return OmegaConf.create({**base, **kw})


def test_layout_derives_and_checks_chunks():
    assert resolve_layout(_train(), 8).chunks == 160
    assert resolve_layout(_train(chunks=160), 8).per_rank == 1280
    with pytest.raises(RecipeError, match="8 x world_size 8 x chunks 80 = 5120"):
        resolve_layout(_train(chunks=80), 8)
    with pytest.raises(RecipeError, match="not divisible"):
        resolve_layout(_train(rollout=100), 8)


def test_lr_schedule():
    assert [lr_at(_train(), s) for s in (0, 50, 99)] == [1.0, 1.0, 1.0]
    warm = _train(warmup_steps=4)
    assert [lr_at(warm, s) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    cos = _train(schedule="cosine", warmup_steps=0, steps=10, min_lr_ratio=0.1)
    assert lr_at(cos, 0) == pytest.approx(1.0)
    assert lr_at(cos, 5) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_at(cos, 10) == pytest.approx(0.1)


def test_split_merge_round_trip_of_optimizer_state():
    gen, _, _ = make_setup()
    opt = torch.optim.AdamW(gen.parameters(), lr=1e-3, betas=(0.9, 0.95))
    for p in gen.parameters():
        p.grad = torch.randn_like(p)
    opt.step()
    tensors, tree = split_state(opt.state_dict(), "optim")
    back = merge_state(tree, tensors)
    fresh = torch.optim.AdamW(gen.parameters(), lr=5.0)
    fresh.load_state_dict(back)
    a, b = opt.state_dict(), fresh.state_dict()
    assert a["param_groups"][0]["lr"] == b["param_groups"][0]["lr"] == 1e-3
    for idx, st in a["state"].items():
        for key, value in st.items():
            assert torch.equal(value, b["state"][idx][key])


def test_rng_capture_restore():
    gens = {"noise": torch.Generator().manual_seed(5)}
    random.gauss(0, 1)  # leaves a cached gaussian in Python's state
    state = capture_rng(gens)
    first = (torch.rand(3), np.random.rand(2), random.gauss(0, 1), torch.rand(2, generator=gens["noise"]))
    restore_rng(state, gens)
    second = (torch.rand(3), np.random.rand(2), random.gauss(0, 1), torch.rand(2, generator=gens["noise"]))
    assert torch.equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    assert first[2] == second[2] and torch.equal(first[3], second[3])


def test_nonfinite_step_is_skipped():
    gen, encoders, _ = make_setup()
    params = list(gen.parameters())
    before = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=1.0)
    result = gradcache_step(
        params,
        opt,
        make_chunks(2, 3),
        make_encode(gen, encoders),
        lambda f: (sum(v.sum() for v in f.values()) * float("inf"), {}),
        grad_clip=1.0,
    )
    assert result.skipped is True and math.isnan(result.grad_norm) and result.logs["finite"] is False
    assert all(torch.equal(a, b) for a, b in zip(before, params, strict=True))
    assert all(p.grad is None for p in params) and not opt.state


def test_parse_gpus():
    assert parse_gpus("8xH200")[0] == 8 and parse_gpus("32 x h100")[1].memory_gb == 80
    with pytest.raises(RecipeError, match="COUNTxMODEL"):
        parse_gpus("eight H200")


def test_encoder_stats_vit_rule():
    s = encoder_stats("dinov2", 1024)
    assert s["flops"] == pytest.approx(2 * 304.4e6 * 362)
    assert s["act"] == pytest.approx(34 * 362 * 304.4e6 / (12 * 1024))
    assert encoder_stats("unknown_enc", 7)["known"] == 0.0


def test_plan_klein_recipe_against_paper():
    path = shipped_recipes_dir() / "flux2-klein-1step.yaml"
    if not path.exists():
        pytest.skip("klein recipe not shipped yet")
    recipe = load_recipe(path)
    stats, source = generator_stats(recipe)  # computed once (a meta-device FLOP count); reused below
    assert source in ("plan_stats()", "documented size (published model card)")
    plan = make_plan(recipe, "8xH200", mfu=0.35, stats=stats)
    assert plan.chunks == 160 and plan.paper is not None and plan.paper["step"] == 180
    # fp32 weights + grads + two AdamW moments = 16 bytes per parameter of the 3.88 B transformer
    trainable = sum(v for k, v in plan.memory.items() if k.startswith(("trainable", "gradients", "AdamW")))
    assert trainable == pytest.approx(16 * 3.8755e9, rel=1e-3)
    assert plan.activations["generator, checkpointing"] < plan.activations["generator, no checkpointing"]
    # Same order of magnitude as the paper's ~90 H200 GPU-hours at a typical MFU.
    assert 30 < plan.paper["this_plan_gpu_hours_to_step"] < 300
    sharded = make_plan(load_recipe(path, ["train.fsdp=true"]), "8xH200", stats=stats)
    assert sharded.memory["AdamW moments (2 x fp32)"] == pytest.approx(plan.memory["AdamW moments (2 x fp32)"] / 8)
    # Time scales inversely with MFU; more GPUs -> fewer chunks per GPU.
    assert make_plan(recipe, "8xH200", mfu=0.7, stats=stats).seconds_per_step == pytest.approx(
        plan.seconds_per_step / 2, rel=1e-9
    )
    assert make_plan(load_recipe(path, ["train.chunks=null"]), "16xH200", stats=stats).chunks == 80


def test_plan_command_json_and_bad_gpus(capsys):
    from rdm_core.cli.main import main

    path = shipped_recipes_dir() / "flux2-klein-1step.yaml"
    if not path.exists():
        pytest.skip("klein recipe not shipped yet")
    assert main(["plan", str(path), "--gpus", "8xH200", "--json"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert out["gpus"] == 8 and out["chunks"] == 160 and out["paper"]["gpu_hours"] == 90.0
    assert main(["plan", str(path), "--gpus", "8xV999"]) == 2
    assert "COUNTxMODEL" in capsys.readouterr().err


def test_gradient_checkpointing_passthrough():
    from torch import nn

    from rdm_core.capabilities import MissingCapabilityError
    from rdm_gradcache.generator_setup import enable_gradient_checkpointing

    class WithSwitch:
        calls: typing.ClassVar[list] = []

        def set_gradient_checkpointing(self, on):
            self.calls.append(on)

        def trainable_module(self):
            raise AssertionError("the generator's own switch wins")

    class DiffusersLike(nn.Linear):
        enabled = False

        def enable_gradient_checkpointing(self):
            self.enabled = True

    class Plain:
        def trainable_module(self):
            return nn.Linear(2, 2)

    g = WithSwitch()
    enable_gradient_checkpointing(g)
    assert g.calls == [True]
    module = DiffusersLike(2, 2)
    enable_gradient_checkpointing(type("G", (), {"trainable_module": lambda self: module})())
    assert module.enabled
    with pytest.raises(MissingCapabilityError, match="gradient_checkpointing"):
        enable_gradient_checkpointing(Plain())


class _SizedByClass:
    """Sizes itself from its arguments, without being built."""

    def __init__(self, width: int = 4) -> None:
        raise AssertionError("rdm plan must not build a generator whose class gives plan_stats")

    @classmethod
    def plan_stats(cls, width: int = 4, **_):
        return {"params": width * width, "flops_per_sample": 2.0 * width * width}


class _SizedByInstance:
    """Knows its size once built."""

    def __init__(self, width: int = 4) -> None:
        self.module = torch.nn.Linear(width, width, bias=False)

    def trainable_module(self):
        return self.module

    def plan_stats(self):
        return {"params": 1, "flops_per_sample": 7.0}


def test_generator_stats_use_the_plan_stats_capability_or_count_parameters(tmp_path):
    import types

    from rdm_core import hookimpl
    from rdm_core.plugins import PluginHost, set_host

    class Plain:
        def __init__(self, width: int = 4) -> None:
            self.module = torch.nn.Linear(width, width, bias=False)

        def trainable_module(self):
            return self.module

    def register(registry):
        registry.add("by_class", _SizedByClass)
        registry.add("by_instance", _SizedByInstance)
        registry.add("plain", Plain)

    host = PluginHost(discover=False)
    host.register_module(types.SimpleNamespace(__name__="sized", rdm_register_generators=hookimpl(register)), "sized")
    set_host(host)
    try:
        stats = {}
        for name in ("by_class", "by_instance", "plain"):
            path = tmp_path / f"{name}.yaml"
            path.write_text(f"generator: {{name: {name}, args: {{width: 3}}}}\n")
            stats[name] = generator_stats(load_recipe(path))
    finally:
        set_host(None)
    assert stats["by_class"] == ({"params": 9, "flops_per_sample": 18.0}, "plan_stats()")
    assert stats["by_instance"] == ({"params": 1, "flops_per_sample": 7.0}, "plan_stats()")
    assert stats["plain"] == (
        {"params": 9, "flops_per_sample": 18.0},
        "parameter count (flops = 2 x params: a lower bound)",
    )


def _sgd_step_by_hand(grad_clip: float):
    """gradcache_step with plain SGD (lr 1) against the full-batch gradient computed here: the step
    is params - clip(full gradient / chunks), the clip factor min(1, c / (norm + 1e-6))."""
    from rdm_testing.gradcache.tiny_models import full_batch_grads, make_loss

    gen, encoders, refs = make_setup()
    chunks, encode, loss_fn = make_chunks(3, 4), make_encode(gen, encoders), make_loss(refs)
    params = list(gen.parameters())
    ref_loss, ref_grads = full_batch_grads(gen, encode, loss_fn, chunks)
    grads = [g / 3 for g in ref_grads]  # the trainer's scale: 1 / chunks (one rank)
    norm = float(torch.sqrt(sum(g.double().pow(2).sum() for g in grads)))
    factor = min(1.0, grad_clip / (norm + 1e-6)) if grad_clip > 0 else 1.0
    want = [p.detach() - factor * g for p, g in zip(params, grads, strict=True)]
    unused = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))  # a trainable parameter no chunk reaches
    averaged: list[int] = []
    hooked: list[tuple[int, bool]] = []
    result = gradcache_step(
        [*params, unused],
        torch.optim.SGD([*params, unused], lr=1.0),
        chunks,
        encode,
        loss_fn,
        grad_clip=grad_clip,
        gather=lambda t: t,
        average=lambda gs: averaged.append(len(gs)),
        before_chunk_backward=lambda i, last: hooked.append((i, last)),
    )
    assert result.skipped is False and result.loss == pytest.approx(ref_loss, rel=1e-12)
    assert result.logs["finite"] is True and set(result.logs["raw"]) == {"a", "b"}
    assert hooked == [(0, False), (1, False), (2, True)]  # forwarded to the GradCache backward
    assert result.grad_norm == pytest.approx(norm, rel=1e-10)
    # every parameter joins the cross-rank average, the unreached one with a zero gradient
    assert averaged == [len(params) + 1] and torch.equal(unused.grad, torch.zeros(2, dtype=torch.float64))
    for got, ref in zip(params, want, strict=True):
        assert torch.allclose(got.detach(), ref, rtol=0, atol=1e-12)
    return norm


def test_step_is_the_clipped_full_batch_gradient():
    norm = _sgd_step_by_hand(grad_clip=0.0)
    assert _sgd_step_by_hand(grad_clip=-1.0) == pytest.approx(norm)  # a clip <= 0 is off, not a flipped step
    assert _sgd_step_by_hand(grad_clip=norm / 4) == pytest.approx(norm)  # clipping on: a quarter of the step


def test_finite_loss_with_an_overflowing_gradient_norm_is_skipped():
    gen, encoders, _ = make_setup()
    params = list(gen.parameters())
    before = [p.detach().clone() for p in params]
    opt = torch.optim.SGD(params, lr=1.0)
    # the loss (~1e301) is finite in float64, the squared gradient norm is not
    result = gradcache_step(
        params, opt, make_chunks(2, 3), make_encode(gen, encoders), lambda f: (f["a"].sum() * 1e300, {})
    )
    assert result.skipped is True and result.grad_norm == math.inf and math.isfinite(result.loss)
    with torch.no_grad():
        want = float(sum(make_encode(gen, encoders)(c)["a"].sum() for c in make_chunks(2, 3))) * 1e300
    assert result.loss == pytest.approx(want, rel=1e-12)
    assert all(torch.equal(a, b) for a, b in zip(before, params, strict=True)) and all(p.grad is None for p in params)


def test_global_grad_norm_is_float64_and_skips_parameters_without_gradient():
    from rdm_gradcache.step import global_grad_norm

    a, b, c = (torch.nn.Parameter(torch.zeros(3)) for _ in range(3))
    a.grad = torch.full((3,), 2.0**70)  # its squares (2^140) overflow float32
    b.grad = torch.tensor([3.0, 4.0, 0.0])
    assert global_grad_norm([b, c]) == 5.0
    assert global_grad_norm([a, b, c]) == pytest.approx(math.sqrt(3 * 2.0**140), rel=1e-15)
