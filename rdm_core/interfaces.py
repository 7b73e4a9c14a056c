"""The contracts every plugin implements, in one import.

Plain protocols and frozen dataclasses: a plugin satisfies them structurally, it never has to
inherit from rdm. Each registry kind's contract lives in its own ``rdm_core/interfaces_*.py``
module; this module re-exports all of them, and the optional capabilities of
:mod:`rdm_core.capabilities`, so plugins import from ``rdm_core.interfaces`` only. Torch is
imported only for type checking so that importing this module (and therefore registering
plugins) stays cheap.
"""

from __future__ import annotations

from rdm_core import capabilities as _capabilities
from rdm_core.capabilities import *  # noqa: F403  (the optional capabilities, importable from here too)
from rdm_core.interfaces_data import ImageBatch, ImageSource, PromptSource, iter_chunks
from rdm_core.interfaces_encoders import Encoder, EncoderSpec, Precision, Preprocessing, Split, WeightSource
from rdm_core.interfaces_generators import Conditions, Generator, as_image_batch
from rdm_core.interfaces_metrics import Metric, MetricResult
from rdm_core.interfaces_objectives import Objective, ObjectiveContext, ObjectiveCost, ObjectiveSpec
from rdm_core.interfaces_references import Kernel, ReferenceSet
from rdm_core.interfaces_trainers import Trainer, TrainerOptions

__all__ = [
    # encoders
    "Encoder",
    "EncoderSpec",
    "Precision",
    "Preprocessing",
    "Split",
    "WeightSource",
    # kernels and reference sets
    "Kernel",
    "ReferenceSet",
    # generators
    "Conditions",
    "Generator",
    "as_image_batch",
    # data sources
    "ImageBatch",
    "ImageSource",
    "PromptSource",
    "iter_chunks",
    # objectives
    "Objective",
    "ObjectiveContext",
    "ObjectiveCost",
    "ObjectiveSpec",
    # trainers and metrics
    "Metric",
    "MetricResult",
    "Trainer",
    "TrainerOptions",
    # optional capabilities (rdm_core.capabilities)
    *_capabilities.__all__,
]
