"""Training the toy encoders on the digits train split, seeded, and caching their weights.

Each trainable encoder is fitted in seconds on CPU the first time it is needed and saved as
safetensors (atomic write) under ``$RDM_CACHE/toy`` (default ``~/.cache/rdm/toy``). The file name
carries a hash of everything that determines the weights (encoder, seed, recipe of the fit,
split), so changing any of them trains a fresh file instead of silently reusing a stale one.
Only the ``train`` split is ever used for fitting.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rdm_core.artifacts import load_tensors, save_tensors
from rdm_core.errors import ArtifactError, RecipeError
from rdm_core.seeding import seeded_init
from rdm_toy import nets
from rdm_toy.data import DigitsSource
from rdm_toy.specs import RESOLUTION, SEEDS, SPECS

TRAINING_VERSION = 3  # bump when a fit below changes, so old cache files are not reused
SPLIT = {"val_fraction": 0.25, "seed": 0}  # the split every encoder is fitted on (train part only)
DEFAULT_SEEDS = SEEDS  # the seeds the specs declare
FIT = {  # optimisation settings per trained network
    "digits_cnn": {"epochs": 20, "batch": 64, "lr": 2e-3},
    "digits_cnn_wide": {"epochs": 12, "batch": 64, "lr": 2e-3},
    "digits_ae": {"epochs": 25, "batch": 64, "lr": 3e-3},
}


def cache_root() -> Path:
    """``$RDM_CACHE/toy`` if ``RDM_CACHE`` is set, else ``~/.cache/rdm/toy``."""
    base = os.environ.get("RDM_CACHE")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "rdm") / "toy"


def new_network(name: str) -> nn.Module:
    """An untrained network of encoder ``name`` (random init from the current RNG)."""
    makers = {
        "digits_cnn": lambda: nets.SmallCNN(RESOLUTION, SPECS["digits_cnn"].dim),
        "digits_cnn_wide": lambda: nets.WideCNN(RESOLUTION, SPECS["digits_cnn_wide"].dim),
        "digits_ae": lambda: nets.ConvAutoencoder(RESOLUTION, SPECS["digits_ae"].dim),
        "digits_random": nets.RandomConv,
        "digits_pixels": nets.Pixels,
        "digits_pca": lambda: nets.WhitenedPCA(RESOLUTION * RESOLUTION, SPECS["digits_pca"].dim),
        "digits_gabor": nets.GaborBank,
    }
    if name not in makers:
        raise RecipeError(f"{name!r} is not a toy encoder.", f"use one of: {', '.join(sorted(makers))}")
    return makers[name]()


def needs_fit(name: str) -> bool:
    """Whether the encoder's weights come from a fit on data (else: fixed function or seeded init)."""
    return name in FIT or name == "digits_pca"


def config(name: str, seed: int) -> dict[str, Any]:
    """Everything the weights of ``name`` depend on (stored in the file header)."""
    return {
        "encoder": name,
        "seed": int(seed),
        "version": TRAINING_VERSION,
        "resolution": RESOLUTION,
        "split": SPLIT,
        "fit": FIT.get(name, {}),
        "torch": torch.__version__.split("+")[0],
    }


def cache_path(name: str, seed: int, root: str | os.PathLike[str] | None = None) -> Path:
    tag = hashlib.sha256(json.dumps(config(name, seed), sort_keys=True).encode()).hexdigest()[:10]
    return (Path(root).expanduser() if root else cache_root()) / f"{name}-s{seed}-{tag}.safetensors"


def train_images() -> tuple[Tensor, Tensor]:
    """Grey train-split images ``(n, 1, 16, 16)`` and labels (never the val split)."""
    src = DigitsSource(split="train", resolution=RESOLUTION, **SPLIT)
    return src.all_images()[:, :1].contiguous(), src.labels()


def _batches(n: int, batch: int, gen: torch.Generator) -> list[Tensor]:
    return list(torch.randperm(n, generator=gen).split(batch))


