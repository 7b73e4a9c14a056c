"""rdm_mmd: kernels, reference sets, the MMD estimator, balancing, the joint feature, and the
``mmd`` objective that combines them (registered in the ``objectives`` registry).

Importing the package is cheap (the entry point ``rdm_mmd.hooks`` imports it); the public names
below load their module (and torch) on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "GaussianKernel": "kernels",
    "IMQKernel": "kernels",
    "LaplaceKernel": "kernels",
    "MultiScaleGaussianKernel": "kernels",
    "repulsion": "estimator",
    "cross_kernel_mean": "estimator",
    "kernel_mean_constant": "estimator",
    "mmd_loss": "estimator",
    "NystromReference": "nystrom",
    "ExactReference": "exact",
    "RFFReference": "rff",
    "FrechetReference": "frechet",
    "SlicedWassersteinReference": "sliced",
    "self_normalize": "balance",
    "combine": "balance",
    "GatedLagrangianController": "balance",
    "balance_from_recipe": "balance",
    "joint_features": "joint",
    "text_bandwidth": "joint",
    "joint_beta": "joint",
    "compute_floor": "floors",
    "save_floors": "floors",
    "load_floors": "floors",
    "save_features": "features_io",
    "load_features": "features_io",
    "expected_header": "recipe_glue",
    "load_training_reference": "recipe_glue",
    "build_reference_from_recipe": "recipe_glue",
    "build_kernel": "recipe_glue",
    "MMDObjective": "objective",
    "MMDSettings": "config",
    "mmd_settings": "config",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"rdm_mmd.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'rdm_mmd' has no attribute {name!r}")
