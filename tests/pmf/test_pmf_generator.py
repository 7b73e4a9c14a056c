"""The ``pmf`` generator behind rdm's interface: conditions, gradients, precision, registry."""

from __future__ import annotations

import pytest
import torch

from rdm_core.errors import RecipeError, ShapeError
from rdm_core.interfaces import Conditions, Generator
from rdm_testing.pmf import make_generator


def test_is_an_rdm_generator_from_the_registry():
    from rdm_core.plugins import registry

    gen = registry("generators").create("pmf", variant="tiny")
    assert isinstance(gen, Generator)
    assert gen.noise_shape() == (3, 64, 64) and gen.num_classes == 8
    assert sum(p.numel() for p in gen.trainable_module().parameters()) == 27_348_352


def test_untrained_model_predicts_grey():
    """The public init zeroes the output layer: x̂ = 0, one step gives exactly z - z = 0 -> 0.5."""
    from rdm_pmf.generator import PMFGenerator

    gen = PMFGenerator(variant="tiny", config={"img_size": 32})
    noise = torch.randn(2, *gen.noise_shape())
    out = gen.generate(noise, gen.conditions_from_classes([0, 7]))
    assert torch.equal(out, torch.full_like(out, 0.5))


def test_conditions_are_uniform_class_ids_from_the_given_stream():
    gen = make_generator()
    a = gen.sample_conditions(4000, torch.Generator().manual_seed(5))
    b = gen.sample_conditions(4000, torch.Generator().manual_seed(5))
    assert isinstance(a, Conditions) and torch.equal(a.inputs, b.inputs)
    assert a.inputs.dtype == torch.int64 and a.inputs.min() == 0 and a.inputs.max() == gen.num_classes - 1
    counts = torch.bincount(a.inputs, minlength=gen.num_classes).double()
    assert (counts / 4000 - 1 / gen.num_classes).abs().max() < 0.03  # 5 classes, 800 expected each
    assert torch.equal(gen.conditions_from_classes([gen.num_classes]).inputs, torch.tensor([5]))  # null class


def test_bad_inputs_are_refused_in_one_line():
    gen = make_generator()
    noise = torch.randn(2, *gen.noise_shape())
    with pytest.raises(ShapeError, match="noise of shape"):
        gen.generate(torch.randn(2, 3, 16, 16), gen.conditions_from_classes([0, 1]))
    with pytest.raises(ShapeError, match="one class id per sample"):
        gen.generate(noise, gen.conditions_from_classes([0]))
    with pytest.raises(ShapeError, match="integer tensor"):
        gen.generate(noise, Conditions(inputs=torch.zeros(2)))
    with pytest.raises(ShapeError, match=r"class ids must be in \[0, 5\]"):
        gen.conditions_from_classes([6])
    for bad in ({"precision": "fp16"}, {"t_min": 0.7, "t_max": 0.2}, {"cfg": 0.0}, {"num_steps": 0}):
        with pytest.raises(RecipeError):
            make_generator(**bad)


def test_every_trainable_parameter_gets_a_gradient_through_the_one_step_sampler():
    gen = make_generator()
    module = gen.trainable_module()
    noise = torch.randn(4, *gen.noise_shape(), generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 3])
    out = gen.generate(noise, gen.conditions_from_classes(labels))
    (out * torch.randn_like(out)).sum().backward()
    no_grad = [n for n, p in module.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert no_grad == []
    table = module.net.y_embedder.embedding_table.embedding.weight.grad
    assert table[:4].abs().sum(1).gt(0).all() and not table[4:].any()  # used rows only (4 = class 4, 5 = null)


def test_gradient_checkpointing_gives_the_same_gradients():
    grads = []
    for on in (False, True):
        gen = make_generator()
        gen.set_gradient_checkpointing(on)
        noise = torch.randn(2, *gen.noise_shape(), generator=torch.Generator().manual_seed(0))
        gen.generate(noise, gen.conditions_from_classes([1, 2])).square().sum().backward()
        grads.append([p.grad.clone() for p in gen.trainable_module().parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*grads, strict=True))


def test_gradient_matches_finite_differences_in_float64():
    gen = make_generator({"depth": 2, "aux_head_depth": 1})
    module = gen.trainable_module().double()
    noise = torch.randn(1, *gen.noise_shape(), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    cond = gen.conditions_from_classes([2])
    weight = torch.randn(1, *gen.noise_shape(), generator=torch.Generator().manual_seed(3), dtype=torch.float64)

    def loss():
        return (gen.generate(noise, cond) * weight).sum()

    loss().backward()
    for name in ("net.u_heads.0.attn.q_proj.linear.weight", "net.omega_tokens", "net.x_embedder.proj1.weight"):
        p = dict(module.named_parameters())[name]
        idx = (0,) * p.dim()
        eps = 1e-6
        with torch.no_grad():
            p[idx] += eps
            up = loss().item()
            p[idx] -= 2 * eps
            down = loss().item()
            p[idx] += eps
        assert abs((up - down) / (2 * eps) - p.grad[idx].item()) < 1e-6 * max(1.0, abs(p.grad[idx].item()))


def test_precision_policy_on_cpu():
    """``bf16`` autocasts on CUDA only (the public wrapper's context is CUDA-only), so on CPU it
    matches ``fp32`` bitwise even inside a caller's CPU autocast; ``inherit`` follows the caller."""
    gen = make_generator()
    noise = torch.randn(2, *gen.noise_shape(), generator=torch.Generator().manual_seed(0))
    cond = gen.conditions_from_classes([0, 1])
    with torch.no_grad():
        fp32 = gen.generate(noise, cond)
        gen.precision = "bf16"
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert torch.equal(gen.generate(noise, cond), fp32)
        gen.precision = "inherit"
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = gen.generate(noise, cond)
    assert low.dtype == torch.float32 and not torch.equal(low, fp32)
    assert (low - fp32).abs().max() < 0.05  # the residual stream and the output stay fp32
