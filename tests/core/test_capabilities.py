"""Optional capabilities: declared protocols, one clear error when one is missing, and every
shipped component that declares one keeps to the protocol's signatures."""

from __future__ import annotations

import inspect
import typing

import pytest

from rdm_core import capabilities as caps
from rdm_core.capabilities import (
    ConfigurableReferenceSet,
    MissingCapabilityError,
    PromptConditionedGenerator,
    TeacherSampler,
    capability_members,
    require,
)
from rdm_core.errors import RdmError

PROTOCOLS = [getattr(caps, name) for name in caps.__all__ if isinstance(getattr(caps, name), type)]
PROTOCOLS = [p for p in PROTOCOLS if getattr(p, "_is_protocol", False)]


class Unconditional:
    def noise_shape(self):
        return (4,)


class Prompted(Unconditional):
    def conditions_from_prompts(self, prompts):
        return list(prompts)


def test_every_capability_is_a_runtime_checkable_protocol_reexported_by_interfaces():
    from rdm_core import interfaces

    assert len(PROTOCOLS) >= 13
    for proto in PROTOCOLS:
        assert getattr(proto, "_is_runtime_protocol", False), proto
        assert getattr(interfaces, proto.__name__) is proto
        assert capability_members(proto), proto


def test_members_are_listed_in_declaration_order():
    assert capability_members(ConfigurableReferenceSet) == ("runtime_options", "configure")
    assert capability_members(caps.ContextEncoder) == ("ctx_len", "ctx_dim", "encode_prompts")
    assert capability_members(caps.ClassConditionedGenerator) == ("num_classes", "conditions_from_classes")


def test_require_returns_the_component_when_it_has_the_capability():
    gen = Prompted()
    assert require(gen, PromptConditionedGenerator, what="generator 'p'", needed_by="x", fix="y") is gen


def test_require_raises_one_line_naming_component_missing_members_and_consumer():
    with pytest.raises(MissingCapabilityError) as info:
        require(
            Unconditional(),
            PromptConditionedGenerator,
            what="generator 'digits-mlp'",
            needed_by="rdm generate --prompt",
            fix="use --num K instead",
        )
    err = info.value
    assert isinstance(err, RdmError)
    assert str(err) == (
        "generator 'digits-mlp' (Unconditional) cannot serve rdm generate --prompt: it lacks "
        "conditions_from_prompts() (capability PromptConditionedGenerator). Fix: use --num K instead"
    )
    assert "\n" not in str(err)


def test_require_lists_only_the_missing_members_and_marks_attributes_without_parentheses():
    class HalfContext:
        ctx_len = 48

        def encode_prompts(self, prompts):
            return prompts

    with pytest.raises(MissingCapabilityError, match=r"it lacks ctx_dim \(capability ContextEncoder\)"):
        require(HalfContext(), caps.ContextEncoder, what="generator 'g'", needed_by="rdm context build", fix="f")

    class NoOptions:
        def configure(self, **options):
            return self

    with pytest.raises(MissingCapabilityError, match=r"lacks runtime_options\(\) "):
        require(NoOptions(), ConfigurableReferenceSet, what="reference", needed_by="training", fix="f")


def test_teacher_sampler_is_the_same_object_in_interfaces_and_capabilities():
    from rdm_core.interfaces import TeacherSampler as FromInterfaces

    assert FromInterfaces is TeacherSampler


# -- shipped components keep to the protocols' signatures ---------------------------------------


def _probe_call(proto_fn, bound: bool) -> tuple[list, dict]:
    """Placeholder arguments that a call matching the protocol method would pass."""
    params = list(inspect.signature(proto_fn).parameters.values())
    if not bound:
        params = params[1:]  # self
    args, kwargs = [], {}
    for p in params:
        if p.kind is p.VAR_KEYWORD:
            kwargs["some_unknown_option"] = 1  # such methods must accept (and may ignore) extras
        elif p.kind is p.KEYWORD_ONLY:
            kwargs[p.name] = None
        elif p.kind is not p.VAR_POSITIONAL and p.default is p.empty:
            args.append(None)
    return args, kwargs


def _component_classes():
    from rdm_core.plugins import registry

    for kind in ("generators", "references", "data_sources", "kernels", "metrics", "objectives"):
        reg = registry(kind)
        for name in reg.names():
            factory = reg.resolve(name)
            if not inspect.isclass(factory):
                ret = typing.get_type_hints(factory).get("return") if callable(factory) else None
                factory = ret if inspect.isclass(ret) else None
            if factory is not None:
                yield f"{kind}:{name}", factory


def test_shipped_components_that_declare_a_capability_match_its_signatures():
    checked = 0
    for label, cls in _component_classes():
        for proto in PROTOCOLS:
            methods = [m for m in capability_members(proto) if callable(getattr(proto, m, None))]
            if not methods or not all(m in dir(cls) for m in methods):
                continue
            for m in methods:
                impl = inspect.getattr_static(cls, m)
                want = inspect.getattr_static(proto, m)
                impl_bound = isinstance(impl, (classmethod, staticmethod))
                want_bound = isinstance(want, (classmethod, staticmethod))
                args, kwargs = _probe_call(getattr(proto, m), bound=want_bound)
                target = getattr(cls, m)
                prefix = [] if impl_bound else [None]  # self
                try:
                    inspect.signature(target).bind(*prefix, *args, **kwargs)
                except TypeError as exc:
                    raise AssertionError(
                        f"{label} {m}{inspect.signature(target)} does not fit {proto.__name__}: {exc}"
                    ) from exc
                checked += 1
    # klein/flux1/wan prompts + teacher + checkpointing, klein plan stats, the references' options
    # and steps, the sources' captions/stat tokens/descriptions, the kernels' profiles, scorers,
    # the mmd objective's steps, state and feature coupling
    assert checked >= 30
