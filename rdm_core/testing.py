"""Reusable contract tests for plugin authors (import from test files only: this module uses pytest).

:class:`GeneratorContract` is a pytest mixin, in the spirit of diffusers' pipeline tester mixins:
a test class that inherits it and provides a tiny generator runs every check of the
:class:`~rdm_core.interfaces.Generator` contract and of the optional generator capabilities the
class declares. Every generator a shipped plugin registers runs it under its registry name (a
test fails when one has no contract class); a third-party generator plugin gets the same checks
with a few lines::

    from rdm_core.capabilities import PromptConditionedGenerator
    from rdm_core.testing import GeneratorContract


    class TestMyGenerator(GeneratorContract):
        registry_name = "my-generator"
        capabilities = (PromptConditionedGenerator,)

        def make_generator(self):
            return MyGenerator(variant="tiny")

Override the ``generator`` fixture instead of :meth:`~GeneratorContract.make_generator` when
building the generator needs other fixtures (e.g. a tiny weights folder written once per session).
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from typing import Any, ClassVar

import pytest
import torch

from rdm_core.capabilities import (
    ClassConditionedGenerator,
    ContextEncoder,
    GradientCheckpointing,
    PlanStatsProvider,
    PromptConditionedGenerator,
    TeacherSampler,
)
from rdm_core.interfaces import Conditions, Generator

#: the optional capabilities a generator may declare (all of :mod:`rdm_core.capabilities` that
#: concern generators); a contract class must list exactly the ones its generator implements
GENERATOR_CAPABILITIES: tuple[type, ...] = (
    PromptConditionedGenerator,
    ClassConditionedGenerator,
    TeacherSampler,
    GradientCheckpointing,
    PlanStatsProvider,
    ContextEncoder,
)


def _same(a: Any, b: Any) -> bool:
    """Exact equality of condition payloads: tensors (also nested in tuples/lists/dicts), lists, None."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _rows(x: Any) -> int | None:
    """Leading dimension of a condition payload (first tensor found), ``None`` when it has none."""
    if isinstance(x, torch.Tensor):
        return int(x.shape[0])
    if isinstance(x, (tuple, list)):
        found = [r for r in (_rows(v) for v in x) if r is not None]
        return found[0] if found else None
    if isinstance(x, dict):
        return _rows(list(x.values()))
    return None


