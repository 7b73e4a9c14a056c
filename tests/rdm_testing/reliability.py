"""A small end-to-end digits project for the reliability tests, and a CLI runner.

Everything goes through the shipped toy plugin (digits data, ``digits-mlp`` generator, fixed
toy encoders that need no training), so each test starts from the command a user types.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

TRAIN_ENCODERS = ["digits_random", "digits_pixels"]
HELD_OUT = ["digits_gabor"]


def recipe_data(root: Path, name: str = "a", **sections: Any) -> dict[str, Any]:
    """A fast digits recipe rooted at ``root`` (runs/ and refs/ under it), with overrides."""
    recipe: dict[str, Any] = {
        "run": {"name": name, "output_dir": str(root / "runs"), "seed": 0, "device": "cpu"},
        "generator": {"name": "digits-mlp", "args": {"noise_dim": 8, "hidden": 32, "depth": 1, "resolution": 16}},
        "encoders": {"train": list(TRAIN_ENCODERS), "held_out": list(HELD_OUT), "variant": "full", "batch_size": 512},
        "references": {
            "dir": str(root / "refs"),
            "train": {"name": "digits", "args": {"split": "train", "val_fraction": 0.25, "seed": 0}},
            "val": {"name": "digits", "args": {"split": "val", "val_fraction": 0.25, "seed": 0}},
            "resolution": 16,
            "batch_size": 512,
            "shard_size": 512,
            "eval_bank_size": 256,
        },
        "objective": {
            "name": "mmd",
            "distance": {"reference": "nystrom", "kernel": "gaussian", "landmarks": 32, "bandwidth_subsample": 500},
            "balance": {"mode": "uniform", "floor_draws": 2},
        },
        "train": {
            "steps": 3,
            "rollout": 32,
            "micro_batch": 16,
            "chunks": 2,
            "lr": 1.0e-3,
            "precision": "fp32",
            "checkpoint_every": 1,
            "keep_checkpoints": 3,
            "sample_every": 0,
            "sample_count": 4,
            "log_every": 1,
        },
        "eval": {"metrics": ["sw_r14"], "num_samples": 64, "batch_size": 64, "seed": 0},
    }
    for section, values in sections.items():
        if isinstance(values, dict) and isinstance(recipe.get(section), dict):
            recipe[section].update(values)
        else:
            recipe[section] = values
    return recipe


def write_recipe(root: Path, name: str = "a", file: str | None = None, **sections: Any) -> Path:
    """Write :func:`recipe_data` to ``root/<file or name>.yaml`` and return the path."""
    path = root / f"{file or name}.yaml"
    path.write_text(yaml.safe_dump(recipe_data(root, name, **sections), sort_keys=False))
    return path


def copy_project(src: Path, dst: Path, *, with_runs: bool = True) -> None:
    """Copy a built project (refs/ and, optionally, runs/) into ``dst``: tests damage copies."""
    shutil.copytree(src / "refs", dst / "refs")
    if with_runs and (src / "runs").is_dir():
        shutil.copytree(src / "runs", dst / "runs")


def rdm(capsys: Any, *args: str) -> tuple[int, str, str]:
    """Run ``rdm ARGS`` in this process (the CLI's main); returns (exit code, stdout, stderr)."""
    from rdm_core.cli.main import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def rdm_subprocess(
    *args: str, env: dict[str, str] | None = None, prelude: str = "", timeout: int = 600
) -> subprocess.CompletedProcess:
    """Run ``rdm ARGS`` in a fresh interpreter; ``prelude`` is Python run before the CLI
    (e.g. a monkeypatch that simulates a full disk)."""
    code = f"{prelude}\nimport sys\nfrom rdm_core.cli.main import main\nraise SystemExit(main(sys.argv[1:]))\n"
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], env=full_env, capture_output=True, text=True, timeout=timeout
    )


def error_line(err: str) -> str:
    """The single ``error: ...`` line of a refused command (asserting there is exactly one and
    no traceback)."""
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def flip_byte(path: Path, offset_from_end: int = 5) -> None:
    """Flip one bit of a byte near the end of a file (inside the tensor data of a safetensors file)."""
    data = bytearray(path.read_bytes())
    data[len(data) - offset_from_end] ^= 0x10
    path.write_bytes(bytes(data))


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes (to show that nothing was lost or changed)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


class LockHolder:
    """Another process holding a run directory's write lock (as a running `rdm train` would),
    until :meth:`release` (or, with ``kill=True``, killed with SIGKILL while holding it)."""

    def __init__(self, run_dir: Path, command: str = "rdm train") -> None:
        code = (
            "import sys, time\nfrom rdm_core.run_dir import run_lock\n"
            f"with run_lock({str(run_dir)!r}, {command!r}):\n"
            "    print('locked', flush=True)\n    sys.stdin.read()\n"
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None and self.process.stdout.readline().strip() == "locked"
        self.pid = self.process.pid

    def release(self, *, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        else:
            self.process.communicate("", timeout=60)
        self.process.wait(timeout=60)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None and not stream.closed:
                stream.close()
