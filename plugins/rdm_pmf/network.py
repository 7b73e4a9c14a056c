"""The pMF denoiser (MiT backbone behind ``net``) and its one-step MeanFlow sampler.

The network predicts the clean image x̂ from the state x and the conditions; its output is the
average velocity ``u = (x - x̂) / clamp(t, t_eps, 1)``. A MeanFlow step moves the state by the
interval h: ``x <- x - h u``. The one-step generator is one such step from pure noise (t = 1,
h = 1). Guidance is a *conditioning* here, not a combination of two passes: the guidance scale
enters through its own prefix tokens (as 1 - 1/ω), the guidance interval through two more.

Construction order and random draws follow the public implementation, so an untrained model
seeded the same way holds the same numbers, and ``state_dict()`` enumerates the public keys in
the public order.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rdm_pmf.config import PMFConfig
from rdm_pmf.layers import (
    Block,
    FinalLayer,
    LabelEmbedder,
    PatchEmbed,
    ScalarEmbedder,
    rope_tables,
    unpatchify,
)


class MiT(nn.Module):
    """The backbone: prefix tokens for the conditions, patch tokens, shared trunk, u-head (+ v-head)."""

    def __init__(self, config: PMFConfig) -> None:
        super().__init__()
        c = config
        d = c.hidden_size
        self.config = c
        # Own parameters first (the checkpoints list them first); they are drawn after the
        # embedders below, which is when the public code draws them.
        self.time_tokens = nn.Parameter(torch.empty(c.time_tokens, d))
        self.class_tokens = nn.Parameter(torch.empty(c.class_tokens, d))
        self.omega_tokens = nn.Parameter(torch.empty(c.guidance_tokens, d))
        self.t_min_tokens = nn.Parameter(torch.empty(c.interval_tokens, d))
        self.t_max_tokens = nn.Parameter(torch.empty(c.interval_tokens, d))
        self.pos_embed = nn.Parameter(torch.empty(1, c.seq_len, d)) if c.learned_pe else None
        self.x_embedder = PatchEmbed(c.patch_size, c.in_channels, c.bottleneck_dim, d)
        self.h_embedder = ScalarEmbedder(d, c.embedding_init_constant)
        self.omega_embedder = ScalarEmbedder(d, c.embedding_init_constant)
        self.cfg_t_start_embedder = ScalarEmbedder(d, c.embedding_init_constant)
        self.cfg_t_end_embedder = ScalarEmbedder(d, c.embedding_init_constant)
        self.y_embedder = LabelEmbedder(c.num_classes, d, c.embedding_init_constant)
        with torch.no_grad():
            for tokens in (
                self.time_tokens,
                self.class_tokens,
                self.omega_tokens,
                self.t_min_tokens,
                self.t_max_tokens,
            ):
                nn.init.normal_(tokens, std=c.token_init_constant / math.sqrt(d))
            if self.pos_embed is not None:
                self.pos_embed.normal_(std=0.02)

        def blocks(n: int) -> nn.ModuleList:
            return nn.ModuleList(Block(d, c.num_heads, c.mlp_hidden, c.weight_init_constant) for _ in range(n))

        self.shared_blocks = blocks(c.shared_depth)
        self.u_heads = blocks(c.aux_head_depth)
        self.u_final_layer = FinalLayer(d, c.patch_features)
        if not c.disable_v_head:
            self.v_heads = blocks(c.aux_head_depth)
            self.v_final_layer = FinalLayer(d, c.patch_features)
        # Fixed rotary tables: a plain attribute (not state), as in the public checkpoints.
        self.rope = rope_tables(c.head_dim, c.num_patches, c.seq_len, c.rope_2d)
        self.gradient_checkpointing = False

    def _run(self, blocks: nn.ModuleList, x: Tensor) -> Tensor:
        for block in blocks:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                from torch.utils.checkpoint import checkpoint

                x = checkpoint(block, x, self.rope, use_reentrant=False)
            else:
                x = block(x, self.rope)
        return x

    def _head(self, trunk: Tensor, blocks: nn.ModuleList, final: FinalLayer) -> Tensor:
        tokens = self._run(blocks, trunk)[:, self.config.prefix_tokens :]
        return unpatchify(final(tokens), self.config.patch_size, self.config.in_channels)

    def forward(
        self,
        x: Tensor,
        h: Tensor,
        omega: Tensor,
        t_min: Tensor,
        t_max: Tensor,
        y: Tensor,
        *,
        with_v: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """x-predictions ``(x̂_u, x̂_v or None)`` for states x (B, C, S, S) and (B,) conditions.

        The time embedder sees the interval h, never t; the guidance embedder sees 1 - 1/ω.
        """
        patches = self.x_embedder(x)
        e_h = self.h_embedder(h)
        e_y = self.y_embedder(y)
        e_omega = self.omega_embedder(1 - 1 / omega)
        e_min = self.cfg_t_start_embedder(t_min)
        e_max = self.cfg_t_end_embedder(t_max)
        prefix = [
            self.class_tokens[None] + e_y[:, None],
            self.omega_tokens[None] + e_omega[:, None],
            self.t_min_tokens[None] + e_min[:, None],
            self.t_max_tokens[None] + e_max[:, None],
            self.time_tokens[None] + e_h[:, None],
        ]
        seq = torch.cat([*prefix, patches], dim=1)
        if self.pos_embed is not None:
            seq = seq + self.pos_embed
        trunk = self._run(self.shared_blocks, seq)
        x_u = self._head(trunk, self.u_heads, self.u_final_layer)
        x_v = None
        if with_v and not self.config.disable_v_head:
            x_v = self._head(trunk, self.v_heads, self.v_final_layer)
        return x_u, x_v


class Denoiser(nn.Module):
    """Top-level module of the checkpoints (every key starts with ``net.``); x-prediction -> u."""

    def __init__(self, config: PMFConfig) -> None:
        super().__init__()
        self.config = config
        self.net = MiT(config)

    def forward(
        self, x: Tensor, t: Tensor, h: Tensor, omega: Tensor, t_min: Tensor, t_max: Tensor, y: Tensor
    ) -> Tensor:
        """Average velocity ``u = (x - x̂) / clamp(t, t_eps, 1)`` of the u-head (t only enters here)."""
        x_hat, _ = self.net(x, h, omega, t_min, t_max, y)
        return (x - x_hat) / t.clamp(self.config.t_eps, 1.0).reshape(-1, 1, 1, 1)


def sample(
    model: Denoiser,
    noise: Tensor,
    labels: Tensor,
    *,
    cfg: float,
    t_min: float,
    t_max: float,
    num_steps: int = 1,
) -> Tensor:
    """MeanFlow sampling from ``noise`` in ``num_steps`` equal intervals (differentiable).

    The scalar conditions are fp32 vectors filled with the Python values (the compute dtype for
    fp64 states). One step returns ``z - 1 * ((z - x̂) / 1)``, evaluated as written: it equals
    x̂ only up to rounding, and parity needs the rounding.
    """
    b, device = noise.shape[0], noise.device
    dtype = torch.float64 if noise.dtype == torch.float64 else torch.float32
    grid = torch.linspace(1.0, 0.0, num_steps + 1, dtype=dtype, device=device)
    omega = torch.full((b,), cfg, dtype=dtype, device=device)
    low = torch.full((b,), t_min, dtype=dtype, device=device)
    high = torch.full((b,), t_max, dtype=dtype, device=device)
    x = noise
    for i in range(num_steps):
        t = grid[i].expand(b)
        h = (grid[i] - grid[i + 1]).expand(b)
        u = model(x, t, h, omega, low, high, labels)
        x = x - h.reshape(-1, 1, 1, 1) * u
    return x


def to_images(x: Tensor) -> Tensor:
    """Network range [-1, 1] -> ``[0, 1]`` images (``x * 0.5 + 0.5``, clamped)."""
    return torch.clamp(x * 0.5 + 0.5, 0.0, 1.0)