class GeneratorContract:
    """Mixin: the :class:`~rdm_core.interfaces.Generator` contract as pytest tests.

    Subclasses name themselves ``Test...``, implement :meth:`make_generator` (or override the
    ``generator`` fixture) and set the class attributes below when the defaults do not fit.
    Everything runs on the CPU in float32; keep the generator tiny.
    """

    #: the name the generator is registered under (``generators`` registry), when it is one: the
    #: contract then checks the generator is of the type that registry entry builds
    registry_name: ClassVar[str | None] = None
    #: optional capabilities the generator implements; the contract checks it implements exactly
    #: these (of :data:`GENERATOR_CAPABILITIES`) and exercises each of them
    capabilities: ClassVar[tuple[type, ...]] = ()
    #: samples per generated batch
    batch_size: ClassVar[int] = 2
    #: prompts for PromptConditionedGenerator / ContextEncoder checks
    prompts: ClassVar[tuple[str, ...]] = ("a red apple on a wooden table", "two cats asleep on a sofa")
    #: teacher steps for the TeacherSampler check
    teacher_steps: ClassVar[int] = 2
    #: keyword arguments passed to ``plan_stats`` (usually the recipe's ``generator.args``)
    plan_stats_args: ClassVar[dict[str, Any]] = {}
    #: tolerance for gradients with checkpointing on vs off (recomputation may reorder sums)
    checkpointing_atol: ClassVar[float] = 1e-6

    # -- what a subclass provides -------------------------------------------------------------
    def make_generator(self) -> Generator:
        """A fresh tiny generator on the CPU (float32). Override this or the ``generator`` fixture."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_generator() or a `generator` fixture")

    @pytest.fixture
    def generator(self) -> Generator:
        return self.make_generator()

    # -- helpers ------------------------------------------------------------------------------
    def _inputs(self, gen: Generator, seed: int = 0) -> tuple[torch.Tensor, Conditions]:
        rng = torch.Generator().manual_seed(seed)
        noise = torch.randn((self.batch_size, *gen.noise_shape()), generator=rng)
        return noise, gen.sample_conditions(self.batch_size, rng)

    @staticmethod
    def _check_images(x: Any, batch: int, what: str) -> None:
        assert isinstance(x, torch.Tensor), f"{what} returned {type(x).__name__}, not a tensor"
        x = x.detach()
        assert x.dim() in (4, 5) and x.shape[0] == batch and x.shape[1] == 3, (
            f"{what} must return (B, 3, H, W) images or (B, 3, F, H, W) video with B={batch}, got {tuple(x.shape)}"
        )
        assert x.dtype == torch.float32, f"{what} must return float32 outside autocast, got {x.dtype}"
        assert torch.isfinite(x).all(), f"{what} returned NaN or Inf"
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0, (
            f"{what} must return values in [0, 1], got [{float(x.min())}, {float(x.max())}]"
        )

    # -- the required contract ----------------------------------------------------------------
    def test_is_a_generator_with_a_stable_trainable_module(self, generator):
        assert isinstance(generator, Generator)
        module = generator.trainable_module()
        assert isinstance(module, torch.nn.Module)
        assert generator.trainable_module() is module, "trainable_module() must return the same module every time"
        assert any(p.requires_grad for p in module.parameters()), "the trainable module has no trainable parameter"

    def test_is_what_its_registry_entry_builds(self, generator):
        if self.registry_name is None:
            pytest.skip("no registry_name: not a registered generator")
        from rdm_core.plugins import registry

        factory = registry("generators").resolve(self.registry_name)
        # a class is its own type; a factory function declares the type it returns
        built = factory if isinstance(factory, type) else typing.get_type_hints(factory).get("return")
        assert isinstance(built, type), (
            f"the factory of generator {self.registry_name!r} is neither a class nor annotated with its return type"
        )
        assert isinstance(generator, built), (
            f"generator {self.registry_name!r} builds {built.__name__}, but the contract tests {type(generator).__name__}"
        )

    def test_noise_shape(self, generator):
        shape = generator.noise_shape()
        assert isinstance(shape, tuple) and shape, f"noise_shape() must be a non-empty tuple, got {shape!r}"
        assert all(isinstance(d, int) and d > 0 for d in shape), f"noise_shape() must hold positive ints, got {shape}"
        assert generator.noise_shape() == shape

    def test_sample_conditions_are_a_function_of_the_seeded_rng(self, generator):
        before = torch.random.get_rng_state()
        a = generator.sample_conditions(3, torch.Generator().manual_seed(7))
        b = generator.sample_conditions(3, torch.Generator().manual_seed(7))
        assert torch.equal(torch.random.get_rng_state(), before), "sample_conditions must only use the rng it is given"
        assert isinstance(a, Conditions)
        assert _same(a.inputs, b.inputs) and _same(a.caption_ids, b.caption_ids) and a.captions == b.captions
        rows = _rows(a.inputs)
        assert rows in (None, 3), f"sample_conditions(3, rng) returned inputs with {rows} rows"
        if a.caption_ids is not None:
            assert a.caption_ids.shape == (3,) and a.caption_ids.dtype == torch.int64
        if a.captions is not None:
            assert len(a.captions) == 3 and all(isinstance(c, str) for c in a.captions)
        assert _same(a.to("cpu").inputs, a.inputs)

    def test_generate_shape_dtype_range_and_determinism(self, generator):
        noise, cond = self._inputs(generator)
        x = generator.generate(noise, cond)
        self._check_images(x, self.batch_size, "generate")
        again = generator.generate(noise, cond)
        assert torch.equal(x, again), "generate must be a pure function of noise, conditions and parameters"

    def test_every_trainable_parameter_gets_a_gradient(self, generator):
        module = generator.trainable_module()
        module.zero_grad(set_to_none=True)
        noise, cond = self._inputs(generator)
        x = generator.generate(noise, cond)
        # random weights so that no parameter's gradient cancels by symmetry
        weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
        (x * weights).sum().backward()
        missing, zero = [], []
        for name, p in module.named_parameters():
            if not p.requires_grad:
                continue
            if p.grad is None:
                missing.append(name)
            else:
                assert torch.isfinite(p.grad).all(), f"non-finite gradient for {name}"
                if not p.grad.abs().sum() > 0:
                    zero.append(name)
        assert not missing, f"parameters without a gradient (not on the generate path?): {missing[:5]}"
        assert not zero, f"parameters whose gradient is exactly zero: {zero[:5]}"

    def test_save_and_load_weights_round_trip(self, generator, tmp_path):
        module = generator.trainable_module()
        noise, cond = self._inputs(generator)
        with torch.no_grad():
            before = generator.generate(noise, cond)
        path = tmp_path / "weights.safetensors"
        generator.save_weights(str(path))
        assert path.is_file()
        with torch.no_grad():  # move every trainable parameter away from the saved values
            gen = torch.Generator().manual_seed(3)
            for p in module.parameters():
                if p.requires_grad:
                    p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.1 + 0.05)
            moved = generator.generate(noise, cond)
        assert not torch.equal(moved, before), "perturbing the trainable parameters did not change generate()"
        generator.load_weights(str(path))
        with torch.no_grad():
            after = generator.generate(noise, cond)
        assert torch.equal(after, before), "load_weights(save_weights(...)) must restore generate() exactly"

    def test_load_weights_refuses_a_file_of_another_model(self, generator, tmp_path):
        from safetensors.torch import save_file

        from rdm_core.errors import RdmError

        path = tmp_path / "other.safetensors"
        save_file({"not_a_parameter_of_this_model.weight": torch.zeros(3)}, str(path))
        with pytest.raises(RdmError):
            generator.load_weights(str(path))
        with pytest.raises(RdmError):
            generator.load_weights(str(tmp_path / "missing.safetensors"))

    # -- optional capabilities ----------------------------------------------------------------
    def test_declares_exactly_its_capabilities(self, generator):
        implemented = {c.__name__ for c in GENERATOR_CAPABILITIES if isinstance(generator, c)}
        declared = {c.__name__ for c in self.capabilities}
        assert implemented == declared, (
            f"the generator implements {sorted(implemented)} but the contract class declares {sorted(declared)}; "
            "list every capability it offers in `capabilities` so each one is exercised"
        )

    def test_prompt_conditioning(self, generator):
        if PromptConditionedGenerator not in self.capabilities:
            pytest.skip("not a PromptConditionedGenerator")
        prompts = list(self.prompts[: self.batch_size])
        cond = generator.conditions_from_prompts(prompts)
        assert cond.captions == prompts and cond.caption_ids is None
        assert _rows(cond.inputs) == len(prompts)
        again = generator.conditions_from_prompts(prompts)
        assert _same(cond.inputs, again.inputs), "conditions_from_prompts must be a function of the prompts"
        noise, _ = self._inputs(generator)
        with torch.no_grad():
            self._check_images(generator.generate(noise[: len(prompts)], cond), len(prompts), "generate(prompts)")

    def test_class_conditioning(self, generator):
        if ClassConditionedGenerator not in self.capabilities:
            pytest.skip("not a ClassConditionedGenerator")
        assert isinstance(generator.num_classes, int) and generator.num_classes > 0
        ids = torch.arange(self.batch_size) % generator.num_classes
        cond = generator.conditions_from_classes(ids)
        noise, _ = self._inputs(generator)
        with torch.no_grad():
            self._check_images(generator.generate(noise, cond), self.batch_size, "generate(classes)")

    def test_teacher_sampling(self, generator):
        if TeacherSampler not in self.capabilities:
            pytest.skip("not a TeacherSampler")
        noise, cond = self._inputs(generator)
        x = generator.teacher_sample(noise, cond, self.teacher_steps)
        self._check_images(x, self.batch_size, "teacher_sample")
        assert not x.requires_grad, "teacher_sample must run without gradients"
        assert x.shape == generator.generate(noise, cond).shape

    def test_gradient_checkpointing_keeps_the_gradients(self, generator):
        if GradientCheckpointing not in self.capabilities:
            pytest.skip("not a GradientCheckpointing generator")
        module = generator.trainable_module()
        noise, cond = self._inputs(generator)
        weights = None
        grads = []
        for on in (False, True):
            generator.set_gradient_checkpointing(on)
            module.zero_grad(set_to_none=True)
            x = generator.generate(noise, cond)
            if weights is None:
                weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
            (x * weights).sum().backward()
            grads.append({n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None})
        generator.set_gradient_checkpointing(False)
        assert grads[0].keys() == grads[1].keys()
        for name in grads[0]:
            assert torch.allclose(grads[0][name], grads[1][name], atol=self.checkpointing_atol), name

    def test_plan_stats(self, generator):
        if PlanStatsProvider not in self.capabilities:
            pytest.skip("not a PlanStatsProvider")
        stats = generator.plan_stats(**self.plan_stats_args)
        for key in ("params", "flops_per_sample"):
            assert key in stats and float(stats[key]) > 0, f"plan_stats() must report a positive {key}"

    def test_context_encoding(self, generator):
        if ContextEncoder not in self.capabilities:
            pytest.skip("not a ContextEncoder")
        prompts: Sequence[str] = list(self.prompts)
        ctx = generator.encode_prompts(prompts)
        assert ctx.shape == (len(prompts), generator.ctx_len, generator.ctx_dim)
        assert ctx.dtype == torch.float32 and not ctx.requires_grad and torch.isfinite(ctx).all()


__all__ = ["GENERATOR_CAPABILITIES", "GeneratorContract"]
