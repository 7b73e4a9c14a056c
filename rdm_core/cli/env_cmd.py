"""``rdm env``: what rdm runs on (versions, device, caches, offline flags)."""

from __future__ import annotations

import argparse
import os
import platform
from importlib import metadata


def configure(parser: argparse.ArgumentParser):
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return run


PACKAGES = (
    "torch",
    "torchvision",
    "timm",
    "open_clip_torch",
    "transformers",
    "diffusers",
    "accelerate",
    "huggingface_hub",
    "safetensors",
    "pluggy",
    "omegaconf",
    "rich",
)
ENV_FLAGS = (
    "HF_HOME",
    "HF_HUB_CACHE",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "TORCH_HOME",
    "RDM_OFFLINE",
    "RDM_DISABLE_PLUGINS",
    "RDM_TRACE_PLUGINS",
    "RDM_STRICT_PLUGINS",
    "CUDA_VISIBLE_DEVICES",
)


def collect() -> dict:
    import torch

    from rdm_core import __version__
    from rdm_core.weights import cache_dir, is_offline

    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    cuda = torch.cuda.is_available()
    return {
        "rdm": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "device": {
            "cuda_available": cuda,
            "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
            "torch_cuda_build": torch.version.cuda,
            "cpu_threads": torch.get_num_threads(),
            "bf16_supported": bool(cuda and torch.cuda.is_bf16_supported()),
        },
        "caches": {"huggingface_hub": cache_dir(), "torch_hub": torch.hub.get_dir()},
        "offline": is_offline(),
        "environment": {k: os.environ.get(k) for k in ENV_FLAGS},
    }


def run(args: argparse.Namespace) -> int:
    from rich.pretty import Pretty

    from rdm_core.console import console, print_json

    info = collect()
    if args.json:
        print_json(info)
    else:
        console.print(Pretty(info))
    return 0
