"""Turning training state into safetensors + JSON and back (no pickle anywhere).

Nested state (an optimizer ``state_dict``, a controller's state, RNG states) is split into a flat
``{dotted.key: tensor}`` map for safetensors and a JSON tree in which every tensor is replaced by
a ``{"__tensor__": "dotted.key"}`` marker, so the structure round-trips exactly.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch import Tensor

TENSOR_MARK = "__tensor__"
INT_KEYS_MARK = "__int_keys__"


def split_state(obj: Any, prefix: str) -> tuple[dict[str, Tensor], Any]:
    """``(tensors, json_tree)`` for a nested structure of dicts, lists, tensors and scalars."""
    tensors: dict[str, Tensor] = {}

    def walk(node: Any, key: str) -> Any:
        if isinstance(node, Tensor):
            tensors[key] = node.detach().cpu()
            return {TENSOR_MARK: key}
        if isinstance(node, np.ndarray):
            tensors[key] = torch.from_numpy(np.ascontiguousarray(node))
            return {TENSOR_MARK: key, "numpy": True}
        if isinstance(node, dict):
            # JSON keys are strings; remember int keys (optimizer state is keyed by param index).
            int_keys = [k for k in node if isinstance(k, int)]
            out = {str(k): walk(v, f"{key}.{k}") for k, v in node.items()}
            if int_keys:
                out[INT_KEYS_MARK] = [str(k) for k in int_keys]
            return out
        if isinstance(node, (list, tuple)):
            return [walk(v, f"{key}.{i}") for i, v in enumerate(node)]
        if isinstance(node, (np.integer, np.floating)):
            return node.item()
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        raise TypeError(f"cannot checkpoint {type(node).__name__} at {key}")

    return tensors, walk(obj, prefix)


def merge_state(tree: Any, tensors: dict[str, Tensor]) -> Any:
    """Inverse of :func:`split_state`."""
    if isinstance(tree, dict):
        if TENSOR_MARK in tree:
            t = tensors[tree[TENSOR_MARK]]
            return t.numpy() if tree.get("numpy") else t
        int_keys = set(tree.get(INT_KEYS_MARK, []))
        return {
            (int(k) if k in int_keys else k): merge_state(v, tensors) for k, v in tree.items() if k != INT_KEYS_MARK
        }
    if isinstance(tree, list):
        return [merge_state(v, tensors) for v in tree]
    return tree


def capture_rng(generators: dict[str, torch.Generator]) -> dict[str, Tensor]:
    """Every RNG a step can touch, as a flat ``{key: tensor}`` map with the same keys and shapes
    on every rank (so ranks can all-gather it): torch CPU (and this rank's CUDA device), numpy,
    Python, and the dedicated generators."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state()
    state = {
        "torch_cpu": torch.get_rng_state(),
        "python.version": torch.tensor([py_version], dtype=torch.int64),
        "python.state": torch.tensor(py_state, dtype=torch.int64),
        # [has_gauss, value]: Python caches one Gaussian between random.gauss() calls
        "python.gauss": torch.tensor([0.0 if py_gauss is None else 1.0, py_gauss or 0.0], dtype=torch.float64),
        "numpy.keys": torch.from_numpy(np_keys.astype(np.int64)),
        "numpy.pos": torch.tensor([np_pos, np_has_gauss], dtype=torch.int64),
        "numpy.cached": torch.tensor([np_cached], dtype=torch.float64),
    }
    assert np_name == "MT19937"
    for name, g in generators.items():
        state[f"generator.{name}"] = g.get_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["torch_cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng(state: dict[str, Tensor], generators: dict[str, torch.Generator]) -> None:
    """Inverse of :func:`capture_rng` (the dedicated generators are restored in place)."""
    torch.set_rng_state(state["torch_cpu"].to(torch.uint8))
    has_gauss, gauss = (float(v) for v in state["python.gauss"].tolist())
    random.setstate(
        (
            int(state["python.version"][0]),
            tuple(int(v) for v in state["python.state"].tolist()),
            gauss if has_gauss else None,
        )
    )
    pos, has_gauss = (int(v) for v in state["numpy.pos"].tolist())
    np.random.set_state(
        ("MT19937", state["numpy.keys"].numpy().astype(np.uint32), pos, has_gauss, float(state["numpy.cached"][0]))
    )
    if "torch_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["torch_cuda"].to(torch.uint8))
    for name, g in generators.items():
        g.set_state(state[f"generator.{name}"].to(torch.uint8))
