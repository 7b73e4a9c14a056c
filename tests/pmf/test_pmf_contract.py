"""The pMF generator against the shared generator contract (rdm_core.testing.GeneratorContract)."""

from __future__ import annotations

from typing import Any, ClassVar

from rdm_core.capabilities import ClassConditionedGenerator, GradientCheckpointing, PlanStatsProvider
from rdm_core.testing import GeneratorContract
from rdm_testing.pmf import make_generator


class TestPMFContract(GeneratorContract):
    registry_name = "pmf"
    capabilities = (ClassConditionedGenerator, GradientCheckpointing, PlanStatsProvider)
    plan_stats_args: ClassVar[dict[str, Any]] = {"variant": "tiny"}

    def make_generator(self):
        return make_generator()  # the micro pMF with non-trivial random weights
