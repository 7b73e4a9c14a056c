"""Building blocks of the pMF network, written op by op for bit-exact parity with the public code.

Every floating-point step here (the order of multiplications, where a table is computed, which
dtype a norm runs in) follows the published implementation of the pMF / FD-Loss networks, so
the same weights and inputs give bitwise the same output on CPU in fp32. Comments mark the
places where an "equivalent" rewrite would change the last bits.

Parameter names reproduce the public checkpoints: linear layers sit inside a thin wrapper whose
inner module is called ``linear`` (keys ``*.linear.weight``), the label table inside one whose
inner module is called ``embedding``.

Precision: norms, rotary embedding, softmax and the scalar frequency features compute in fp32
(the "compute dtype", which is fp64 only when the module itself runs in fp64 for exactness
checks); everything else follows autocast.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

RMS_EPS = 1e-6
FREQ_FEATURES = 256  # sinusoidal features of a scalar condition
MAX_PERIOD = 10000.0
ROPE_THETA = 10000.0


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """fp32 for fp32/bf16/fp16 tensors (as the public code), fp64 for fp64 ones."""
    return torch.promote_types(dtype, torch.float32)


class RMSNorm(nn.Module):
    """``g * u / sqrt(mean(u^2) + eps)`` over the last axis, in fp32, cast back to the input dtype."""

    def __init__(self, dim: int, eps: float = RMS_EPS) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        dtype = x.dtype
        u = x.to(compute_dtype(dtype))
        y = u * torch.rsqrt(u.pow(2).mean(-1, keepdim=True) + self.eps)
        return (self.weight * y).to(dtype)


class Linear(nn.Module):
    """``nn.Linear`` in a wrapper (key ``.linear.weight``), re-initialised after the default init.

    Args:
        std: normal re-init of the weight with this std (bias zeroed); ``0.0`` zeroes both;
            ``None`` keeps PyTorch's default init. The default init still runs first in every
            case, so the random stream is consumed exactly as in the public code.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, std: float | None = None) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        if std is not None:
            with torch.no_grad():
                if std == 0.0:
                    self.linear.weight.zero_()
                else:
                    nn.init.normal_(self.linear.weight, std=std)
                if bias:
                    self.linear.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x)


class ScalarEmbedder(nn.Module):
    """A scalar condition (h, guidance, interval bound) -> (B, D): sinusoidal features, then an MLP."""

    def __init__(self, hidden: int, init_constant: float = 1.0) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            Linear(FREQ_FEATURES, hidden, std=init_constant / math.sqrt(FREQ_FEATURES)),
            nn.SiLU(),
            Linear(hidden, hidden, std=init_constant / math.sqrt(hidden)),
        )

    @staticmethod
    def frequencies() -> Tensor:
        """The 128 frequencies exp(-ln(10000) k / 128), built in fp32 on the CPU on every call
        (the public code does so; a float64 table rounded to fp32 differs in the last bit)."""
        half = FREQ_FEATURES // 2
        return torch.exp(
            -math.log(MAX_PERIOD) * torch.arange(start=0, end=half, dtype=torch.float32, device="cpu") / half
        )

    def features(self, s: Tensor) -> Tensor:
        """(B,) -> (B, 256): cosines first, then sines."""
        args = s[:, None].to(compute_dtype(s.dtype)) * self.frequencies().to(s.device)[None]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)

    def forward(self, s: Tensor) -> Tensor:
        return self.mlp(self.features(s))


class LabelEmbedder(nn.Module):
    """Class table of ``num_classes + 1`` rows; the last row is the null class."""

    def __init__(self, num_classes: int, hidden: int, init_constant: float = 1.0) -> None:
        super().__init__()
        self.embedding_table = _Embedding(num_classes + 1, hidden, std=init_constant / math.sqrt(hidden))

    def forward(self, y: Tensor) -> Tensor:
        return self.embedding_table(y)


class _Embedding(nn.Module):
    """``nn.Embedding`` in a wrapper (key ``.embedding.weight``), normal re-init after the default."""

    def __init__(self, rows: int, dim: int, std: float) -> None:
        super().__init__()
        self.embedding = nn.Embedding(rows, dim)
        nn.init.normal_(self.embedding.weight, std=std)

    def forward(self, y: Tensor) -> Tensor:
        return self.embedding(y)


class PatchEmbed(nn.Module):
    """(B, C, S, S) -> (B, N, D): p x p stride-p conv to the bottleneck, then a 1x1 conv to D."""

    def __init__(self, patch: int, in_channels: int, bottleneck: int, hidden: int) -> None:
        super().__init__()
        self.proj1 = nn.Conv2d(in_channels, bottleneck, kernel_size=patch, stride=patch, bias=True)
        self.proj2 = nn.Conv2d(bottleneck, hidden, kernel_size=1, stride=1, bias=True)
        for conv in (self.proj1, self.proj2):
            nn.init.xavier_uniform_(conv.weight)
        for conv in (self.proj1, self.proj2):
            nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj2(self.proj1(x)).flatten(2).transpose(1, 2)


