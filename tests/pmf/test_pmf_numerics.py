"""The pMF network against an independent float64 NumPy re-implementation, piece by piece and whole.

The reference below is written from the architecture's description with explicit loops and
index formulas (no shared code with rdm_pmf): patch convolution as a sum over pixels, the
sinusoidal features with math.cos/math.sin, RoPE as explicit per-pair rotations with row/column
angles, per-head attention, SwiGLU, pixel-by-pixel unpatchify and the one-step update.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rdm_pmf.layers import RMSNorm, ScalarEmbedder, apply_rope, rope_tables, unpatchify
from rdm_testing.pmf import make_generator


def _np(t):
    return t.detach().double().cpu().numpy()


def ref_rms(x, g, eps=1e-6):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * g


def ref_silu(a):
    return a / (1.0 + np.exp(-a))


def ref_scalar_embed(s, sd, prefix):
    feats = np.array(
        [math.cos(s * math.exp(-math.log(10000.0) * k / 128)) for k in range(128)]
        + [math.sin(s * math.exp(-math.log(10000.0) * k / 128)) for k in range(128)]
    )
    h = feats @ sd[f"{prefix}.mlp.0.linear.weight"].T + sd[f"{prefix}.mlp.0.linear.bias"]
    return ref_silu(h) @ sd[f"{prefix}.mlp.2.linear.weight"].T + sd[f"{prefix}.mlp.2.linear.bias"]


def ref_rope_angle(n, m, pairs, grid):
    """Angle of rotary pair m for patch n: first half of the pairs by row, second half by column."""
    half = pairs // 2
    row, col = divmod(n, grid)
    j = m if m < half else m - half
    freq = 10000.0 ** (-(2 * j) / pairs)
    return (row if m < half else col) * freq


def ref_rotate(vec, angles):
    out = vec.copy()
    for m, a in enumerate(angles):
        x1, x2 = vec[2 * m], vec[2 * m + 1]
        out[2 * m] = x1 * math.cos(a) - x2 * math.sin(a)
        out[2 * m + 1] = x1 * math.sin(a) + x2 * math.cos(a)
    return out


def ref_one_step(sd, c, z, y, cfg, t_min, t_max):
    """One sample: z (3, S, S) float64 -> [0,1] image, for the 2-D RoPE, learned-PE, u-head model."""
    p, g, d_model, heads = c.patch_size, c.grid, c.hidden_size, c.num_heads
    hd, n_patch, prefix_len = d_model // heads, c.num_patches, c.prefix_tokens
    w1, b1 = sd["net.x_embedder.proj1.weight"], sd["net.x_embedder.proj1.bias"]
    w2, b2 = sd["net.x_embedder.proj2.weight"][:, :, 0, 0], sd["net.x_embedder.proj2.bias"]
    patches = np.zeros((n_patch, d_model))
    for n in range(n_patch):
        r, col = divmod(n, g)
        bott = np.array(
            [(w1[o] * z[:, r * p : (r + 1) * p, col * p : (col + 1) * p]).sum() + b1[o] for o in range(w1.shape[0])]
        )
        patches[n] = w2 @ bott + b2
    emb = {
        "class": sd["net.y_embedder.embedding_table.embedding.weight"][y],
        "omega": ref_scalar_embed(1.0 - 1.0 / cfg, sd, "net.omega_embedder"),
        "t_min": ref_scalar_embed(t_min, sd, "net.cfg_t_start_embedder"),
        "t_max": ref_scalar_embed(t_max, sd, "net.cfg_t_end_embedder"),
        "time": ref_scalar_embed(1.0, sd, "net.h_embedder"),  # the interval h = 1, not t
    }
    groups = [("class", "class_tokens"), ("omega", "omega_tokens"), ("t_min", "t_min_tokens")]
    groups += [("t_max", "t_max_tokens"), ("time", "time_tokens")]
    seq = np.concatenate([sd[f"net.{tok}"] + emb[key][None] for key, tok in groups] + [patches])
    seq = seq + sd["net.pos_embed"][0]
    pairs = hd // 2
    angles = [[ref_rope_angle(n, m, pairs, g) for m in range(pairs)] for n in range(n_patch)]
    blocks = [f"net.shared_blocks.{i}" for i in range(c.shared_depth)] + [
        f"net.u_heads.{i}" for i in range(c.aux_head_depth)
    ]
    x = seq
    for b in blocks:
        xn = ref_rms(x, sd[f"{b}.norm1.weight"])
        q, k, v = (xn @ sd[f"{b}.attn.{w}_proj.linear.weight"].T for w in "qkv")
        attn = np.zeros_like(x)
        for h in range(heads):
            sl = slice(h * hd, (h + 1) * hd)
            qh = ref_rms(q[:, sl], sd[f"{b}.attn.q_norm.weight"])
            kh = ref_rms(k[:, sl], sd[f"{b}.attn.k_norm.weight"])
            for n in range(n_patch):
                qh[prefix_len + n] = ref_rotate(qh[prefix_len + n], angles[n])
                kh[prefix_len + n] = ref_rotate(kh[prefix_len + n], angles[n])
            scores = qh @ kh.T / math.sqrt(hd)
            w = np.exp(scores - scores.max(1, keepdims=True))
            attn[:, sl] = (w / w.sum(1, keepdims=True)) @ v[:, sl]
        x = x + (attn @ sd[f"{b}.attn.out_proj.linear.weight"].T) * sd[f"{b}.attn_scale"]
        xn = ref_rms(x, sd[f"{b}.norm2.weight"])
        gate = ref_silu(xn @ sd[f"{b}.mlp.w1.linear.weight"].T) * (xn @ sd[f"{b}.mlp.w3.linear.weight"].T)
        x = x + (gate @ sd[f"{b}.mlp.w2.linear.weight"].T) * sd[f"{b}.mlp_scale"]
    out = ref_rms(x[prefix_len:], sd["net.u_final_layer.norm.weight"])
    out = out @ sd["net.u_final_layer.linear.linear.weight"].T + sd["net.u_final_layer.linear.linear.bias"]
    x_hat = np.zeros_like(z)
    for n in range(n_patch):
        r, col = divmod(n, g)
        for i in range(p):
            for j in range(p):
                for ch in range(3):
                    x_hat[ch, r * p + i, col * p + j] = out[n, (i * p + j) * 3 + ch]
    u = (z - x_hat) / 1.0  # t = 1 (clamped to [t_eps, 1])
    return np.clip((z - 1.0 * u) * 0.5 + 0.5, 0.0, 1.0)


def test_one_step_matches_the_float64_reference():
    gen = make_generator(cfg=3.0, t_min=0.25, t_max=0.7)
    gen.trainable_module().double()
    z = torch.randn(2, *gen.noise_shape(), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    labels = torch.tensor([3, 0])
    with torch.no_grad():
        out = _np(gen.generate(z, gen.conditions_from_classes(labels)))
    sd = {k: _np(v) for k, v in gen.trainable_module().state_dict().items()}
    assert out.std() > 0.05 and ((out > 0) & (out < 1)).mean() > 0.95  # alive, mostly unclipped
    for i in range(2):
        want = ref_one_step(sd, gen.config, _np(z[i]), int(labels[i]), 3.0, 0.25, 0.7)
        # the module builds its frequency tables in fp32 (as the public code): ~1e-7 relative
        np.testing.assert_allclose(out[i], want, rtol=0, atol=2e-6)


def test_conditioning_is_used():
    gen = make_generator()
    z = torch.randn(1, *gen.noise_shape(), generator=torch.Generator().manual_seed(0))
    base = gen.generate(z, gen.conditions_from_classes([1]))
    assert not torch.equal(base, gen.generate(z, gen.conditions_from_classes([2])))
    gen.cfg = 2.0
    assert not torch.equal(base, gen.generate(z, gen.conditions_from_classes([1])))


def test_rms_norm_matches_the_formula():
    x = torch.randn(3, 5, 80, dtype=torch.float64)
    norm = RMSNorm(80).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    want = ref_rms(_np(x), _np(norm.weight))
    np.testing.assert_allclose(_np(norm(x)), want, rtol=1e-13, atol=0)
    # fp32 input: computed in fp32, returned in the input dtype; bf16 input comes back as bf16
    assert norm.float()(x.float()).dtype == torch.float32
    assert norm(x.bfloat16()).dtype == torch.bfloat16


@pytest.mark.parametrize("head_dim,grid", [(80, 16), (64, 4), (8, 3)])
def test_rope_2d_rotates_patches_by_row_then_column(head_dim, grid):
    n, prefix, heads = grid * grid, 3, 2
    cos, sin = rope_tables(head_dim, n, n + prefix, two_d=True)
    assert cos.dtype == torch.float32 and cos.shape == (n, head_dim // 2)
    x = torch.randn(1, prefix + n, heads, head_dim, dtype=torch.float64)
    out = _np(apply_rope(x, cos, sin))
    xs = _np(x)
    np.testing.assert_array_equal(out[0, :prefix], xs[0, :prefix])  # prefix tokens untouched
    for tok in range(n):
        angles = [ref_rope_angle(tok, m, head_dim // 2, grid) for m in range(head_dim // 2)]
        for h in range(heads):
            # fp32 tables: angle relative error ~1e-7 on angles up to ~grid
            np.testing.assert_allclose(out[0, prefix + tok, h], ref_rotate(xs[0, prefix + tok, h], angles), atol=5e-6)


def test_rope_1d_covers_every_token():
    seq, head_dim = 7, 8
    cos, sin = rope_tables(head_dim, 4, seq, two_d=False)
    x = torch.randn(2, seq, 1, head_dim, dtype=torch.float64)
    out = _np(apply_rope(x, cos, sin))
    for pos in range(seq):
        angles = [pos * 10000.0 ** (-(2 * m) / head_dim) for m in range(head_dim // 2)]
        np.testing.assert_allclose(out[1, pos, 0], ref_rotate(_np(x)[1, pos, 0], angles), atol=1e-6)


def test_frequency_features_cos_first_and_documented_values():
    freqs = ScalarEmbedder.frequencies()
    assert freqs.dtype == torch.float32 and freqs.shape == (128,)
    assert freqs[0].item() == 1.0
    assert abs(freqs[1].item() - 0.93057203) < 1e-8 and abs(freqs[127].item() - 1.0746076e-4) < 1e-11
    s = torch.tensor([0.25, 0.857142857])
    feats = _np(ScalarEmbedder(16).features(s))
    for b in range(2):
        want = [math.cos(float(s[b]) * math.exp(-math.log(1e4) * k / 128)) for k in range(128)]
        want += [math.sin(float(s[b]) * math.exp(-math.log(1e4) * k / 128)) for k in range(128)]
        np.testing.assert_allclose(feats[b], want, atol=1e-6)


def test_rope_half_frequencies_match_the_published_values():
    cos, _ = rope_tables(80, 4, 4, two_d=True)  # H: d = 80 -> 40 pairs, 20 frequencies
    assert cos[1, 1].item() == 1.0  # token 1 is row 0: its row pairs do not rotate
    freq1 = math.acos(cos[1, 21].item())  # column half, frequency index 1, column 1
    assert abs(freq1 - 0.63095731) < 1e-6


def test_unpatchify_index_formula():
    p, c, g = 3, 3, 2
    tokens = torch.arange(g * g * p * p * c, dtype=torch.float64).reshape(1, g * g, p * p * c)
    img = _np(unpatchify(tokens, p, c))[0]
    for n in range(g * g):
        r, col = divmod(n, g)
        for i in range(p):
            for j in range(p):
                for ch in range(c):
                    assert img[ch, r * p + i, col * p + j] == tokens[0, n, (i * p + j) * c + ch]
