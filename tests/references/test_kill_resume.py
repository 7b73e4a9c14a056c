"""A build killed with SIGKILL resumes without recomputing finished shards, and ends identical."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from rdm_core.artifacts import load_tensors, read_json
from rdm_testing import subprocess_env

BUILD = [sys.executable, "-m", "rdm_testing.references.build_script"]


def _tensor_files(root: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {str(p.relative_to(root)): load_tensors(p)[0] for p in sorted(root.rglob("*.safetensors"))}


def test_sigkill_mid_build_then_resume_matches_uninterrupted(make_recipe, tmp_path):
    from rdm_references.pipeline import build_references

    recipe, path = make_recipe("killed")
    refs = Path(recipe.references.dir)
    env = subprocess_env(REFTEST_SLEEP="0.1")
    proc = subprocess.Popen(
        [*BUILD, str(path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    shard_dir = refs / "features" / "tiny_c" / "train"
    deadline = time.time() + 90
    try:
        while time.time() < deadline and proc.poll() is None:
            if len(list(shard_dir.glob("shard_*.safetensors"))) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"the build ended before it could be killed: {proc.communicate()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    finished = {p: p.stat().st_mtime_ns for p in refs.glob("features/*/*/shard_*.safetensors")}
    assert 6 <= len(finished) < 21  # two shards for each encoder at least, not the whole build
    assert not (refs / "manifest.json").exists()
    for p in finished:  # atomic writes: whatever carries a final name is complete
        assert load_tensors(p)[0]["features"].shape[0] in (4, 8)

    counter = tmp_path / "calls.txt"
    os.environ["REFTEST_COUNTER"] = str(counter)
    try:
        report = build_references(recipe)
    finally:
        del os.environ["REFTEST_COUNTER"]
    assert not list(refs.rglob("*.tmp"))  # temporaries of the killed build were cleaned up
    for p, mtime in finished.items():
        assert p.stat().st_mtime_ns == mtime, f"{p} was recomputed"
    assert len(report.skipped_shards) == len(finished)
    assert len(report.computed_shards) == 21 - len(finished)
    batches = sum(len(range(0, 8 if (split, idx) != ("val", 1) else 4, 4)) for _, split, idx in report.computed_shards)
    assert len(counter.read_text().splitlines()) == batches  # encoders ran on pending shards only

    clean, _ = make_recipe("clean")
    build_references(clean)
    resumed, fresh = _tensor_files(refs), _tensor_files(Path(clean.references.dir))
    assert resumed.keys() == fresh.keys()
    for name in fresh:
        for key in fresh[name]:
            assert torch.equal(resumed[name][key], fresh[name][key]), f"{name}:{key} differs"
    assert read_json(refs / "floors.json") == read_json(Path(clean.references.dir) / "floors.json")


def test_parallel_encoder_subsets_share_one_directory(make_recipe):
    recipe, path = make_recipe("parallel")
    env = subprocess_env()
    procs = [
        subprocess.Popen(
            [*BUILD, str(path), subset],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for subset in ("tiny_a,tiny_c", "tiny_b")
    ]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-2000:]
    refs = Path(recipe.references.dir)
    manifest = read_json(refs / "manifest.json")
    assert sorted(manifest["encoders"]) == ["tiny_a", "tiny_b", "tiny_c"]
    assert sorted(read_json(refs / "floors.json")["floors"]) == ["tiny_a", "tiny_b"]