def rope_tables(head_dim: int, num_patches: int, seq_len: int, two_d: bool) -> tuple[Tensor, Tensor]:
    """Rotary ``(cos, sin)`` tables, fp32, built on the CPU.

    2-D (the ImageNet configuration): R = head_dim / 2 rotary pairs per head; frequencies
    ``1 / 10000^(2j / R)`` for j < R/2; the first R/2 pairs rotate by ``row * freq``, the last
    R/2 by ``col * freq``; tables cover the ``num_patches`` patch tokens only, shape (N, R).
    1-D: head_dim / 2 pairs, frequencies ``1 / 10000^(2m / head_dim)``, positions 0..S-1 over
    the whole sequence, shape (S, head_dim / 2).
    """
    cpu = torch.device("cpu")  # explicit: a meta-device build must still get real tables
    if two_d:
        pairs = head_dim // 2
        freqs = 1.0 / (ROPE_THETA ** (torch.arange(0, pairs, 2, device=cpu)[: pairs // 2].float() / pairs))
        side = math.isqrt(num_patches)
        index = torch.arange(num_patches, device=cpu)
        rows, cols = (index // side).float(), (index % side).float()
        angles = torch.cat([rows[:, None] * freqs[None], cols[:, None] * freqs[None]], dim=1)
    else:
        freqs = 1.0 / (ROPE_THETA ** (torch.arange(0, head_dim, 2, device=cpu)[: head_dim // 2].float() / head_dim))
        angles = torch.arange(seq_len, device=cpu).float()[:, None] * freqs[None]
    return torch.cos(angles), torch.sin(angles)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate adjacent pairs (2m, 2m+1) of ``x`` (B, S, H, d) on its last ``len(cos)`` tokens.

    Earlier tokens (the condition prefix, for the 2-D tables) pass through unchanged. Computed in
    the compute dtype, cast back to ``x.dtype``.
    """
    dtype, work = x.dtype, compute_dtype(x.dtype)
    n = cos.shape[0]
    xf = x.to(work)
    head, tail = xf[:, : xf.shape[1] - n], xf[:, xf.shape[1] - n :]
    pairs = tail.reshape(*tail.shape[:-1], -1, 2)
    x1, x2 = pairs[..., 0], pairs[..., 1]
    c = cos.to(device=x.device, dtype=work)[None, :, None, :]
    s = sin.to(device=x.device, dtype=work)[None, :, None, :]
    rotated = torch.stack([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1).flatten(-2)
    return torch.cat([head, rotated], dim=1).to(dtype)


class Attention(nn.Module):
    """Multi-head attention with per-head RMS-normalised q/k and rotary embedding, no biases."""

    def __init__(self, hidden: int, heads: int, init_std: float) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.q_proj = Linear(hidden, hidden, bias=False, std=init_std)
        self.k_proj = Linear(hidden, hidden, bias=False, std=init_std)
        self.v_proj = Linear(hidden, hidden, bias=False, std=init_std)
        self.out_proj = Linear(hidden, hidden, bias=False, std=init_std)
        self.q_norm = RMSNorm(self.head_dim)
        self.k_norm = RMSNorm(self.head_dim)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor]) -> Tensor:
        b, s, d = x.shape
        shape = (b, s, self.heads, self.head_dim)
        q = self.q_norm(self.q_proj(x).reshape(shape))
        k = self.k_norm(self.k_proj(x).reshape(shape))
        v = self.v_proj(x).reshape(shape)
        q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        # the query is divided by the Python float sqrt(d) before the product; scaling the
        # scores instead rounds differently whenever sqrt(d) is not a power of two (d = 80)
        q = q / math.sqrt(self.head_dim)
        scores = torch.einsum("bihc,bjhc->bhij", q, k)
        weights = scores.softmax(dim=-1, dtype=compute_dtype(scores.dtype))
        out = torch.einsum("bhij,bjhc->bihc", weights, v).reshape(b, s, d)
        return self.out_proj(out)


class SwiGLU(nn.Module):
    """``W2 (silu(W1 x) * W3 x)``, no biases (W3 is registered before W2, as in the checkpoints)."""

    def __init__(self, hidden: int, inner: int, init_std_in: float, init_std_out: float) -> None:
        super().__init__()
        self.w1 = Linear(hidden, inner, bias=False, std=init_std_in)
        self.w3 = Linear(hidden, inner, bias=False, std=init_std_in)
        self.w2 = Linear(inner, hidden, bias=False, std=init_std_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    """Pre-norm transformer block with per-channel gates on both branches (zero at init)."""

    def __init__(self, hidden: int, heads: int, mlp_hidden: int, weight_init_constant: float) -> None:
        super().__init__()
        self.attn_scale = nn.Parameter(torch.zeros(hidden))
        self.mlp_scale = nn.Parameter(torch.zeros(hidden))
        self.norm1 = RMSNorm(hidden)
        self.attn = Attention(hidden, heads, weight_init_constant / math.sqrt(hidden))
        self.norm2 = RMSNorm(hidden)
        self.mlp = SwiGLU(
            hidden,
            mlp_hidden,
            weight_init_constant / math.sqrt(hidden),
            weight_init_constant / math.sqrt(mlp_hidden),
        )

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor]) -> Tensor:
        x = x + self.attn(self.norm1(x), rope) * self.attn_scale
        return x + self.mlp(self.norm2(x)) * self.mlp_scale


class FinalLayer(nn.Module):
    """RMSNorm then a zero-initialised linear map to the pixels of one patch."""

    def __init__(self, hidden: int, patch_features: int) -> None:
        super().__init__()
        self.norm = RMSNorm(hidden)
        self.linear = Linear(hidden, patch_features, bias=True, std=0.0)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.norm(x))


def unpatchify(tokens: Tensor, patch: int, channels: int) -> Tensor:
    """(B, N, p*p*C) -> (B, C, G*p, G*p); token n = row*G + col, feature (i*p + j)*C + c."""
    b, n, _ = tokens.shape
    side = math.isqrt(n)
    x = tokens.reshape(b, side, side, patch, patch, channels)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, channels, side * patch, side * patch)
