"""Exact model configs for FLUX.2 [klein] and the tiny offline stand-ins (plain data, no torch).

The real-size values follow diffusers' own conversion script (entry ``klein-4b``); the class
defaults of ``Flux2Transformer2DModel`` are FLUX.2-dev (32 B) and must never be used.
"""

from __future__ import annotations

from typing import Any

HUB_ID_4B = "black-forest-labs/FLUX.2-klein-4B"

#: Flux2Transformer2DModel kwargs of FLUX.2 [klein] 4B (3.8755 B parameters).
KLEIN_4B_TRANSFORMER: dict[str, Any] = dict(
    patch_size=1,
    in_channels=128,
    out_channels=None,
    num_layers=5,
    num_single_layers=20,
    attention_head_dim=128,
    num_attention_heads=24,
    joint_attention_dim=7680,
    timestep_guidance_channels=256,
    mlp_ratio=3.0,
    axes_dims_rope=(32, 32, 32, 32),
    rope_theta=2000,
    eps=1e-6,
    guidance_embeds=False,
)

#: FLUX.2 [klein] 9B (Qwen3-8B context, 12288 wide).
KLEIN_9B_TRANSFORMER: dict[str, Any] = dict(
    KLEIN_4B_TRANSFORMER,
    num_layers=8,
    num_single_layers=24,
    num_attention_heads=32,
    joint_attention_dim=12288,
)

#: AutoencoderKLFlux2 defaults equal the FLUX.2 AE; spelled out so a diffusers default change shows.
FLUX2_VAE: dict[str, Any] = dict(
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    latent_channels=32,
    norm_num_groups=32,
    batch_norm_eps=1e-4,
    patch_size=(2, 2),
)

#: Tiny transformer (91 K params): same class, 1 double + 2 single blocks, 2 heads x 16.
TINY_TRANSFORMER: dict[str, Any] = dict(
    patch_size=1,
    in_channels=128,
    out_channels=None,
    num_layers=1,
    num_single_layers=2,
    attention_head_dim=16,
    num_attention_heads=2,
    joint_attention_dim=96,
    timestep_guidance_channels=256,
    mlp_ratio=3.0,
    axes_dims_rope=(4, 4, 4, 4),
    rope_theta=2000,
    eps=1e-6,
    guidance_embeds=False,
)

#: Tiny VAE (290 K params); 4 levels keep the real 8x spatial factor.
TINY_VAE: dict[str, Any] = dict(
    block_out_channels=(16, 16, 32, 32),
    layers_per_block=1,
    latent_channels=32,
    norm_num_groups=8,
    batch_norm_eps=1e-4,
    patch_size=(2, 2),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
)

#: Tiny Qwen3: 28 layers so that hidden_states[27] is a raw layer output (not the final norm);
#: hidden 32 -> 3 x 32 = 96 = the tiny transformer's joint_attention_dim.
TINY_QWEN3: dict[str, Any] = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=28,
    num_attention_heads=2,
    num_key_value_heads=1,
    head_dim=16,
    max_position_embeddings=512,
    tie_word_embeddings=True,
    rms_norm_eps=1e-6,
    rope_theta=1_000_000.0,
)

#: Which Qwen3 hidden states form the context, stacked per token (3 x hidden).
TEXT_LAYERS: tuple[int, ...] = (9, 18, 27)

#: Qwen3 chat template with thinking disabled, as the klein pipeline renders it.
QWEN3_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)

#: Special tokens of the Qwen vocabulary that the tiny tokenizer keeps (ids after the 256 bytes).
QWEN_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<think>",
    "</think>",
)

#: FlowMatchEulerDiscreteScheduler config of the klein repository (dynamic exponential shift).
KLEIN_SCHEDULER: dict[str, Any] = dict(
    num_train_timesteps=1000,
    shift=3.0,
    use_dynamic_shifting=True,
    base_shift=0.5,
    max_shift=1.15,
    base_image_seq_len=256,
    max_image_seq_len=4096,
    time_shift_type="exponential",
)

DEFAULT_CTX_LEN = 48
