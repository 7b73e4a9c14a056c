"""Small pMF generators with non-trivial random weights for the rdm_pmf tests.

The public initialisation zeroes the block gates and the output layer (an untrained model
predicts a grey image), which makes most outputs and gradients trivially zero; these helpers give
every parameter a generic random value instead.
"""

from __future__ import annotations

from typing import Any

# A miniature of the H layout: shared trunk + u-head, 2-D RoPE, learned PE, no v-head; head
# width 8 (sqrt(8) is not a power of two, like H's 80) and a 4 x 4 patch grid.
MICRO = {
    "img_size": 32,
    "patch_size": 8,
    "hidden_size": 32,
    "num_heads": 4,
    "depth": 3,
    "aux_head_depth": 2,
    "bottleneck_dim": 8,
    "num_classes": 5,
}


def randomize(module: Any, seed: int = 0) -> None:
    """Give every parameter a generic random value (the public init zeroes the block gates and
    the output layer, which would make most gradients and outputs trivially zero)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)
            if name.endswith(("attn_scale", "mlp_scale")):
                p.copy_(0.5 + 0.2 * noise)
            elif name.endswith("norm.weight") or "norm" in name.rsplit(".", 2)[-2]:
                p.copy_(1.0 + 0.1 * noise)
            elif "final_layer.linear" in name:  # keep most pixels inside [-1, 1], i.e. unclipped
                p.copy_(0.15 * noise / (p[0].numel() ** 0.5 if p.dim() > 1 else 1.0))
            elif p.dim() >= 2:
                p.copy_(noise / p[0].numel() ** 0.5)
            else:
                p.copy_(0.1 * noise)


def make_generator(config: dict[str, Any] | None = None, seed: int = 0, **kwargs: Any) -> Any:
    """A ``pmf`` generator of the :data:`MICRO` layout (overridden by ``config``), randomised with ``seed``."""
    from rdm_core.seeding import seeded_init
    from rdm_pmf.generator import PMFGenerator

    kwargs.setdefault("precision", "fp32")
    with seeded_init(seed=seed):
        gen = PMFGenerator(variant="tiny", config={**MICRO, **(config or {})}, **kwargs)
    randomize(gen.trainable_module(), seed)
    return gen
