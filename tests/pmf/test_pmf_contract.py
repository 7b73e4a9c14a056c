"""The pMF generator against the shared generator contract (rdm_core.testing.GeneratorContract)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from rdm_core.capabilities import ClassConditionedGenerator, GradientCheckpointing, PlanStatsProvider
from rdm_core.testing import GeneratorContract


class TestPMFContract(GeneratorContract):
    capabilities = (ClassConditionedGenerator, GradientCheckpointing, PlanStatsProvider)
    plan_stats_args: ClassVar[dict[str, Any]] = {"variant": "tiny"}

    @pytest.fixture
    def generator(self, micro):
        return micro
