"""`rdm run RECIPE --rehearse` on the shipped full-size recipes: every stage on tiny stand-ins,
offline, then every stage skipped on a second run; a run killed mid-stage finishes with the
outputs of an uninterrupted one. The klein rehearsal is in the default suite (CI)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PICKAPIC = ROOT.parent / "shared" / "data" / "prompts" / "pickapic_test_prompts.jsonl"
KLEIN = "recipes/flux2-klein-1step.yaml"


def rdm_run(recipe: str, workdir: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "rdm_core", "run", recipe, "--rehearse", "--workdir", str(workdir), *extra]
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=full_env, timeout=1800)


def report(workdir: Path, name: str) -> dict:
    return json.loads((workdir / "runs" / name / "report.json").read_text())


def statuses(body: dict) -> dict[str, str]:
    return {s["name"]: s["status"] for s in body["stages"]}


KLEIN_SETS = ("--set", f"eval.args.pickscore.prompts={PICKAPIC}")


def test_klein_rehearsal_runs_every_stage_and_a_second_run_skips_them(tmp_path):
    done = rdm_run(KLEIN, tmp_path, *KLEIN_SETS)
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    body = report(tmp_path, "flux2-klein-1step")
    assert body["rehearse"] is True and body["recipe"] == KLEIN
    assert statuses(body) == {s: "ok" for s in ("context", "references", "train", "generate", "eval")}
    assert {"sw_r14", "geneval", "pickscore"} <= set(body["metrics"])
    assert set(body["metrics"]["geneval"]["per_item"]) == {
        "single_object",
        "two_object",
        "counting",
        "colors",
        "position",
        "color_attr",
    }
    # the real file layouts: context pool, GenEval folders, curated renders, banks
    assert (tmp_path / "data" / "qwen3_ctx_geall_g32.npy").is_file()
    geneval = tmp_path / "runs" / "flux2-klein-1step" / "eval" / "geneval"
    assert (geneval / "00000" / "metadata.jsonl").is_file() and (geneval / "00000" / "samples" / "0001.png").is_file()
    refs = tmp_path / "refs" / "flux2-klein-geall"
    assert list((refs / "curation").rglob("kept/*.png")) and list((refs / "eval").glob("dinov2_val.safetensors"))
    # the generate stage renders the recipe's sample prompts (the rehearsal keeps the first two)
    rendered = json.loads(
        (tmp_path / "runs" / "flux2-klein-1step" / "generated" / "prompts" / "samples.json").read_text()
    )
    assert [s["prompt"] for s in rendered["samples"]] == [
        "a red bicycle leaning against a blue wall",
        "two cats sleeping on a green sofa",
    ]
    # inputs absent here are named, never silently invented
    assert set(body["stand_ins"]) == {"data/flux2/geall_g32_prompts.txt", "data/flux2/coco_captions.txt"}

    again = rdm_run(KLEIN, tmp_path, *KLEIN_SETS)
    assert again.returncode == 0, again.stderr[-2000:]
    second = report(tmp_path, "flux2-klein-1step")
    assert set(statuses(second).values()) == {"skipped"} and second["metrics"] == body["metrics"]


def _outputs(workdir: Path, name: str) -> dict[str, object]:
    """What a run leaves that must not depend on being interrupted: weights, samples, metrics."""
    from safetensors.torch import load_file

    run = workdir / "runs" / name
    ckpt = sorted((run / "checkpoints").iterdir())[-1]
    weights = load_file(ckpt / "model.safetensors")
    samples = {p.name: p.read_bytes() for p in sorted((run / "generated").glob("*.png"))}
    return {"step": ckpt.name, "weights": weights, "samples": samples, "metrics": report(workdir, name)["metrics"]}


@pytest.mark.slow
def test_killed_mid_stage_and_rerun_gives_the_uninterrupted_outputs(tmp_path):
    import torch

    whole = tmp_path / "whole"
    assert rdm_run(KLEIN, whole, *KLEIN_SETS).returncode == 0
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "rdm_core", "run", KLEIN, "--rehearse", "--workdir", str(killed), *KLEIN_SETS]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first_checkpoint = killed / "runs" / "flux2-klein-1step" / "checkpoints" / "step_0000001"
    deadline = time.monotonic() + 1500
    while not first_checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)  # mid-train: after its first checkpoint
    proc.wait()
    assert not (killed / "runs" / "flux2-klein-1step" / "stages" / "train.json").exists()
    done = rdm_run(KLEIN, killed, *KLEIN_SETS)
    assert done.returncode == 0, done.stderr[-2000:]
    assert statuses(report(killed, "flux2-klein-1step"))["references"] == "skipped"
    a, b = _outputs(whole, "flux2-klein-1step"), _outputs(killed, "flux2-klein-1step")
    assert a["step"] == b["step"] and a["samples"] == b["samples"] and a["metrics"] == b["metrics"]
    assert a["weights"].keys() == b["weights"].keys()
    assert all(torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("recipe", "name"),
    [
        ("recipes/flux1-schnell-1step.yaml", "flux1-schnell-1step"),
        ("recipes/wan-t2v-1step.yaml", "wan-t2v-1step"),
        ("recipes/imagenet-irdm.yaml", "imagenet-irdm"),
    ],
)
def test_flux1_wan_and_imagenet_rehearsals(tmp_path, recipe, name):
    done = rdm_run(recipe, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    body = report(tmp_path, name)
    assert statuses(body) == {s: "ok" for s in ("references", "train", "generate", "eval")}
    assert "sw_r14" in body["metrics"]
    assert set(statuses(report(tmp_path, name)).values()) == {"ok"}
    assert set(body["stand_ins"])  # their prompt files are user data, absent here
    again = rdm_run(recipe, tmp_path)
    assert again.returncode == 0 and set(statuses(report(tmp_path, name)).values()) == {"skipped"}
