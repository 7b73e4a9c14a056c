"""The toy generators against the shared generator contract (rdm_core.testing.GeneratorContract)."""

from __future__ import annotations

from rdm_core.capabilities import ClassConditionedGenerator
from rdm_core.testing import GeneratorContract
from rdm_toy.conditional import DigitsClassCondGenerator
from rdm_toy.generator import DigitsMLPGenerator


class TestDigitsMLPContract(GeneratorContract):
    batch_size = 4

    def make_generator(self):
        return DigitsMLPGenerator(seed=0)


class TestDigitsClassCondContract(GeneratorContract):
    capabilities = (ClassConditionedGenerator,)
    batch_size = 4

    def make_generator(self):
        return DigitsClassCondGenerator(seed=0)
