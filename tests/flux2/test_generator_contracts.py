"""The diffusers generators (FLUX.2 klein, FLUX.1, Wan 2.1), tiny, against the shared contract.

Each class builds its generator from a tiny folder in the real pipeline layout, so the contract
runs the real loading code (rdm_core.testing.GeneratorContract). Training conditions come from a
small prompts file encoded in memory (what a recipe's ``generator.args.prompts`` does).
"""

from __future__ import annotations

import pytest

from rdm_core.capabilities import (
    ContextEncoder,
    GradientCheckpointing,
    PlanStatsProvider,
    PromptConditionedGenerator,
    TeacherSampler,
)
from rdm_core.testing import GeneratorContract

TEXT_TO_IMAGE = (PromptConditionedGenerator, TeacherSampler, GradientCheckpointing)


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("contract-prompts") / "prompts.txt"
    path.write_text("a red cube\ntwo dogs in the snow\na lighthouse at dusk\n")
    return str(path)


class TestKleinContract(GeneratorContract):
    registry_name = "flux2-klein"
    capabilities = (*TEXT_TO_IMAGE, ContextEncoder, PlanStatsProvider)

    @pytest.fixture
    def generator(self, klein_dir, prompts_file):
        from rdm_flux2.generator import Flux2KleinGenerator

        return Flux2KleinGenerator(
            model_dir=str(klein_dir), variant="tiny", resolution=64, vae_dtype="fp32", prompts=prompts_file
        )


class TestFlux1Contract(GeneratorContract):
    registry_name = "flux1"
    capabilities = TEXT_TO_IMAGE

    @pytest.fixture
    def generator(self, flux1_dir, prompts_file):
        from rdm_flux1.generator import Flux1Generator

        return Flux1Generator(model_dir=str(flux1_dir), variant="tiny", resolution=64, ctx_len=32, prompts=prompts_file)


class TestWanContract(GeneratorContract):
    registry_name = "wan"
    capabilities = TEXT_TO_IMAGE
    batch_size = 1

    @pytest.fixture
    def generator(self, wan_dir, prompts_file):
        from rdm_wan.generator import WanGenerator

        return WanGenerator(
            model_dir=str(wan_dir), variant="tiny", height=32, width=32, num_frames=5, ctx_len=16, prompts=prompts_file
        )
