from __future__ import annotations

import os

import pytest
import torch

from rdm_core.artifacts import read_meta
from rdm_core.errors import ArtifactError
from rdm_toy import training
from rdm_toy.encoders import build_toy_encoder
from rdm_toy.training import build_state, cache_path, load_or_train, save_state


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", ["digits_ae", "digits_pca"])
def test_two_trainings_from_one_seed_give_identical_weights(name):
    a, b = build_state(name, seed=0), build_state(name, seed=0)
    assert _equal(a, b)
    fresh = training.new_network(name).state_dict()
    assert not _equal(a, fresh)  # the fit really changed the weights


def test_the_seed_changes_the_weights():
    assert not _equal(build_state("digits_random", seed=0), build_state("digits_random", seed=3))


def test_training_leaves_the_global_rng_alone():
    torch.manual_seed(7)
    state = torch.random.get_rng_state()
    build_state("digits_random", seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_cache_round_trip_and_reuse(tmp_path):
    state, where = load_or_train("digits_pca", 0, cache_dir=str(tmp_path))
    path = cache_path("digits_pca", 0, str(tmp_path))
    assert where == str(path) and path.exists()
    assert read_meta(path)["config"]["encoder"] == "digits_pca"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    mtime = path.stat().st_mtime_ns
    again, _ = load_or_train("digits_pca", 0, cache_dir=str(tmp_path))
    assert _equal(state, again) and path.stat().st_mtime_ns == mtime  # read, not retrained
    retrained, _ = load_or_train("digits_pca", 0, cache_dir=str(tmp_path), retrain=True)
    assert _equal(state, retrained)
    assert cache_path("digits_pca", 1, str(tmp_path)) != path  # another seed, another file


def test_cache_default_location_follows_rdm_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("RDM_CACHE", str(tmp_path))
    assert training.cache_root() == tmp_path / "toy"
    monkeypatch.delenv("RDM_CACHE")
    assert str(training.cache_root()).endswith(os.path.join(".cache", "rdm", "toy"))


def test_explicit_weights_override_the_cache(tmp_path):
    state = build_state("digits_random", seed=5)
    save_state(tmp_path / "r.safetensors", "digits_random", 5, state)
    enc = build_toy_encoder("digits_random", weights=str(tmp_path / "r.safetensors"))
    assert _equal(enc.net.state_dict(), state) and enc.source.endswith("r.safetensors")
    assert not _equal(build_toy_encoder("digits_random").net.state_dict(), state)  # default seed 0 differs


def test_weights_of_another_encoder_are_refused(tmp_path):
    save_state(tmp_path / "ae.safetensors", "digits_ae", 0, build_state("digits_random", 0))
    with pytest.raises(ArtifactError) as err:
        build_toy_encoder("digits_random", weights=str(tmp_path / "ae.safetensors"))
    assert "digits_ae" in str(err.value) and err.value.fix


def test_corrupt_cache_file_is_rebuilt(tmp_path):
    path = cache_path("digits_pca", 0, str(tmp_path))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a safetensors file")
    state, _ = load_or_train("digits_pca", 0, cache_dir=str(tmp_path))
    assert _equal(state, load_or_train("digits_pca", 0, cache_dir=str(tmp_path))[0])
    assert read_meta(path)["toy_encoder"] == "digits_pca"


def test_fits_use_only_the_train_split():
    from rdm_toy.data import DigitsSource

    x, y = training.train_images()
    train = DigitsSource(split="train")
    assert len(x) == len(train) and torch.equal(y, train.labels())
