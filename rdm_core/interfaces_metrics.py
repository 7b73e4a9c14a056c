"""The metric contract: an off-objective evaluation and its result.

Part of the plugin-facing API re-exported by :mod:`rdm_core.interfaces`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass
class MetricResult:
    """One metric's outcome: the headline ``value`` and per-item (e.g. per-encoder) values."""

    name: str
    value: float
    per_item: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Metric(Protocol):
    """An off-objective evaluation. Implementations never import training code."""

    name: str

    def evaluate(self, **inputs: Any) -> MetricResult:
        """Compute the metric from named inputs (features, renders, ...) chosen by the metric."""
        ...
