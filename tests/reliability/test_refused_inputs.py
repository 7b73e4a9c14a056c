"""Item 8: inputs that used to end in a Python traceback are refused in one line (problem + fix),
before anything is written, and nothing already there is lost."""

from __future__ import annotations

import os

import pytest

from rdm_testing.reliability import error_line, rdm, rdm_subprocess, tree, write_recipe


def test_unknown_data_source_argument_at_reference_build_is_the_validate_check(project, capsys):
    bad = ("--set", "references.train.args.bogus=1")
    code, _, err = rdm(capsys, "validate", project / "a.yaml", *bad)
    assert code == 2
    validate_line = error_line(err)
    before = tree(project / "refs")
    code, _, err = rdm(capsys, "reference", "build", project / "a.yaml", *bad)
    assert code == 2
    assert error_line(err) == validate_line  # the same check, the same words
    assert "has no argument 'bogus'" in validate_line and "val_fraction" in validate_line
    assert tree(project / "refs") == before


def test_checkpoint_that_does_not_fit_the_recipe(project, capsys):
    other = ("--set", "generator.args.hidden=64")
    for command in (
        ("generate", project / "a.yaml", "--checkpoint", project / "runs" / "a", "--num", "2", "--out", project / "g"),
        ("eval", project / "a.yaml", "--checkpoint", project / "runs" / "a"),
    ):
        code, _, err = rdm(capsys, *command, *other)
        assert code == 2
        line = error_line(err)
        assert "does not match the generator" in line and "size mismatch" in line
    assert not (project / "g").exists() and not (project / "runs" / "a" / "eval").exists()


# A full disk is simulated: the safetensors writer raises ENOSPC for the file named in
# RDM_TEST_ENOSPC (after writing half of it, as a real full disk would).
ENOSPC_PRELUDE = r"""
import errno, os
import safetensors.torch as st
_save = st.save_file
def _full(tensors, filename, metadata=None):
    target = os.environ["RDM_TEST_ENOSPC"]
    if target in str(filename) or target in os.path.basename(os.path.dirname(str(filename))):
        with open(filename, "wb") as fh:
            fh.write(b"\0" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")
    return _save(tensors, filename, metadata=metadata)
st.save_file = _full
"""


def _temporaries(root):
    return [str(p) for p in root.rglob("*") if p.name.endswith(".tmp")]


def test_disk_full_while_writing_a_reference(project):
    reference = project / "refs" / "digits_random.safetensors"
    before = reference.read_bytes()
    done = rdm_subprocess(
        "reference",
        "build",
        project / "a.yaml",
        "--set",
        "objective.distance.bandwidth_scale=0.7",
        prelude=ENOSPC_PRELUDE,
        env={"RDM_TEST_ENOSPC": "digits_random.safetensors", "RDM_CACHE": os.environ["RDM_CACHE"]},
    )
    assert done.returncode == 2, done.stderr[-3000:]
    line = error_line(done.stderr)
    assert "no space left" in line and str(project / "refs") in line and "free space" in line
    assert reference.read_bytes() == before  # the previous reference survives whole
    assert _temporaries(project) == []


def test_disk_full_while_writing_a_checkpoint(project):
    recipe = write_recipe(project, name="full")
    done = rdm_subprocess(
        "train",
        recipe,
        "--no-progress",
        prelude=ENOSPC_PRELUDE.replace('os.environ["RDM_TEST_ENOSPC"]', '"step_0000002"'),
        env={"RDM_CACHE": os.environ["RDM_CACHE"]},
    )
    assert done.returncode == 2, done.stderr[-3000:]
    line = error_line(done.stderr)
    assert "no space left" in line and "checkpoints" in line
    run = project / "runs" / "full"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_0000001"]  # whole, nothing half-written
    assert _temporaries(run) == []
    from rdm_core.checkpoints import load_checkpoint

    load_checkpoint(run / "checkpoints" / "step_0000001")  # intact and verified


def test_world_size_without_master_addr(project):
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "MASTER_PORT")}
    env.update(WORLD_SIZE="2", RANK="0", LOCAL_RANK="0")
    recipe = write_recipe(project, name="ws")
    done = rdm_subprocess("train", recipe, "--no-progress", env=env)
    assert done.returncode == 2, done.stderr[-3000:]
    line = error_line(done.stderr)
    assert "WORLD_SIZE=2" in line and "MASTER_ADDR" in line and "torchrun" in line
    assert not (project / "runs" / "ws").exists()


class _Payload:
    """Unpickling this would create the marker file: proof that nothing in the file ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_pickled_weights_are_refused_inside_timm(project, capsys, tmp_path):
    import torch

    evil = tmp_path / "dinov2.pth"
    marker = tmp_path / "ran"
    torch.save({"model": _Payload(str(marker))}, evil)
    recipe = write_recipe(
        project,
        name="timm",
        encoders={"train": ["dinov2"], "held_out": [], "variant": "tiny", "weights": {"dinov2": str(evil)}},
    )
    code, _, err = rdm(capsys, "reference", "build", recipe)
    assert code == 2
    line = error_line(err)
    assert str(evil) in line and "pickled" in line and ".safetensors" in line
    assert not marker.exists()
