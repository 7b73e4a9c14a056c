"""The toy generators against the shared generator contract (rdm_core.testing.GeneratorContract)."""

from __future__ import annotations

from rdm_core.capabilities import ClassConditionedGenerator
from rdm_core.plugins import registry
from rdm_core.testing import GeneratorContract


class TestDigitsMLPContract(GeneratorContract):
    registry_name = "digits-mlp"
    batch_size = 4

    def make_generator(self):
        return registry("generators").create("digits-mlp", seed=0)


class TestDigitsClassCondContract(GeneratorContract):
    registry_name = "digits-classcond"
    capabilities = (ClassConditionedGenerator,)
    batch_size = 4

    def make_generator(self):
        return registry("generators").create("digits-classcond", seed=0)