def _fit_classifier(net: nn.Module, x: Tensor, y: Tensor, fit: dict[str, Any], gen: torch.Generator) -> None:
    opt = torch.optim.Adam(net.parameters(), lr=fit["lr"])
    net.train()
    for _ in range(fit["epochs"]):
        for idx in _batches(len(x), fit["batch"], gen):
            xb = x[idx]
            # one-pixel random shifts: cheap augmentation that keeps the classifier robust off the data
            dx, dy = torch.randint(-1, 2, (2,), generator=gen).tolist()
            xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            loss = F.cross_entropy(net(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    net.eval()


def _fit_autoencoder(net: nn.Module, x: Tensor, fit: dict[str, Any], gen: torch.Generator) -> None:
    opt = torch.optim.Adam(net.parameters(), lr=fit["lr"])
    net.train()
    for _ in range(fit["epochs"]):
        for idx in _batches(len(x), fit["batch"], gen):
            loss = F.mse_loss(net(x[idx]), x[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    net.eval()


def build_state(name: str, seed: int) -> dict[str, Tensor]:
    """Deterministically initialise (and, if it needs one, fit) encoder ``name``; its state dict.

    The whole build runs under a forked, seeded RNG: two calls with the same seed in the same
    environment return identical tensors, and the caller's RNG state is untouched.
    """
    with seeded_init(seed=seed):
        net = new_network(name)
        gen = torch.Generator().manual_seed(seed)
        if name in ("digits_cnn", "digits_cnn_wide"):
            x, y = train_images()
            _fit_classifier(net, x, y, FIT[name], gen)
        elif name == "digits_ae":
            x, _ = train_images()
            _fit_autoencoder(net, x, FIT[name], gen)
        elif name == "digits_pca":
            x, _ = train_images()
            net.fit(x.flatten(1))  # type: ignore[operator]
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def save_state(path: str | os.PathLike[str], name: str, seed: int, state: dict[str, Tensor]) -> None:
    save_tensors(path, state, {"toy_encoder": name, "config": config(name, seed)})


def load_state(path: str | os.PathLike[str], name: str) -> dict[str, Tensor]:
    """Read a weights file and check that it belongs to encoder ``name``."""
    state, meta = load_tensors(path)
    owner = meta.get("toy_encoder")
    if owner is not None and owner != name:
        raise ArtifactError(
            f"{path} holds weights of toy encoder {owner!r}, not {name!r}.",
            f"point encoders.weights.{name} at a {name} file, or remove it to use the cache",
        )
    return state


def load_or_train(
    name: str, seed: int, *, weights: str | None = None, cache_dir: str | None = None, retrain: bool = False
) -> tuple[dict[str, Tensor], str]:
    """The state dict of encoder ``name`` and where it came from.

    Order: an explicit ``weights`` file; else the cache file (unless ``retrain``); else a fresh
    build (fit when needed), written atomically to the cache.
    """
    if weights:
        if not Path(weights).expanduser().exists():
            raise ArtifactError(
                f"weights file {weights} for {name} does not exist.",
                f"fix encoders.weights.{name}, or remove it to train/cache the encoder automatically",
            )
        return load_state(Path(weights).expanduser(), name), str(weights)
    if not needs_fit(name):
        return build_state(name, seed), "built from seed"
    path = cache_path(name, seed, cache_dir)
    if path.exists() and not retrain:
        try:
            return load_state(path, name), str(path)
        except ArtifactError:
            pass  # a corrupt cache file is rebuilt below (the write is atomic, so it is rare)
    state = build_state(name, seed)
    save_state(path, name, seed, state)
    return state, str(path)


def train_all(names: list[str] | None = None, *, cache_dir: str | None = None, retrain: bool = True) -> dict[str, str]:
    """(Re)train every trainable toy encoder (or ``names``) into the cache; name -> file."""
    from rdm_core.console import progress

    todo = [n for n in (names or list(SPECS)) if needs_fit(n)]
    done: dict[str, str] = {}
    with progress() as bar:
        task = bar.add_task("toy encoders", total=len(todo), status="")
        for name in todo:
            bar.update(task, status=name)
            _, where = load_or_train(name, DEFAULT_SEEDS.get(name, 0), cache_dir=cache_dir, retrain=retrain)
            done[name] = where
            bar.advance(task)
    return done
