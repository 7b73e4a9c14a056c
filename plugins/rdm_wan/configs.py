"""Wan 2.1 text-to-video configs and tiny stand-ins (plain data, no torch)."""

from __future__ import annotations

from typing import Any

HUB_ID_1_3B = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"

#: WanTransformer3DModel of Wan2.1 T2V 1.3B.
WAN_1_3B_TRANSFORMER: dict[str, Any] = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=12,
    attention_head_dim=128,
    in_channels=16,
    out_channels=16,
    text_dim=4096,
    freq_dim=256,
    ffn_dim=8960,
    num_layers=30,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    eps=1e-6,
)

TINY_TRANSFORMER: dict[str, Any] = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=2,
    attention_head_dim=12,
    in_channels=16,
    out_channels=16,
    text_dim=32,
    freq_dim=256,
    ffn_dim=32,
    num_layers=2,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    rope_max_seq_len=32,
)

#: Tiny Wan VAE: 8x spatial, 4x temporal (same as the real one), 16 latent channels.
TINY_VAE: dict[str, Any] = dict(
    base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
)

#: Tiny UMT5 encoder (4096 -> 32 wide).
TINY_UMT5: dict[str, Any] = dict(
    d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, relative_attention_num_buckets=8, dropout_rate=0.0
)

SCHEDULER: dict[str, Any] = dict(num_train_timesteps=1000, shift=5.0)
