"""Hyper-parameters of the pixel MeanFlow (pMF) network, under the names of the authors' release.

A configuration is a plain mapping (``img_size``, ``num_classes``, ``hidden_size``, ``depth``,
``num_heads``, ``bottleneck_dim``, ``patch_size``, ``aux_head_depth``, ``rope_2d``,
``learned_pe``, ``disable_v_head``, ...), so every published size can be built and a recipe can
override any single value. The published sizes (pMF-T/B/M/L/XL/H of the pMF and FD-Loss papers)
are presets here with the flags the RDM ImageNet run uses (2-D RoPE over patches, learned
position embedding, no v-head).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from rdm_core.errors import RecipeError, close_matches


@dataclass(frozen=True)
class PMFConfig:
    """One pMF denoiser: a MiT backbone (shared trunk + u-head) behind a bottleneck patch embedding.

    Attributes:
        img_size: image side in pixels.
        num_classes: class count; the label table has one more row (the null class, index
            ``num_classes``).
        hidden_size: transformer width D.
        depth: blocks in total; ``max(0, depth - aux_head_depth)`` form the shared trunk.
        num_heads: attention heads (head width D / heads).
        bottleneck_dim: channels of the patchifying convolution before the 1x1 projection to D.
        patch_size: patch side p.
        in_channels: image channels.
        aux_head_depth: blocks of the u-head (and of the v-head when it is enabled).
        class_tokens, guidance_tokens, interval_tokens, time_tokens: prefix tokens per condition
            (the interval count applies to t_min and to t_max).
        rope_2d: 2-D rotary embedding over the patch tokens (else 1-D over all tokens).
        learned_pe: a learned absolute position embedding over the whole sequence.
        disable_v_head: drop the auxiliary v-head (the one-step sampler never uses it).
        t_eps: lower clamp of t in the x -> u conversion.
        noise_scale: kept for fidelity to the checkpoint configuration; the one-step sampler feeds
            plain N(0, I) noise and never applies it.
        weight_init_constant, embedding_init_constant, token_init_constant: init scales.
    """

    img_size: int = 256
    num_classes: int = 1000
    hidden_size: int = 1280
    depth: int = 48
    num_heads: int = 16
    bottleneck_dim: int = 256
    patch_size: int = 16
    in_channels: int = 3
    aux_head_depth: int = 8
    class_tokens: int = 8
    guidance_tokens: int = 4
    interval_tokens: int = 2
    time_tokens: int = 4
    rope_2d: bool = True
    learned_pe: bool = True
    disable_v_head: bool = True
    t_eps: float = 0.05
    noise_scale: float = 2.0
    weight_init_constant: float = 0.32
    embedding_init_constant: float = 1.0
    token_init_constant: float = 1.0

    # -- derived sizes ------------------------------------------------------------------------
    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def grid(self) -> int:
        """Patches per image side."""
        return self.img_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid**2

    @property
    def prefix_tokens(self) -> int:
        return self.class_tokens + self.guidance_tokens + 2 * self.interval_tokens + self.time_tokens

    @property
    def seq_len(self) -> int:
        return self.prefix_tokens + self.num_patches

    @property
    def shared_depth(self) -> int:
        """Blocks of the shared trunk (0 when ``depth`` <= ``aux_head_depth``, as in pMF-T)."""
        return max(0, self.depth - self.aux_head_depth)

    @property
    def mlp_hidden(self) -> int:
        """SwiGLU width: floor(8/3 D), rounded up to a multiple of 8 only for D > 1024."""
        width = int(self.hidden_size * 8 / 3)
        if self.hidden_size > 1024:
            width = (width + 7) // 8 * 8
        return width

    @property
    def patch_features(self) -> int:
        return self.patch_size * self.patch_size * self.in_channels

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> PMFConfig:
        """Raise :class:`RecipeError` for a configuration the network cannot be built with."""
        positive = ("img_size", "num_classes", "hidden_size", "depth", "num_heads", "patch_size", "in_channels")
        bad = [f"{k}={getattr(self, k)}" for k in positive if int(getattr(self, k)) < 1]
        if bad:
            raise RecipeError(f"pmf config has non-positive sizes: {', '.join(bad)}.", "use positive values")
        tokens = ("class_tokens", "guidance_tokens", "interval_tokens", "time_tokens", "aux_head_depth")
        bad = [f"{k}={getattr(self, k)}" for k in tokens if int(getattr(self, k)) < 1]
        if bad:
            raise RecipeError(
                f"pmf config {', '.join(bad)}: every condition needs its prefix tokens and the u-head its blocks.",
                "keep the published values (8 class, 4 guidance, 2 interval, 4 time tokens, 8 head blocks)",
            )
        if self.bottleneck_dim < 1:
            raise RecipeError(
                f"pmf bottleneck_dim={self.bottleneck_dim}: only the bottleneck patch embedding is implemented.",
                "use a positive bottleneck_dim (every published size has one: 128 or 256)",
            )
        if self.hidden_size % self.num_heads or self.head_dim % 4:
            raise RecipeError(
                f"pmf hidden_size {self.hidden_size} / num_heads {self.num_heads} gives head width "
                f"{self.hidden_size / self.num_heads:g}; the rotary embedding needs a multiple of 4.",
                "choose hidden_size = num_heads x a multiple of 4",
            )
        if self.img_size % self.patch_size:
            raise RecipeError(
                f"pmf img_size {self.img_size} is not a multiple of patch_size {self.patch_size}.",
                "use an image size divisible by the patch size",
            )
        if not 0.0 < self.t_eps <= 1.0:
            raise RecipeError(f"pmf t_eps {self.t_eps} is outside (0, 1].", "use the published 0.05")
        return self


# The published sizes: (depth, hidden, heads, bottleneck), as the pMF / FD-Loss registries name them.
SIZES: dict[str, tuple[int, int, int, int]] = {
    "pmf-t": (4, 512, 8, 128),
    "pmf-b": (16, 768, 12, 128),
    "pmf-m": (24, 768, 12, 128),
    "pmf-l": (32, 1024, 16, 128),
    "pmf-xl": (48, 1024, 16, 256),
    "pmf-h": (48, 1280, 16, 256),
}

# ``variant: tiny``: the pMF-T network at 64 px with 8 classes (27,348,352 parameters), the
# random-weight stand-in that exercises every code path of the H model on CPU.
TINY = {"img_size": 64, "num_classes": 8}


def preset_config(preset: str) -> PMFConfig:
    """The named published size with the RDM ImageNet flags (256 px, 1000 classes)."""
    key = preset.lower().replace("_", "-")
    if key not in SIZES:
        hint = close_matches(key, SIZES)
        raise RecipeError(
            f"unknown pmf preset {preset!r}." + (f" Did you mean {hint[0]!r}?" if hint else ""),
            f"use one of: {', '.join(SIZES)}",
        )
    depth, hidden, heads, bottleneck = SIZES[key]
    return PMFConfig(depth=depth, hidden_size=hidden, num_heads=heads, bottleneck_dim=bottleneck)


def build_config(preset: str = "pmf-h", variant: str = "full", overrides: dict[str, Any] | None = None) -> PMFConfig:
    """Preset (or the tiny stand-in) with ``overrides`` applied, validated.

    Args:
        preset: one of :data:`SIZES` (ignored by ``variant="tiny"``, which is pMF-T at 64 px, 8 classes).
        variant: ``full`` or ``tiny``.
        overrides: any :class:`PMFConfig` field by name; unknown names are refused.
    """
    if variant not in ("full", "tiny"):
        raise RecipeError(f"pmf variant {variant!r} is unknown.", "use 'full' or 'tiny'")
    config = preset_config("pmf-t" if variant == "tiny" else preset)
    if variant == "tiny":
        config = replace(config, **TINY)
    overrides = dict(overrides or {})
    names = {f.name: f.type for f in fields(PMFConfig)}
    unknown = [k for k in overrides if k not in names]
    if unknown:
        hint = close_matches(unknown[0], names)
        raise RecipeError(
            f"unknown pmf config key {unknown[0]!r}." + (f" Did you mean {hint[0]!r}?" if hint else ""),
            f"use the network's hyper-parameter names: {', '.join(names)}",
        )
    typed = {}
    for key, value in overrides.items():
        default = getattr(config, key)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise RecipeError(f"pmf config {key} must be true or false, got {value!r}.", f"set {key}: true|false")
            typed[key] = value
        elif isinstance(default, int):
            if isinstance(value, bool) or int(value) != value:
                raise RecipeError(f"pmf config {key} must be an integer, got {value!r}.", f"set {key} to an integer")
            typed[key] = int(value)
        else:
            typed[key] = float(value)
    return replace(config, **typed).validate()
