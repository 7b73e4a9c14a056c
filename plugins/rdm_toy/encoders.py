"""The toy encoders as rdm :class:`~rdm_core.interfaces.Encoder` modules, and their factories.

Every encoder takes ``[0,1]`` NCHW images at any size (1 or 3 channels), resizes them
differentiably to 16 x 16, averages the channels to grey and returns float32 ``(B, dim)``
features (float64 when an ``fp64`` run has cast the encoder to float64). Parameters are frozen; gradients flow to the images.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rdm_core.errors import ArtifactError, RecipeError, ShapeError
from rdm_core.interfaces import EncoderSpec
from rdm_core.precision import encoder_compute_dtype
from rdm_toy.specs import RESOLUTION, SPECS
from rdm_toy.training import DEFAULT_SEEDS, load_or_train, new_network


class ToyEncoder(nn.Module):
    """A frozen toy network behind the rdm encoder contract.

    Args:
        spec: the declared spec (name, dim, split).
        net: a module with ``features(grey) -> (B, dim)``.
        source: where the weights came from (a file, or how they were built).
    """

    def __init__(self, spec: EncoderSpec, net: nn.Module, source: str = "") -> None:
        super().__init__()
        self.spec = spec
        self.net = net
        self.source = source
        self.eval()
        self.requires_grad_(False)

    def train(self, mode: bool = True) -> ToyEncoder:
        # frozen means frozen: dropout/batch statistics never switch back on
        return super().train(False)

    def forward(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ShapeError(
                f"{self.spec.name} expects [0,1] images (B, 3, H, W) or (B, 1, H, W), got shape {tuple(images.shape)}.",
                "pass NCHW image batches",
            )
        dtype = encoder_compute_dtype(self)
        x = images.to(dtype)
        if x.shape[-2:] != (RESOLUTION, RESOLUTION):
            x = F.interpolate(
                x,
                size=(RESOLUTION, RESOLUTION),
                mode="bilinear",
                align_corners=False,
                antialias=x.shape[-1] > RESOLUTION,
            )
        grey = x.mean(dim=1, keepdim=True)
        # autocast off: these nets are tiny and fp32 keeps features identical across passes
        with torch.autocast(device_type=grey.device.type, enabled=False):
            return self.net.features(grey).to(dtype)

    def extra_repr(self) -> str:
        return f"name={self.spec.name}, dim={self.spec.dim}, split={self.spec.split}, weights={self.source}"


def build_toy_encoder(
    name: str,
    variant: str = "full",
    weights: str | None = None,
    seed: int | None = None,
    cache_dir: str | None = None,
    retrain: bool = False,
) -> ToyEncoder:
    """Build toy encoder ``name`` with its weights (file, cache, or a seconds-long fit).

    Args:
        name: one of :data:`rdm_toy.specs.SPECS`.
        variant: ``full`` or ``tiny``; the toy encoders are already tiny, both give the same model.
        weights: a safetensors file that overrides the cache.
        seed: seed of the init / fit (default: the encoder's own, e.g. 1 for ``digits_cnn_wide``).
        cache_dir: cache directory (default ``$RDM_CACHE/toy`` or ``~/.cache/rdm/toy``).
        retrain: ignore an existing cache file and fit again.
    """
    if variant not in ("full", "tiny"):
        raise RecipeError(f"toy encoder variant {variant!r} is unknown.", "use 'full' or 'tiny' (they are the same)")
    seed = DEFAULT_SEEDS.get(name, 0) if seed is None else int(seed)
    state, source = load_or_train(name, seed, weights=weights, cache_dir=cache_dir, retrain=retrain)
    net = new_network(name)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ArtifactError(
            f"weights for {name} from {source} do not fit the network: {str(exc).splitlines()[0]}",
            f"retrain with `rdm toy train-encoders {name}` or fix encoders.weights.{name}",
        ) from None
    spec = SPECS[name] if SPECS[name].seed in (None, seed) else replace(SPECS[name], seed=seed)
    return ToyEncoder(spec, net, source)


def _factory(name: str):
    def factory(
        variant: str = "full",
        weights: str | None = None,
        seed: int | None = None,
        cache_dir: str | None = None,
        retrain: bool = False,
    ) -> ToyEncoder:
        return build_toy_encoder(name, variant, weights, seed, cache_dir, retrain)

    factory.__name__ = name
    factory.__doc__ = f"Factory of toy encoder ``{name}``: {SPECS[name].notes}."
    return factory


digits_cnn = _factory("digits_cnn")
digits_ae = _factory("digits_ae")
digits_random = _factory("digits_random")
digits_pixels = _factory("digits_pixels")
digits_cnn_wide = _factory("digits_cnn_wide")
digits_pca = _factory("digits_pca")
digits_gabor = _factory("digits_gabor")
