"""Curation renders each teacher image once (under the training autocast), scores on the recipe's device, runs a file scorer
(GenEval's detector) once per filter, resumes partial scoring, and `rdm validate` checks the
nested sources and scorer arguments of a curated pool."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from rdm_core.errors import RecipeError

TINY_PROMPTS = str(Path(__file__).resolve().parents[2] / "plugins" / "rdm_flux2" / "data" / "tiny_prompts.txt")
DEVICES: list[str] = []


@pytest.fixture
def counted_renders(monkeypatch):
    """Rows rendered by every TeacherSource, in call order."""
    from rdm_references.sources.teacher import TeacherSource

    rows: list[int] = []
    real = TeacherSource._render_frames

    def counting(self, batch_rows):
        rows.extend(batch_rows)
        return real(self, batch_rows)

    monkeypatch.setattr(TeacherSource, "_render_frames", counting)
    return rows


class Killed(Exception):
    """Stands for a process killed mid-scoring."""


def _brightness(images, captions):
    return images.mean(dim=(1, 2, 3))


class DeviceScorer:
    """A scorer class that records the device it was built for."""

    def __init__(self, device: str = "unset") -> None:
        DEVICES.append(device)

    def score(self, images, captions):
        return images.mean(dim=(1, 2, 3))


def _recipe(tmp_path, part, device="cpu"):
    from rdm_core.recipe.load import recipe_from_dict

    return recipe_from_dict(
        {
            "run": {"device": device},
            "generator": {"name": "tiny_teacher"},
            "eval": {"metrics": []},
            "encoders": {"train": ["tiny_a"], "variant": "tiny"},
            "objective": {"distance": {"landmarks": 4}},
            "references": {
                "dir": str(tmp_path / "refs"),
                "resolution": 16,
                "shard_size": 4,
                "train": {"name": "mix", "args": {"sources": [part]}},
            },
        }
    )


def _teacher(repeats=4):
    return {
        "name": "teacher",
        "args": {"generator": "tiny_teacher", "prompts": TINY_PROMPTS, "repeats": repeats, "steps": 2},
    }


def test_a_curated_build_renders_every_teacher_image_once(tmp_path, counted_renders):
    from rdm_references.pipeline import build_references
    from rdm_references.sources.teacher import TeacherSource

    part = {
        "name": "pickscore_topk",
        "args": {"k": 2, "scorer": "test_curation_once:_brightness", "source": _teacher()},
    }
    build_references(_recipe(tmp_path, part))
    n = len(TeacherSource("tiny_teacher", prompts=TINY_PROMPTS, repeats=4))
    assert sorted(counted_renders) == list(range(n))  # scored and extracted from one render each
    kept = sorted((tmp_path / "refs" / "curation" / "train" / "part0" / "pickscore_topk" / "kept").glob("*.png"))
    assert len(kept) == 2 * (n // 4)  # only the selection stays on disk
    counted_renders.clear()
    build_references(_recipe(tmp_path, part))
    assert counted_renders == []  # a re-run reads cached scores and stored renders


def test_kept_renders_and_selection_match_a_brute_force_top_k(tmp_path, counted_renders):
    from rdm_core.images import to_uint8
    from rdm_references.curation import PickScoreTopK
    from rdm_references.sources.teacher import TeacherSource

    src = TeacherSource("tiny_teacher", prompts=TINY_PROMPTS, repeats=4, steps=2, device="cpu")
    kept = PickScoreTopK(src, k=2, scorer=_brightness, batch_size=3, cache=str(tmp_path / "c" / "s.json"))
    reference = TeacherSource("tiny_teacher", prompts=TINY_PROMPTS, repeats=4, steps=2, device="cpu")
    pixels = to_uint8(reference.read(list(range(len(reference)))).images).float() / 255
    scores = pixels.mean(dim=(1, 2, 3))
    expect = []
    for p in range(len(reference) // 4):
        rows = list(range(4 * p, 4 * p + 4))
        expect += sorted(rows, key=lambda r: (-float(scores[r]), r))[:2]
    assert kept.indices == sorted(expect)
    assert torch.equal(kept.read(list(range(len(kept)))).images, pixels[sorted(expect)])


def test_partial_scores_resume_where_scoring_stopped(tmp_path, monkeypatch, counted_renders):
    from rdm_references import curation
    from rdm_references.curation import PickScoreTopK
    from rdm_references.sources.teacher import TeacherSource

    monkeypatch.setattr(curation, "SAVE_EVERY", 1)
    src = TeacherSource("tiny_teacher", prompts=TINY_PROMPTS, repeats=4, steps=2, device="cpu")
    cache = tmp_path / "s.json"
    calls = []

    def dying(images, captions):  # the third call of the first run dies
        calls.append(len(captions))
        if calls == [2, 2, 2]:
            raise Killed
        return _brightness(images, captions)

    with pytest.raises(Killed):
        PickScoreTopK(src, k=2, scorer=dying, batch_size=2, cache=str(cache))
    assert len(json.loads(cache.read_text())["scores"]) == 4
    calls.append(0)
    counted_renders.clear()
    resumed = PickScoreTopK(src, k=2, scorer=dying, batch_size=2, cache=str(cache))
    resumed.read(list(range(len(resumed))))
    assert min(counted_renders) == 4  # rows 0..3 were neither scored nor rendered again
    whole = PickScoreTopK(src, k=2, scorer=_brightness, batch_size=5)
    assert resumed.indices == whole.indices


def test_filters_in_a_mix_build_their_scorer_on_the_recipe_device(tmp_path):
    from rdm_references.build_sources import open_sources

    DEVICES.clear()
    part = {
        "name": "pickscore_topk",
        "args": {"k": 1, "scorer": "test_curation_once:DeviceScorer", "source": _teacher(repeats=2)},
    }
    open_sources(_recipe(tmp_path, part, device="cpu"), ("train",))
    assert DEVICES == ["cpu"]
    DEVICES.clear()
    part["args"]["scorer_args"] = {"device": "meta"}  # an explicit device wins
    open_sources(_recipe(tmp_path / "b", part), ("train",))
    assert DEVICES == ["meta"]


def test_pickscore_metric_as_scorer_gets_the_device():
    from rdm_references.scorers import resolve_scorer

    score = resolve_scorer("pickscore", {}, device="cuda:3")
    assert score.__self__._args["device"] == "cuda:3"  # the model is only loaded on first use


COUNTING_SCORER = textwrap.dedent(
    """
    import argparse, json, os
    import numpy as np
    from PIL import Image
    p = argparse.ArgumentParser()
    p.add_argument("imagedir"); p.add_argument("--outfile"); p.add_argument("--model-path")
    p.add_argument("--model-config"); p.add_argument("--options", nargs="*", default=[])
    a = p.parse_args()
    with open(os.path.join(a.model_path, "runs.txt"), "a") as log:
        log.write(a.imagedir + "\\n")
    with open(a.outfile, "w") as out:
        for folder in sorted(os.listdir(a.imagedir)):
            meta = json.loads(open(os.path.join(a.imagedir, folder, "metadata.jsonl")).readline())
            path = os.path.join(a.imagedir, folder, "samples", "0000.png")
            ok = bool(np.asarray(Image.open(path)).mean() / 255 > 0.5)
            out.write(json.dumps({"filename": path, "tag": meta["tag"], "correct": ok}) + "\\n")
    """
)


@pytest.fixture
def geneval_setup(tmp_path):
    repo = tmp_path / "repo"
    (repo / "evaluation").mkdir(parents=True)
    (repo / "evaluation" / "evaluate_images.py").write_text(COUNTING_SCORER)
    detector = tmp_path / "detector"
    detector.mkdir()
    config = tmp_path / "config.py"
    config.write_text("# stand-in config\n")
    rows = [
        {"tag": "single_object", "include": [{"class": "bench", "count": 1}], "prompt": "a photo of a bench"},
        {"tag": "colors", "include": [{"class": "car", "count": 1, "color": "red"}], "prompt": "a red car"},
    ]
    prompts = tmp_path / "geneval.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = {
        "repo": str(repo),
        "detector_dir": str(detector),
        "detector_config": str(config),
        "python": sys.executable,
        "prompts": str(prompts),
    }
    return args, detector / "runs.txt", prompts


def test_geneval_filter_runs_the_detector_once_and_keeps_correct_renders(tmp_path, geneval_setup, counted_renders):
    from rdm_eval.geneval_scoring import GenEvalMetric
    from rdm_references.curation import GenevalCorrect
    from rdm_references.sources.teacher import TeacherSource

    args, runs, prompts = geneval_setup
    src = TeacherSource("tiny_teacher", prompts=str(prompts), repeats=5, steps=2, device="cpu")
    kept = GenevalCorrect(
        src, scorer="geneval", scorer_args=args, max_per_prompt=2, batch_size=2, cache=str(tmp_path / "g.json")
    )
    assert len(runs.read_text().splitlines()) == 1  # one detector process for 10 renders in 5 batches
    assert sorted(counted_renders) == list(range(10))
    # the flags are those of the same detector run image by image
    metric = GenEvalMetric(**args)
    pixels = src.read(list(range(10))).images
    flags = [metric.score(pixels[i : i + 1], [src.captions([i])[0]])[0] for i in range(10)]
    expect = [r for p in range(2) for r in [r for r in range(5 * p, 5 * p + 5) if flags[r] > 0.5][:2]]
    assert kept.indices == sorted(expect)
    counted_renders.clear()
    kept.read(list(range(len(kept))))
    assert counted_renders == []  # extraction reads the renders the detector saw


def test_validate_checks_a_curated_pool_down_to_the_scorer(tmp_path, geneval_setup):
    from rdm_core.recipe.validate import validate_recipe

    args, _, prompts = geneval_setup
    teacher = {"name": "teacher", "args": {"generator": "tiny_teacher", "prompts": str(prompts), "repeats": 2}}
    part = {"name": "geneval_correct", "args": {"scorer": "geneval", "source": teacher}}
    with pytest.raises(
        RecipeError, match=r"part 0 scorer 'geneval': the 'official' GenEval scorer needs repo, detector_dir"
    ):
        validate_recipe(_recipe(tmp_path, part))
    part["args"]["scorer_args"] = {k: args[k] for k in ("repo", "detector_dir")}
    validate_recipe(_recipe(tmp_path, part))
    teacher["args"]["prompts"] = str(tmp_path / "missing.jsonl")
    with pytest.raises(RecipeError, match=r"part 0 source prompts: file .*missing.jsonl does not exist"):
        validate_recipe(_recipe(tmp_path, part))
    teacher["args"] = {"generator": "tiny_teachr", "prompts": str(prompts)}
    with pytest.raises(RecipeError, match="tiny_teachr"):
        validate_recipe(_recipe(tmp_path, part))
    part["args"] = {"scorer": "geneval", "scorer_args": {"repo": "r", "detector_dir": "d"}, "source": teacher, "k": 2}
    with pytest.raises(RecipeError, match="has no argument 'k'"):
        validate_recipe(_recipe(tmp_path, part))


def test_teacher_renders_run_under_the_training_autocast(tmp_path, monkeypatch):
    from rdm_references.build_sources import open_sources
    from rdm_testing.references import refplugin

    seen = []
    real = refplugin.TinyTeacher.teacher_sample

    def recording(self, noise, conditions, steps):
        seen.append(torch.is_autocast_enabled("cpu"))
        return real(self, noise, conditions, steps)

    monkeypatch.setattr(refplugin.TinyTeacher, "teacher_sample", recording)
    for precision in ("bf16", "fp32"):
        recipe = _recipe(tmp_path / precision, _teacher(repeats=1))
        recipe.train.precision = precision
        src = open_sources(recipe, ("train",))["train"]
        src.read([0])
        assert seen[-1] is (precision == "bf16")
