"""A minimal, self-contained RDM loop on digits, used to tune the CPU demo recipe.

It deliberately shares nothing with the production trainer (no GradCache, no rdm_mmd): the
full batch of ``rollout`` samples is generated, encoded and differentiated at once, with a
Gaussian-kernel Nystrom attraction and exact repulsion written here, self-normalised per
encoder and summed. Only the neutral numerics (distances, the median bandwidth, k-means, sliced
Wasserstein) come from :mod:`rdm_core.numerics`, so a bandwidth or an SW ratio means the same
here as in ``rdm train`` and ``rdm eval``. Evaluation is a sliced-Wasserstein ratio per encoder,
``SW_2(gen, train) / SW_2(val, train)`` with shared seeded projections, so real val scores 1
(the SW_r14 protocol of ``docs/method.md``).

Run ``python -m rdm_toy.prototype --help``; the numbers it prints are the ones the recipe
``recipes/digits-cpu.yaml`` was tuned with.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rdm_core.numerics import kmeans, median_bandwidth, sliced_wasserstein_power, sq_dists, unit_directions
from rdm_toy.specs import HELD_OUT_ENCODERS, TRAIN_ENCODERS

# -- kernels and references -----------------------------------------------------------------------


def gaussian(a: Tensor, b: Tensor, sigma: float, scales: tuple[float, ...] = (1.0,)) -> Tensor:
    """Gaussian kernel; several ``scales`` give the mean of Gaussians of bandwidth ``scale * sigma``."""
    d2 = sq_dists(a, b)
    out = torch.exp(-d2 / (2.0 * (scales[0] * sigma) ** 2))
    for s in scales[1:]:
        out = out + torch.exp(-d2 / (2.0 * (s * sigma) ** 2))
    return out / len(scales) if len(scales) > 1 else out


@dataclass
class NystromRef:
    """Frozen reference of one encoder: landmarks ``z``, coefficients ``alpha``, ``k_rr``, ``sigma``."""

    z: Tensor
    alpha: Tensor
    k_rr: float
    sigma: float
    scales: tuple[float, ...] = (1.0,)

    @classmethod
    def build(
        cls,
        feats: Tensor,
        sigma: float,
        landmarks: int,
        seed: int = 0,
        jitter: float = 1e-6,
        scales: tuple[float, ...] = (1.0,),
    ) -> NystromRef:
        """``alpha = (K_ZZ + jitter I)^-1 mean_j k(Z, r_j)`` solved in float64 (docs/method.md)."""
        r = feats.double()
        z = kmeans(feats, min(landmarks, feats.shape[0]), seed=seed).double()
        kzz = gaussian(z, z, sigma, scales) + jitter * torch.eye(z.shape[0], dtype=torch.float64)
        mu = gaussian(z, r, sigma, scales).mean(1, keepdim=True)
        alpha = torch.cholesky_solve(mu, torch.linalg.cholesky(kzz)).squeeze(1)
        k_rr = float(gaussian(r, r, sigma, scales).mean())
        return cls(z.float(), alpha.float(), k_rr, sigma, tuple(scales))

    def attraction(self, g: Tensor) -> Tensor:
        """``mean_i k(g_i, Z) @ alpha`` (approximates ``mean_ij k(g_i, r_j)``)."""
        return (gaussian(g, self.z, self.sigma, self.scales) @ self.alpha).mean()

    def loss(self, g: Tensor) -> Tensor:
        """Raw MMD^2 estimate: exact biased repulsion - 2 x attraction + k_rr."""
        g = g.float()
        return gaussian(g, g, self.sigma, self.scales).mean() - 2.0 * self.attraction(g) + self.k_rr


@dataclass
class ExactRef:
    """Baseline reference: the attraction averages the kernel over every real row (no Nystrom)."""

    r: Tensor
    k_rr: float
    sigma: float
    scales: tuple[float, ...] = (1.0,)

    @classmethod
    def build(cls, feats: Tensor, sigma: float, scales: tuple[float, ...] = (1.0,)) -> ExactRef:
        r = feats.double()
        return cls(feats.float().clone(), float(gaussian(r, r, sigma, scales).mean()), sigma, tuple(scales))

    def attraction(self, g: Tensor) -> Tensor:
        return gaussian(g, self.r, self.sigma, self.scales).mean()

    def loss(self, g: Tensor) -> Tensor:
        g = g.float()
        return gaussian(g, g, self.sigma, self.scales).mean() - 2.0 * self.attraction(g) + self.k_rr


# -- evaluation ------------------------------------------------------------------------------------


def sw_ratio(gen: Tensor, train: Tensor, val: Tensor, count: int = 1024, seed: int = 0) -> float:
    """``SW_2(gen, train) / SW_2(val, train)`` in float64, all truncated to a common size, on the
    same seeded directions (the evaluation protocol's draw: chunks of 64 from one generator)."""
    n = min(gen.shape[0], train.shape[0], val.shape[0])
    directions = unit_directions(train.shape[1], count, torch.Generator().manual_seed(seed), dtype=torch.float64)
    sets = {"gen": gen[:n].double(), "val": val[:n].double()}
    power = sliced_wasserstein_power(sets, train[:n].double(), directions, p=2.0)
    return math.sqrt(float(power["gen"])) / math.sqrt(float(power["val"]))


# -- the loop --------------------------------------------------------------------------------------


@dataclass
class PrototypeConfig:
    steps: int = 300
    rollout: int = 1024
    lr: float = 2e-3
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 2.0
    schedule: str = "constant"  # constant | cosine (to lr * min_lr_ratio)
    min_lr_ratio: float = 0.0
    bandwidth_scale: float = 1.0
    landmarks: int = 256
    reference: str = "nystrom"  # nystrom | exact (baseline: attraction over the whole pool)
    scales: tuple[float, ...] = (1.0,)  # several -> multi-scale Gaussian (rdm_mmd "multiscale" kernel)
    seed: int = 0
    eval_samples: int = 1000
    eval_every: int = 0
    train_encoders: list[str] = field(default_factory=lambda: list(TRAIN_ENCODERS))
    held_out: list[str] = field(default_factory=lambda: list(HELD_OUT_ENCODERS))
    generator_args: dict[str, Any] = field(default_factory=dict)


# The settings recipes/digits-cpu.yaml uses (found with this prototype; see docs/demo.md).
TUNED = PrototypeConfig(
    steps=400,
    rollout=1024,
    lr=1e-2,
    betas=(0.9, 0.99),
    schedule="cosine",
    min_lr_ratio=0.05,
    bandwidth_scale=1.0,
    landmarks=512,
    scales=(0.25, 0.5, 1.0, 2.0),
)


def _features(enc: torch.nn.Module, images: Tensor, batch: int = 1024) -> Tensor:
    with torch.no_grad():
        return torch.cat([enc(images[i : i + batch]) for i in range(0, images.shape[0], batch)])


def evaluate(
    generator: Any,
    encoders: dict[str, torch.nn.Module],
    real: dict[str, dict[str, Tensor]],
    samples: int,
    seed: int = 1234,
) -> dict[str, float]:
    """SW ratio per encoder for ``samples`` generated images (eval noise seed fixed)."""
    images = generator.sample(samples, seed=seed)
    return {n: sw_ratio(_features(e, images), real[n]["train"], real[n]["val"]) for n, e in encoders.items()}


def run(cfg: PrototypeConfig, out_dir: str | None = None, log: Any = print) -> dict[str, Any]:
    """Train ``digits-mlp`` from its seeded init with full-batch Nystrom MMD; return the numbers."""
    from rdm_toy.classifier import class_histogram
    from rdm_toy.data import DigitsSource
    from rdm_toy.encoders import build_toy_encoder
    from rdm_toy.generator import DigitsMLPGenerator

    t0 = time.perf_counter()
    train_src, val_src = DigitsSource(split="train"), DigitsSource(split="val")
    train_img, val_img = train_src.all_images(), val_src.all_images()
    names = list(dict.fromkeys(cfg.train_encoders + cfg.held_out))
    encoders = {n: build_toy_encoder(n) for n in names}
    real = {n: {"train": _features(e, train_img), "val": _features(e, val_img)} for n, e in encoders.items()}
    refs: dict[str, NystromRef | ExactRef] = {}
    for n in cfg.train_encoders:
        sigma = median_bandwidth(real[n]["train"], cfg.bandwidth_scale, subsample=2000, seed=cfg.seed)
        refs[n] = (
            ExactRef.build(real[n]["train"], sigma, cfg.scales)
            if cfg.reference == "exact"
            else NystromRef.build(real[n]["train"], sigma, cfg.landmarks, seed=cfg.seed, scales=cfg.scales)
        )
    t_setup = time.perf_counter() - t0

    gen = DigitsMLPGenerator(seed=cfg.seed, **cfg.generator_args)
    before = evaluate(gen, encoders, real, cfg.eval_samples)
    params = list(gen.trainable_module().parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=0.0)
    noise_rng = torch.Generator().manual_seed(cfg.seed)
    history: list[dict[str, Any]] = []
    t1 = time.perf_counter()
    for step in range(1, cfg.steps + 1):
        if cfg.schedule == "cosine":
            frac = 0.5 * (1.0 + math.cos(math.pi * (step - 1) / max(cfg.steps - 1, 1)))
            for group in opt.param_groups:
                group["lr"] = cfg.lr * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * frac)
        noise = torch.randn(cfg.rollout, *gen.noise_shape(), generator=noise_rng)
        images = gen.generate(noise)
        raw = {n: refs[n].loss(encoders[n](images)) for n in cfg.train_encoders}
        total = sum(v / (v.detach().abs() + 1e-7) for v in raw.values())
        opt.zero_grad(set_to_none=True)
        total.backward()  # type: ignore[union-attr]
        norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
        opt.step()
        row: dict[str, Any] = {
            "step": step,
            "lr": opt.param_groups[0]["lr"],
            "grad_norm": norm,
            **{n: float(v.detach()) for n, v in raw.items()},
        }
        if cfg.eval_every and step % cfg.eval_every == 0:
            ratios = evaluate(gen, encoders, real, cfg.eval_samples)
            row["held_out_sw"] = sum(ratios[n] for n in cfg.held_out) / len(cfg.held_out)
            log(
                f"step {step}: held-out SW ratio {row['held_out_sw']:.3f} "
                + " ".join(f"{n}={float(v.detach()):.2e}" for n, v in raw.items())
            )
        history.append(row)
    t_train = time.perf_counter() - t1

    after = evaluate(gen, encoders, real, cfg.eval_samples)
    samples = gen.sample(cfg.eval_samples, seed=1234)
    hist = class_histogram(samples)
    val_ratio = {n: sw_ratio(real[n]["val"], real[n]["train"], real[n]["val"]) for n in names}
    result = {
        "config": asdict(cfg),
        "sw_before": before,
        "sw_after": after,
        "held_out_sw_before": sum(before[n] for n in cfg.held_out) / len(cfg.held_out),
        "held_out_sw_after": sum(after[n] for n in cfg.held_out) / len(cfg.held_out),
        "train_sw_after": sum(after[n] for n in cfg.train_encoders) / len(cfg.train_encoders),
        "val_self_check": val_ratio,
        "class_histogram": [round(float(v), 4) for v in hist],
        "seconds_setup": round(t_setup, 2),
        "seconds_train": round(t_train, 2),
        "seconds_per_step": round(t_train / max(cfg.steps, 1), 4),
        "history": history,
    }
    if out_dir:
        _save(result, samples, Path(out_dir))
        gen.save_weights(str(Path(out_dir) / "generator.safetensors"))
    return result


