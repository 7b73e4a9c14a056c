"""The nine timm encoders of the panel, built and pooled exactly as the authors' code does.

Models are created with ``num_classes=0, dynamic_img_size=True, dynamic_img_pad=True`` (falling back
to a plain build on ``TypeError``, as for ConvNeXt). Weights load through timm's own pretrained path
with ``pretrained_cfg_overlay=dict(file=...)``, so the model's checkpoint filter runs. Pooling is
explicit per encoder rather than ``forward_head`` (which adds ConvNeXt's head norm, returns
MAE's CLS and DINOv3's token average).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from rdm_core.errors import ArtifactError, ShapeError
from rdm_core.interfaces import EncoderSpec
from rdm_encoders import specs
from rdm_encoders.base import FrozenEncoder, resolve_pretrained, spec_for
from rdm_encoders.loading import weight_file

VIT_TINY: dict[str, Any] = dict(embed_dim=64, depth=2, num_heads=2)

# Tiny configs of the same classes (init_values=1.0 avoids the layerscale trap
# where a random DINO CLS barely depends on the input).
TINY_KWARGS: dict[str, dict[str, Any]] = {
    "convnext": dict(depths=(1, 1, 1, 1), dims=(16, 32, 64, 128)),
    "mae": VIT_TINY,
    "clip": VIT_TINY,
    "dinov3_l": dict(VIT_TINY, init_values=1.0),
    "pe_core_l": dict(VIT_TINY, attn_pool_num_heads=2),
    "siglip2": VIT_TINY,
    "aimv2_huge": VIT_TINY,
    "dinov2": dict(VIT_TINY, init_values=1.0),
    "siglip_v1": VIT_TINY,
}


def create_timm(model_id: str, *, file: str | None = None, **kwargs: Any) -> nn.Module:
    """``timm.create_model`` with the authors' flags.

    Args:
        model_id: tagged timm name (the tag selects mean/std and the checkpoint filter).
        file: local weights file loaded through timm's pretrained path; ``None`` = random init.
        **kwargs: architecture overrides (tiny configs), ``num_classes`` (default 0).
    """
    import pickle

    import timm

    kw = dict(num_classes=0, **kwargs)
    if file is not None:
        kw.update(pretrained=True, pretrained_cfg_overlay=dict(file=str(file)))
    try:
        try:
            return timm.create_model(model_id, dynamic_img_size=True, dynamic_img_pad=True, **kw)
        except TypeError:  # models without dynamic size (ConvNeXt) are built plainly, as in the release
            return timm.create_model(model_id, **kw)
    except (RuntimeError, pickle.UnpicklingError) as exc:
        if file is None or "weights_only" not in str(exc):
            raise
        # timm loads weights_only: a pickled class or function is refused before anything runs
        raise ArtifactError(
            f"{file} holds pickled Python objects, not plain tensors; it was refused unread (nothing in it ran).",
            "use a .safetensors file or a .pth holding only a state dict of tensors (re-save it as one)",
        ) from None


class TimmEncoder(FrozenEncoder):
    """A timm backbone pooled per spec: ``avg`` (spatial mean of a map, or mean of the non-prefix
    tokens), ``cls`` (token 0) or ``attn`` (the model's attention-pool head on all tokens)."""

    def pool(self, ff: Tensor) -> Tensor:
        m, how = self.backbone, self.spec.pooling
        if ff.dim() == 4:  # conv feature map (ConvNeXt): spatial mean, no head norm
            return ff.mean(dim=(2, 3))
        # timm models differ in these attributes (a third-party API, not an rdm capability): models
        # without prefix tokens lack num_prefix_tokens, and only attention-pool heads have attn_pool.
        if how == "avg":
            return ff[:, int(getattr(m, "num_prefix_tokens", 0)) :].mean(dim=1)
        if how == "cls":
            return ff[:, 0]
        if how == "attn":
            attn = getattr(m, "attn_pool", None)
            if attn is None:
                raise ShapeError(
                    f"encoder {self.spec.name!r}: pooling 'attn' but {type(m).__name__} has no attn_pool.",
                    "build the model with global_pool='map'",
                )
            return attn(ff)  # all tokens, prefix included (PE-Core keeps its CLS in the pool)
        raise ShapeError(f"encoder {self.spec.name!r}: unknown pooling {how!r}.", "use avg, cls or attn")

    def embed(self, x: Tensor) -> Tensor:
        return self.pool(self.backbone.forward_features(x))


def build_timm_encoder(
    spec: EncoderSpec,
    variant: str = "full",
    weights: str | None = None,
    pretrained: bool | None = None,
    **overrides: Any,
) -> TimmEncoder:
    """Build one timm panel encoder.

    Args:
        spec: the declared spec (``specs.SPECS[name]``).
        variant: ``full`` or ``tiny`` (same class, tiny config, random unless ``weights`` given).
        weights: local weights file (``.safetensors``/``.pth``/``.bin``) or a directory holding
            ``model.safetensors``; ``None`` = the HF cache (full variant).
        pretrained: ``False`` builds random weights (full-size checks); default loads for ``full``.
        **overrides: extra ``timm.create_model`` keyword arguments.
    """
    load = resolve_pretrained(variant, weights, pretrained, spec.name)
    kwargs = dict(TINY_KWARGS[spec.name]) if variant == "tiny" else {}
    kwargs.update(overrides)
    file = str(weight_file(spec, weights)) if load else None
    model = create_timm(spec.model_id, file=file, **kwargs)
    return TimmEncoder(spec_for(spec, variant, int(model.num_features)), model)


def _builder(name: str):  # type: ignore[no-untyped-def]
    def build(
        variant: str = "full", weights: str | None = None, pretrained: bool | None = None, **overrides: Any
    ) -> TimmEncoder:
        return build_timm_encoder(specs.SPECS[name], variant, weights, pretrained, **overrides)

    build.__name__ = f"build_{name}"
    build.__doc__ = f"Build the {name!r} encoder (see :func:`build_timm_encoder`)."
    return build


build_convnext = _builder("convnext")
build_mae = _builder("mae")
build_clip = _builder("clip")
build_dinov3_l = _builder("dinov3_l")
build_pe_core_l = _builder("pe_core_l")
build_siglip2 = _builder("siglip2")
build_aimv2_huge = _builder("aimv2_huge")
build_dinov2 = _builder("dinov2")
build_siglip_v1 = _builder("siglip_v1")
