"""Checkpoint directories as documented in rdm_core.checkpoints: which ones count as complete and
finite, what rotation keeps, what loading verifies; and the RNG/optimizer state they carry."""

from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest
import torch

from rdm_core.checkpoints import (
    is_finite_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_model_weights,
    save_checkpoint,
)
from rdm_core.errors import ArtifactError, NonFiniteError
from rdm_core.write_failures import TEMP_SUFFIX
from rdm_gradcache.state import capture_rng, merge_state, restore_rng, split_state


def _save(run, step, *, finite=True, keep=None):
    weight = torch.full((2, 3), float(step)) if finite else torch.full((2, 3), float("nan"))
    return save_checkpoint(run, step, {"weight": weight}, {"rng": torch.arange(3) + step}, {"lr": 0.5}, keep=keep)


def test_only_complete_step_directories_are_checkpoints(tmp_path):
    _save(tmp_path, 3)
    root = tmp_path / "checkpoints"
    (root / "step_0000007").mkdir()
    (root / "step_0000007" / "state.json").write_text("{}")  # no model file: a half-copied checkpoint
    (root / "step_0000008").mkdir()
    _save(tmp_path / "other", 8).joinpath("model.safetensors").rename(root / "step_0000008" / "model.safetensors")
    (root / "step_9").mkdir()  # not the step_NNNNNNN layout
    assert [s for s, _ in list_checkpoints(tmp_path)] == [3]


def test_finiteness_recorded_in_state_json(tmp_path):
    good, bad = _save(tmp_path, 1), _save(tmp_path, 2, finite=False)
    assert is_finite_checkpoint(good) is True and is_finite_checkpoint(bad) is False
    state = json.loads((good / "state.json").read_text())
    state.pop("finite")
    state.pop("content_sha256")  # an older file: no checksum either
    old = tmp_path / "old"
    old.mkdir()
    (old / "state.json").write_text(json.dumps(state))
    assert is_finite_checkpoint(old) is True  # checkpoints from before the flag count as finite
    assert is_finite_checkpoint(tmp_path / "missing") is False


def test_rotation_keeps_the_newest_finite_checkpoint_of_a_diverged_run(tmp_path):
    for step in (1, 2, 3, 4):
        _save(tmp_path, step, finite=step <= 2, keep=1)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2, 4]  # 4 is newest, 2 the newest finite
    fresh = tmp_path / "fresh"
    for step in (1, 2, 3):
        _save(fresh, step, keep=2)
    assert [s for s, _ in list_checkpoints(fresh)] == [2, 3]


def test_save_creates_the_run_directory_and_writes_through_a_swept_temporary(tmp_path, monkeypatch):
    moves = []
    replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (moves.append((str(src), str(dst))), replace(src, dst)))
    final = _save(tmp_path / "a" / "b" / "run", 5)
    assert final.is_dir() and [s for s, _ in list_checkpoints(tmp_path / "a" / "b" / "run")] == [5]
    # the temporary carries the suffix the sweep of interrupted writes looks for
    (src, _dst), *_ = [m for m in moves if m[1] == str(final)]
    name = os.path.basename(src)
    assert name.startswith(".step_0000005.") and name.endswith(TEMP_SUFFIX)


def test_loading_verifies_every_file_against_the_checkpoint(tmp_path):
    first, second = _save(tmp_path, 1), _save(tmp_path, 2)
    model, state, meta = load_checkpoint(second)
    assert torch.equal(model["weight"], torch.full((2, 3), 2.0)) and torch.equal(state["rng"], torch.arange(3) + 2)
    assert meta == {"step": 2, "lr": 0.5, "finite": True}
    # a valid state file of ANOTHER checkpoint is refused (only the recorded content hash tells)
    (second / "state.safetensors").write_bytes((first / "state.safetensors").read_bytes())
    with pytest.raises(ArtifactError, match="is not the file this checkpoint wrote"):
        load_checkpoint(second)
    # state.json edited by hand: its checksum no longer matches
    text = (first / "state.json").read_text()
    (first / "state.json").write_text(text.replace('"lr": 0.5', '"lr": 0.25'))
    with pytest.raises(ArtifactError):
        load_checkpoint(first)


@pytest.mark.parametrize("name", ["model.safetensors", "state.safetensors"])
def test_a_damaged_tensor_file_says_to_go_back_one_checkpoint(tmp_path, name):
    ckpt = _save(tmp_path, 1)
    data = bytearray((ckpt / name).read_bytes())
    data[-1] ^= 0xFF  # flip the last byte of the tensor data, header intact
    (ckpt / name).write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="continue from the previous checkpoint"):
        load_checkpoint(ckpt)


class _Wider(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(2, 3))
        self.extra = torch.nn.Parameter(torch.zeros(4))


def test_load_model_weights_refuses_non_finite_and_honours_strict(tmp_path):
    _save(tmp_path / "run", 1)
    _save(tmp_path / "diverged", 1, finite=False)
    with pytest.raises(NonFiniteError, match="non-finite weights") as refused:
        load_model_weights(tmp_path / "diverged", _Wider(), strict=False)
    assert "this run has none" in str(refused.value)
    for step in (1, 2, 3):
        _save(tmp_path / "mixed", step, finite=step < 3)
    with pytest.raises(NonFiniteError) as refused:  # the latest (3) diverged: point at 2, the newest finite
        load_model_weights(tmp_path / "mixed", _Wider())
    assert f"e.g. {tmp_path / 'mixed' / 'checkpoints' / 'step_0000002'}" in str(refused.value)
    wider = _Wider()
    with pytest.raises(ArtifactError, match="does not match the generator"):
        load_model_weights(tmp_path / "run", wider)  # strict by default: 'extra' is missing
    load_model_weights(tmp_path / "run", wider, strict=False)
    assert torch.equal(wider.weight, torch.ones(2, 3)) and torch.equal(wider.extra, torch.zeros(4))


def test_numpy_arrays_survive_the_split_and_merge():
    obj = {"a": np.arange(6, dtype=np.float32).reshape(2, 3)[:, ::2], 3: [torch.ones(2), np.int64(4)]}
    tensors, tree = split_state(obj, "x")
    back = merge_state(json.loads(json.dumps(tree)), tensors)
    assert isinstance(back["a"], np.ndarray) and np.array_equal(back["a"], obj["a"])
    assert torch.equal(back[3][0], torch.ones(2)) and back[3][1] == 4


def test_a_cached_gaussian_of_exactly_zero_is_restored():
    version, state, _ = random.getstate()
    random.setstate((version, state, 0.0))  # Python's next gauss() returns the cached 0.0
    saved = capture_rng({})
    random.setstate((version, state, None))
    restore_rng(saved, {})
    assert random.gauss(0.0, 1.0) == 0.0
