"""SW_r14 and MMD_r14 per encoder, written from their definitions in float64 numpy (no rdm_eval code).

Only the protocol's seeded draws are reproduced as the protocol states them (unit directions in
chunks of 64 from a torch generator seeded 0; the RFF map and the two train subsamples from CPU
generators seeded ``seed``, ``seed + 1`` and ``seed + 2``); everything else (roles of the three
sets, truncation, sorting, averaging, the ratio) is computed here independently.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def directions(dim: int, count: int = 1024, chunk: int = 64, seed: int = 0) -> np.ndarray:
    """(dim, count) unit directions: N(0, I) in float32 from one generator, drawn chunk by chunk."""
    gen = torch.Generator().manual_seed(seed)
    parts = []
    for start in range(0, count, chunk):
        theta = torch.randn(dim, min(chunk, count - start), generator=gen, dtype=torch.float32)
        parts.append(theta / theta.norm(dim=0, keepdim=True))
    return torch.cat(parts, dim=1).double().numpy()


def sliced_w(x: np.ndarray, y: np.ndarray, thetas: np.ndarray, p: int = 2) -> float:
    """SW_p between equally sized samples: sort both projections per direction, mean |diff|^p."""
    assert len(x) == len(y)
    px, py = np.sort(x @ thetas, axis=0), np.sort(y @ thetas, axis=0)
    return float(np.mean(np.abs(px - py) ** p) ** (1.0 / p))


def sw_ratio(gen, val, train, *, count: int = 1024, n: int | None = None) -> float:
    """``SW(gen, train) / SW(val, train)``, every set cut to the common N, the same directions."""
    g, v, t = (np.asarray(a, dtype=np.float64) for a in (gen, val, train))
    common = min(len(g), len(v), len(t), n or len(t))
    thetas = directions(t.shape[1], count)
    return sliced_w(g[:common], t[:common], thetas) / sliced_w(v[:common], t[:common], thetas)


def _subsample(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[: min(k, len(x))].numpy()
    return x[idx]


def mmd_ratio(
    gen,
    val,
    train,
    *,
    features: int = 4096,
    seed: int = 99999,
    mean_subsample: int = 50000,
    sigma_subsample: int = 4096,
) -> float:
    """``m(gen) / m(val)`` with ``m(X) = 1000 ||mean phi(X) - mean phi(train subsample)||^2``.

    phi is the random Fourier map of a Gaussian kernel whose bandwidth is the median heuristic
    (sqrt of the median squared pairwise distance) of a seeded train subsample; gen and val are
    cut to their common N.
    """
    g, v, t = (np.asarray(a, dtype=np.float64) for a in (gen, val, train))
    sub = _subsample(t, sigma_subsample, seed + 1)
    sq = ((sub[:, None, :] - sub[None, :, :]) ** 2).sum(-1)
    sigma = math.sqrt(float(np.median(sq[np.triu_indices(len(sub), k=1)])))  # the median heuristic
    rng = torch.Generator().manual_seed(seed)
    w = (torch.randn(t.shape[1], features, generator=rng, dtype=torch.float32) / sigma).double().numpy()
    b = (torch.rand(features, generator=rng, dtype=torch.float32) * (2.0 * math.pi)).double().numpy()

    def mean_phi(x: np.ndarray) -> np.ndarray:
        return math.sqrt(2.0 / features) * np.cos(x @ w + b).mean(axis=0)

    mu_r = mean_phi(_subsample(t, mean_subsample, seed + 2))
    common = min(len(g), len(v))
    m_gen = 1000.0 * float(np.sum((mean_phi(g[:common]) - mu_r) ** 2))
    m_val = 1000.0 * float(np.sum((mean_phi(v[:common]) - mu_r) ** 2))
    return m_gen / m_val


# Measured against these definitions: rdm_eval's SW ratios agree within 1e-9 relative, its MMD
# ratios within 1e-8; the tolerances below are ~100x that.
SW_REL, MMD_REL = 1e-7, 1e-6


def assert_metrics_as_defined(metrics, refs, features, names=("sw_r14", "mmd_r14")) -> None:
    """Each metric's per-encoder ratios and their mean equal the definitions above.

    Args:
        metrics: name -> ``MetricResult`` or its JSON form (``eval.json``'s ``metrics``).
        refs: ``references.dir`` holding ``eval/<encoder>_{train,val}.safetensors``.
        features: encoder -> generated features, or a features file written by ``rdm eval``.
        names: the metrics to check.
    """
    import pytest

    from rdm_core.artifacts import load_tensors

    if not isinstance(features, dict):
        features, _ = load_tensors(features)
    for name in names:
        result = metrics[name]
        per_item = result["per_item"] if isinstance(result, dict) else result.per_item
        value = result["value"] if isinstance(result, dict) else result.value
        ratio, rel = (sw_ratio, SW_REL) if name == "sw_r14" else (mmd_ratio, MMD_REL)
        want = {}
        for enc, feats in features.items():
            train, _ = load_tensors(f"{refs}/eval/{enc}_train.safetensors")
            val, _ = load_tensors(f"{refs}/eval/{enc}_val.safetensors")
            want[enc] = ratio(feats, val["features"], train["features"])
        assert per_item == pytest.approx(want, rel=rel), name
        assert value == pytest.approx(sum(want.values()) / len(want), rel=rel), name
