"""Shared tiny pipeline folders (klein, FLUX.1, Wan; real layouts, random weights) for the generator tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def klein_dir(tmp_path_factory):
    from rdm_flux2.tiny import save_tiny_pipeline

    return save_tiny_pipeline(tmp_path_factory.mktemp("klein") / "tiny-klein", seed=0)


@pytest.fixture(scope="session")
def klein_pipe(klein_dir):
    from diffusers import Flux2KleinPipeline

    pipe = Flux2KleinPipeline.from_pretrained(str(klein_dir), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture()
def klein(klein_dir):
    from rdm_flux2.generator import Flux2KleinGenerator

    return Flux2KleinGenerator(model_dir=str(klein_dir), variant="tiny", resolution=64, vae_dtype="fp32")


@pytest.fixture(scope="session")
def flux1_dir(tmp_path_factory):
    from rdm_flux1.tiny import save_tiny_pipeline

    return save_tiny_pipeline(tmp_path_factory.mktemp("flux1") / "tiny-flux1")


@pytest.fixture(scope="session")
def wan_dir(tmp_path_factory):
    from rdm_wan.tiny import save_tiny_pipeline

    return save_tiny_pipeline(tmp_path_factory.mktemp("wan") / "tiny-wan")
