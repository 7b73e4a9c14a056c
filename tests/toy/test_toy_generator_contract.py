"""digits-mlp against the shared generator contract (rdm_core.testing.GeneratorContract)."""

from __future__ import annotations

from rdm_core.testing import GeneratorContract
from rdm_toy.generator import DigitsMLPGenerator


class TestDigitsMLPContract(GeneratorContract):
    batch_size = 4

    def make_generator(self):
        return DigitsMLPGenerator(seed=0)
