"""Files in exactly the paper authors' container formats, written with ``torch.save``.

Each builder computes its numbers independently of rdm (NumPy, float64) and writes the same
keys, dtypes and shapes as the authors' reference-preparation code: bundles
``{Z, alpha, sigma, k_rr, M, d_in, sigma_scale, pool_path}`` (joint: no ``pool_path``, plus
``{s_txt, beta, d_img, d_txt}``), RFF banks ``{W, b, mu_r, sigma, D, d_in, seed}``, SW banks
``{features, n}``, pools ``{features, n, d_in}``, sigma files ``{sigma, scale}``, floor JSONs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch


def gauss(a: np.ndarray, b: np.ndarray, sigma: float) -> np.ndarray:
    d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    return np.exp(-d2 / (2.0 * sigma**2))


def median_sigma(x: np.ndarray) -> float:
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    return float(np.median(d[np.triu_indices(len(x), 1)]))


def nystrom_dict(pool: np.ndarray, m: int, sigma: float, seed: int = 0, krr_n: int = 100000) -> dict:
    """The authors' bundle numbers: Z = m pool rows, alpha = (K_ZZ + 1e-6 I)^-1 mu, k_rr on the first rows."""
    rng = np.random.default_rng(seed)
    z = pool[rng.choice(len(pool), m, replace=False)]
    kzz = gauss(z, z, sigma) + 1e-6 * np.eye(m)
    mu = gauss(z, pool, sigma).mean(1)
    alpha = np.linalg.solve(kzz, mu)
    first = pool[:krr_n]
    k_rr = float(gauss(first, first, sigma).mean())
    return {
        "Z": torch.from_numpy(z).float(),
        "alpha": torch.from_numpy(alpha).float(),
        "sigma": float(sigma),
        "k_rr": k_rr,
        "M": int(m),
        "d_in": int(pool.shape[1]),
    }


def save_nystrom(path: Path, pool: np.ndarray, m: int, *, sigma_scale: float = 1.0, pool_path: str = "") -> dict:
    sigma = sigma_scale * median_sigma(pool)
    bundle = nystrom_dict(pool, m, sigma)
    bundle.update(sigma_scale=float(sigma_scale), pool_path=pool_path or f"data/fid_stats/pools/{path.stem}.pt")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(bundle, path)
    return bundle


def save_joint(path: Path, img: np.ndarray, tau: np.ndarray, m: int, *, s_txt: float = 1.0) -> dict:
    """A joint bundle over [phi | beta tau] with sigma_img = 0.25 x median (already scaled in the file)."""
    sigma_img = 0.25 * median_sigma(img)
    beta = sigma_img / s_txt
    feats = np.concatenate([img, beta * tau], axis=1)
    bundle = nystrom_dict(feats, m, sigma_img)
    bundle.update(
        sigma_scale=0.25, s_txt=float(s_txt), beta=float(beta), d_img=int(img.shape[1]), d_txt=int(tau.shape[1])
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(bundle, path)
    return bundle


def rff_dict(train: np.ndarray, w: np.ndarray, b: np.ndarray, sigma: float, mean_rows: int = 50000) -> dict:
    big_d = w.shape[1]
    phi = math.sqrt(2.0 / big_d) * np.cos(train[:mean_rows].astype(np.float64) @ w + b)
    return {
        "W": torch.from_numpy(w).float(),
        "b": torch.from_numpy(b).float(),
        "mu_r": torch.from_numpy(phi.mean(0)).float(),
        "sigma": float(sigma),
        "D": int(big_d),
        "d_in": int(train.shape[1]),
        "seed": 99999,
    }


def save(path: Path, obj: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path


def pool_dict(features: np.ndarray) -> dict:
    return {"features": torch.from_numpy(features).float(), "n": len(features), "d_in": int(features.shape[1])}


def sw_dict(features: np.ndarray) -> dict:
    return {"features": torch.from_numpy(features).float(), "n": len(features)}


def save_json(path: Path, obj: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path
