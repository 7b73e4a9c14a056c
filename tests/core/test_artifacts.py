from __future__ import annotations

import os

import pytest
import torch

from rdm_core.artifacts import (
    atomic_path,
    fingerprint_file,
    fingerprint_tensor,
    load_tensors,
    read_json,
    read_meta,
    save_tensors,
    write_json,
)
from rdm_core.checkpoints import latest_checkpoint, load_checkpoint, load_model_weights, save_checkpoint
from rdm_core.errors import ArtifactError


def test_tensors_and_meta_round_trip(tmp_path):
    t = {"a": torch.randn(3, 4), "b": torch.arange(5)}
    save_tensors(tmp_path / "x.safetensors", t, {"encoder": "clip", "n": 3})
    back, meta = load_tensors(tmp_path / "x.safetensors")
    assert torch.equal(back["a"], t["a"]) and torch.equal(back["b"], t["b"])
    assert meta["encoder"] == "clip" and meta["n"] == 3 and meta["format_version"] == 2
    assert read_meta(tmp_path / "x.safetensors") == meta
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_truncated_file_is_detected(tmp_path):
    p = tmp_path / "x.safetensors"
    save_tensors(p, {"a": torch.randn(100, 100)}, {"k": 1})
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="corrupt or truncated"):
        load_tensors(p)
    p.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ArtifactError, match="corrupt or truncated"):
        read_meta(p)
    with pytest.raises(ArtifactError, match="does not exist"):
        load_tensors(tmp_path / "missing.safetensors")


def test_atomic_write_leaves_old_file_when_interrupted(tmp_path):
    p = tmp_path / "state.json"
    write_json(p, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text('{"v": 2')
            raise RuntimeError("killed mid-write")
    assert read_json(p) == {"v": 1}
    assert sorted(os.listdir(tmp_path)) == ["state.json"]


def test_json_accepts_tensors_numpy_values_sets_and_paths(tmp_path):
    from pathlib import Path

    import numpy as np

    row = {
        "scalar": torch.tensor(2.5),
        "matrix": torch.arange(4).reshape(2, 2),
        "np_scalar": np.float32(0.5),
        "np_array": np.arange(3),
        "pair": (1, 2),
        "names": {"a"},
        "where": Path("runs/x"),
    }
    write_json(tmp_path / "row.json", row)
    assert read_json(tmp_path / "row.json") == {
        "scalar": 2.5,
        "matrix": [[0, 1], [2, 3]],
        "np_scalar": 0.5,
        "np_array": [0, 1, 2],
        "pair": [1, 2],
        "names": ["a"],
        "where": "runs/x",
    }
    with pytest.raises(TypeError, match="object is not JSON-serialisable"):
        write_json(tmp_path / "bad.json", {"x": object()})


def test_fingerprints_track_content(tmp_path):
    a = torch.arange(6.0)
    assert fingerprint_tensor(a) == fingerprint_tensor(a.clone())
    assert fingerprint_tensor(a) != fingerprint_tensor(a.reshape(2, 3))
    assert fingerprint_tensor(a) != fingerprint_tensor(a + 1)
    (tmp_path / "f").write_bytes(b"abc")
    first = fingerprint_file(tmp_path / "f")
    (tmp_path / "f").write_bytes(b"abd")
    assert fingerprint_file(tmp_path / "f") != first


def test_checkpoints_round_trip_and_keep(tmp_path):
    model = torch.nn.Linear(3, 2)
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, model.state_dict(), {"rng": torch.arange(4)}, {"lr": 0.1}, keep=2)
    assert latest_checkpoint(tmp_path).name == "step_0000003"
    assert len(list((tmp_path / "checkpoints").iterdir())) == 2
    m, _s, j = load_checkpoint(latest_checkpoint(tmp_path))
    assert torch.equal(m["weight"], model.weight) and j == {"step": 3, "lr": 0.1, "finite": True}
    fresh = torch.nn.Linear(3, 2)
    load_model_weights(tmp_path, fresh)  # a run directory resolves to its latest checkpoint
    assert torch.equal(fresh.weight, model.weight)
    with pytest.raises(ArtifactError, match="does not match"):
        load_model_weights(tmp_path, torch.nn.Linear(4, 2))


def test_seeded_init_is_stable_across_processes_and_restores_rng():
    import subprocess
    import sys

    from rdm_core.seeding import name_seed, seeded_init

    code = (
        "import torch; from rdm_core.seeding import seeded_init\n"
        "with seeded_init('encoder', 'clip', 'tiny'):\n    print(torch.nn.Linear(3, 2).weight.sum().item())"
    )
    runs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    }
    assert len(runs) == 1
    assert name_seed("a", "b") != name_seed("ab")
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    with seeded_init("x"):
        torch.rand(10)
    assert torch.equal(torch.rand(3), expected)


def test_seeded_init_with_an_explicit_seed_is_manual_seed_in_a_fork():
    from rdm_core.seeding import seeded_init

    torch.manual_seed(11)
    outside = torch.rand(2)
    torch.manual_seed(3)
    expected = torch.randn(4)  # what a builder seeded 3 draws
    torch.manual_seed(11)
    with seeded_init(seed=3):
        drawn = torch.randn(4)
    assert torch.equal(drawn, expected)
    assert torch.equal(torch.rand(2), outside)  # the caller's stream did not move
    with pytest.raises(ValueError, match="not both"):
        with seeded_init("x", seed=1):
            pass
    with pytest.raises(ValueError, match="neither"):
        with seeded_init():
            pass


def test_read_jsonl_rows_line_numbers_and_errors(tmp_path):
    from rdm_core.artifacts import read_jsonl
    from rdm_core.errors import ArtifactError, RecipeError

    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n  \n[2, 3]\n"text"\n')
    assert read_jsonl(path) == [(1, {"a": 1}), (4, [2, 3]), (5, "text")]
    path.write_text('{"a": 1}\n{"a": \n{"a": 3}\n')
    with pytest.raises(ArtifactError, match=r"rows.jsonl:2 is not valid JSON.*Fix: re-run it"):
        read_jsonl(path, fix="re-run it")
    with pytest.raises(RecipeError, match="rows.jsonl:2"):
        read_jsonl(path, error=RecipeError)
    # logs rdm appends to itself may end in a line cut by a kill
    assert read_jsonl(path, skip_invalid=True) == [(1, {"a": 1}), (3, {"a": 3})]
    with pytest.raises(ArtifactError, match="does not exist"):
        read_jsonl(tmp_path / "missing.jsonl")