def _save(result: dict[str, Any], samples: Tensor, out: Path) -> None:
    from rdm_core.artifacts import atomic_path, write_json

    write_json(out / "prototype.json", result)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = samples[:100, 0].reshape(10, 10, *samples.shape[-2:]).permute(0, 2, 1, 3).reshape(10 * samples.shape[-2], -1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    axes[0].imshow(grid.numpy(), cmap="gray", vmin=0, vmax=1)
    axes[0].set_title(f"samples (held-out SW ratio {result['held_out_sw_after']:.2f})")
    axes[0].axis("off")
    steps = [h["step"] for h in result["history"]]
    for n in result["config"]["train_encoders"]:
        axes[1].semilogy(steps, [max(h[n], 1e-8) for h in result["history"]], label=n)
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("raw MMD^2")
    axes[1].legend()
    fig.tight_layout()
    with atomic_path(out / "prototype.png") as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for f in ("steps", "rollout", "landmarks", "seed", "eval_samples", "eval_every"):
        p.add_argument(f"--{f.replace('_', '-')}", type=int, default=getattr(PrototypeConfig, f))
    p.add_argument("--schedule", default="constant", choices=("constant", "cosine"))
    for f in ("lr", "bandwidth_scale", "grad_clip", "min_lr_ratio"):
        p.add_argument(f"--{f.replace('_', '-')}", type=float, default=getattr(PrototypeConfig, f))
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--beta2", type=float, default=0.95)
    p.add_argument("--scales", default="1.0", help="comma-separated bandwidth multipliers (multi-scale kernel)")
    p.add_argument("--out", default=None, help="write prototype.json and prototype.png here")
    p.add_argument("--tuned", action="store_true", help="run the recipe's tuned settings (other flags ignored)")
    a = p.parse_args(argv)
    cfg = (
        TUNED
        if a.tuned
        else PrototypeConfig(
            steps=a.steps,
            rollout=a.rollout,
            lr=a.lr,
            betas=(0.9, a.beta2),
            grad_clip=a.grad_clip,
            schedule=a.schedule,
            min_lr_ratio=a.min_lr_ratio,
            bandwidth_scale=a.bandwidth_scale,
            landmarks=a.landmarks,
            seed=a.seed,
            eval_samples=a.eval_samples,
            eval_every=a.eval_every,
            generator_args={"hidden": a.hidden, "depth": a.depth},
            scales=tuple(float(v) for v in a.scales.split(",")),
        )
    )
    res = run(cfg, a.out)
    res.pop("history")
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
