"""GenEval: official-format prompt loading, the per-sample seed rule and output layout, the
task-mean summary (0.8333, not the per-image 0.75), and the scorer interface with a scripted
detector standing in for the official external scorer."""

from __future__ import annotations

import json
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from rdm_core.errors import ArtifactError, RdmError
from rdm_eval import geneval
from rdm_eval.geneval_scoring import GenEvalMetric, OfficialScorer, make_scorer
from rdm_testing.eval.eval_tiny import TinyGenerator

# Rows in the official format (tag / include / prompt, exclude for counting); a handful written
# for the test, NOT the official prompt set.
ROWS = [
    {"tag": "single_object", "include": [{"class": "bench", "count": 1}], "prompt": "a photo of a bench"},
    {
        "tag": "two_object",
        "include": [{"class": "cat", "count": 1}, {"class": "dog", "count": 1}],
        "prompt": "a photo of a cat and a dog",
    },
    {
        "tag": "counting",
        "include": [{"class": "cup", "count": 3}],
        "exclude": [{"class": "cup", "count": 4}],
        "prompt": "a photo of three cups",
    },
]


def write_prompts(path) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return str(path)


def test_overall_is_mean_of_task_rates_not_per_image():
    rows = [{"tag": "single_object", "correct": True}] + [
        {"tag": "two_object", "correct": c} for c in (True, True, False)
    ]
    s = geneval.summarize(rows)
    assert s["overall"] == pytest.approx(0.8333, abs=1e-4)  # (1 + 2/3) / 2
    assert s["per_image"] == pytest.approx(0.75)
    assert s["tasks"] == {"single_object": 1.0, "two_object": pytest.approx(2 / 3)}
    assert s["counts"] == {"single_object": 1, "two_object": 3}
    assert set(s["missing_tasks"]) == {"counting", "colors", "position", "color_attr"}


def test_seed_rule():
    assert geneval.sample_seed(0, 0) == 46_000_000
    assert geneval.sample_seed(12, 3) == 46_001_203
    with pytest.raises(ValueError):
        geneval.sample_seed(1, 100)


def test_prompt_loader_reads_official_format_and_explains_missing_file(tmp_path):
    prompts = geneval.load_prompts(write_prompts(tmp_path / "p.jsonl"))
    assert [p.tag for p in prompts] == ["single_object", "two_object", "counting"]
    assert prompts[2].metadata["exclude"] == [{"class": "cup", "count": 4}] and prompts[1].index == 1
    report = geneval.prompt_set_report(prompts)
    assert report["n"] == 3 and report["official"] is False
    with pytest.raises(ArtifactError, match="eval.args.geneval.prompts"):
        geneval.load_prompts(tmp_path / "nope.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"tag": "colors", "prompt": "a red car"}\n')
    with pytest.raises(ArtifactError, match="include"):
        geneval.load_prompts(tmp_path / "bad.jsonl")


def test_render_layout_and_per_sample_seeds(tmp_path):
    prompts = geneval.load_prompts(write_prompts(tmp_path / "p.jsonl"))
    gen = TinyGenerator()
    out = geneval.render(gen, prompts, tmp_path / "geneval", samples_per_prompt=2)
    for pr in prompts:
        folder = out / f"{pr.index:05d}"
        assert json.loads((folder / "metadata.jsonl").read_text()) == ROWS[pr.index]
        for j in range(2):
            png = np.asarray(Image.open(folder / "samples" / f"{j:04d}.png"))
            noise = torch.randn(
                gen.noise_shape(), generator=torch.Generator().manual_seed(46_000_000 + pr.index * 100 + j)
            )
            expected = gen.generate(noise[None], gen.conditions_from_prompts([pr.prompt]))[0]
            ref = (expected.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
            assert png.dtype == np.uint8 and np.array_equal(png, ref)
    # a complete folder is not re-rendered (resume)
    stamp = (out / "00000" / "samples" / "0000.png").stat().st_mtime_ns
    geneval.render(gen, prompts, out, samples_per_prompt=2)
    assert (out / "00000" / "samples" / "0000.png").stat().st_mtime_ns == stamp


FAKE_SCORER = textwrap.dedent('''
    """Scripted detector with the official evaluate_images.py command line: marks an image correct
    when its mean brightness is above 0.5, and records the config it was given."""
    import argparse, json, os, sys
    import numpy as np
    from PIL import Image
    p = argparse.ArgumentParser()
    p.add_argument("imagedir"); p.add_argument("--outfile"); p.add_argument("--model-path")
    p.add_argument("--model-config"); p.add_argument("--options", nargs="*", default=[])
    a = p.parse_args()
    assert a.model_config and os.path.isfile(a.model_config), "detector config not passed explicitly"
    with open(a.outfile, "w") as out:
        for folder in sorted(os.listdir(a.imagedir)):
            meta = json.loads(open(os.path.join(a.imagedir, folder, "metadata.jsonl")).readline())
            for name in sorted(os.listdir(os.path.join(a.imagedir, folder, "samples"))):
                path = os.path.join(a.imagedir, folder, "samples", name)
                ok = bool(np.asarray(Image.open(path)).mean() / 255 > 0.5)
                out.write(json.dumps({"filename": path, "tag": meta["tag"], "prompt": meta["prompt"],
                                      "correct": ok, "config": a.model_config}) + "\\n")
''')


@pytest.fixture
def fake_repo(tmp_path):
    repo = tmp_path / "geneval_repo"
    (repo / "evaluation").mkdir(parents=True)
    (repo / "evaluation" / "evaluate_images.py").write_text(FAKE_SCORER)
    (tmp_path / "detector").mkdir()
    config = tmp_path / "mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco.py"
    config.write_text("# canonical config stand-in\n")
    return {"repo": str(repo), "detector_dir": str(tmp_path / "detector"), "detector_config": str(config)}


def _image_dir(root, brightness):
    """Official layout: folder i has images with the given brightness values."""
    for i, (row, values) in enumerate(zip(ROWS, brightness, strict=True)):
        folder = root / f"{i:05d}"
        (folder / "samples").mkdir(parents=True)
        (folder / "metadata.jsonl").write_text(json.dumps(row) + "\n")
        for j, v in enumerate(values):
            Image.fromarray(np.full((8, 8, 3), v, np.uint8)).save(folder / "samples" / f"{j:04d}.png")
    return root


def test_official_scorer_subprocess_and_summary(tmp_path, fake_repo):
    images = _image_dir(tmp_path / "geneval", [[200, 10], [200, 200], [10, 200]])
    scorer = OfficialScorer(python=sys.executable, **fake_repo)
    cmd = scorer.command(images, tmp_path / "r.jsonl")
    assert cmd[cmd.index("--model-config") + 1] == fake_repo["detector_config"]
    res = GenEvalMetric("official", **fake_repo).evaluate(image_dir=images)
    assert res.per_item == {"single_object": 0.5, "two_object": 1.0, "counting": 0.5}
    assert res.value == pytest.approx(2 / 3) and res.extra["per_image"] == pytest.approx(4 / 6)
    rows = geneval.read_results(res.extra["results"])
    assert all(r["config"] == fake_repo["detector_config"] for r in rows)
    # the results-file scorer reads the same file without rendering or running anything
    again = GenEvalMetric("results", results=res.extra["results"]).evaluate(image_dir=images)
    assert again.value == res.value


def test_metric_score_per_image_flags(tmp_path, fake_repo):
    metric = GenEvalMetric("official", prompts=write_prompts(tmp_path / "p.jsonl"), **fake_repo)
    images = torch.stack([torch.full((3, 8, 8), v) for v in (0.9, 0.1, 0.8)])
    assert metric.score(images, ["a photo of three cups", "a photo of a bench", "a photo of a bench"]) == [
        1.0,
        0.0,
        1.0,
    ]
    with pytest.raises(RdmError, match="not in the GenEval prompt file"):
        metric.score(images[:1], ["an unknown prompt"])


def test_scorer_errors(tmp_path, fake_repo):
    with pytest.raises(RdmError, match="scorer script"):
        OfficialScorer(str(tmp_path / "nowhere"), fake_repo["detector_dir"]).command(tmp_path, tmp_path / "r.jsonl")
    with pytest.raises(RdmError, match="unknown GenEval scorer"):
        make_scorer("nope")
    bad = dict(fake_repo)
    (tmp_path / "geneval_repo" / "evaluation" / "evaluate_images.py").write_text("import sys; sys.exit('boom')\n")
    with pytest.raises(RdmError, match="exit 1"):
        OfficialScorer(**bad).score(tmp_path, tmp_path / "r.jsonl")
    (tmp_path / "r.jsonl").write_text('{"tag": "colors"}\n')
    with pytest.raises(ArtifactError, match="'correct'"):
        geneval.read_results(tmp_path / "r.jsonl")


def test_rdm_eval_geneval_end_to_end(eval_env, tmp_path, fake_repo):
    from rdm_core.recipe.load import load_recipe
    from rdm_eval.evaluate import evaluate

    recipe_path, good, _ = eval_env
    prompts = write_prompts(tmp_path / "prompts.jsonl")
    sets = [
        f"eval.args.geneval.prompts={prompts}",
        "eval.args.geneval.samples_per_prompt=2",
        *(f"eval.args.geneval.{k}={v}" for k, v in fake_repo.items()),
    ]
    out = evaluate(load_recipe(recipe_path, sets), checkpoint=str(good), metrics=["geneval"], out_dir=tmp_path / "ev")
    res = out.results["geneval"]
    assert sorted((tmp_path / "ev" / "geneval").iterdir())[0].name == "00000"
    rows = geneval.read_results(tmp_path / "ev" / "geneval_results.jsonl")
    assert len(rows) == 6
    # the scripted detector's verdict recomputed from the rendered PNGs, then the task means by hand
    verdicts: dict[str, list[bool]] = {}
    for folder in sorted((tmp_path / "ev" / "geneval").iterdir()):
        tag = json.loads((folder / "metadata.jsonl").read_text())["tag"]
        for png in sorted((folder / "samples").glob("*.png")):
            verdicts.setdefault(tag, []).append(bool(np.asarray(Image.open(png)).mean() / 255 > 0.5))
    assert sum(len(v) for v in verdicts.values()) == 6
    tasks = {tag: sum(v) / len(v) for tag, v in verdicts.items()}
    assert res.per_item == pytest.approx(tasks, abs=0) and res.value == pytest.approx(sum(tasks.values()) / 3)
    assert res.extra["prompt_set"]["official"] is False
    # A results file scored elsewhere needs no generator input.
    again = evaluate(
        load_recipe(
            recipe_path, ["eval.args.geneval.scorer=results", f"eval.args.geneval.results={res.extra['results']}"]
        ),
        real_val=True,
        metrics=["geneval"],
        out_dir=tmp_path / "ev2",
    )
    assert again.results["geneval"].value == res.value


@pytest.mark.parametrize(
    ("metric", "sets", "needed_by"),
    [
        ("geneval", [], "GenEval (it renders the GenEval prompts)"),
        ("pickscore", ["eval.args.pickscore.prompts=prompts.txt"], "PickScore with a prompt file"),
    ],
)
def test_prompt_metrics_refuse_a_generator_without_prompt_encoding(eval_env, tmp_path, metric, sets, needed_by):
    from rdm_core.capabilities import MissingCapabilityError
    from rdm_core.recipe.load import load_recipe
    from rdm_eval.evaluate import evaluate

    recipe_path, good, _ = eval_env
    recipe = load_recipe(recipe_path, ["generator.name=tiny_class_gen", *sets])
    with pytest.raises(MissingCapabilityError) as info:
        evaluate(recipe, checkpoint=str(good), metrics=[metric], out_dir=tmp_path / "ev")
    assert str(info.value).startswith(
        f"generator 'tiny_class_gen' (ClassOnlyGenerator) cannot serve {needed_by}: it lacks "
        "conditions_from_prompts() (capability PromptConditionedGenerator). Fix: "
    )
    assert not list((tmp_path / "ev").glob("**/*.png"))  # refused before rendering


def test_metric_args_are_checked_like_rdm_validate(host, tmp_path):
    from rdm_core.errors import RecipeError
    from rdm_core.interfaces import Metric
    from rdm_core.plugins import registry

    metrics = registry("metrics")
    official = {"repo": "geneval", "detector_dir": "models"}
    for name, args in (("sw_r14", {}), ("mmd_r14", {}), ("pickscore", {}), ("geneval", official)):
        built = metrics.create(name, **args)
        assert isinstance(built, Metric) and built.name == name
    prompts = write_prompts(tmp_path / "p.jsonl")
    metrics.check_args("pickscore", {"model": "m", "num_samples": 4000, "baseline": "c", "prompts": prompts}, "eval")
    with pytest.raises(RecipeError, match=r"^eval prompts: file .*nope.jsonl does not exist"):
        metrics.check_args("pickscore", {"prompts": str(tmp_path / "nope.jsonl")}, "eval")
    # the official detector needs its repo and weights: refused when checked and when built
    with pytest.raises(RecipeError, match="'official' GenEval scorer needs repo, detector_dir"):
        metrics.check_args("geneval", {}, "eval.args.geneval")
    with pytest.raises(RecipeError, match="needs detector_dir"):
        metrics.create("geneval", repo="geneval")
    with pytest.raises(RecipeError, match="no argument 'detector'"):
        metrics.check_args("geneval", {**official, "detector": "x"}, "eval.args.geneval")
    metrics.check_args("geneval", {"scorer": "results", "results": "r.jsonl"}, "eval.args.geneval")
    metrics.check_args("sw_r14", {"num_projections": 1024, "n": 16384}, "eval")
    metrics.check_args("mmd_r14", {"features": 4096, "n": 50000, "mean_subsample": 50000}, "eval")
    with pytest.raises(RecipeError, match="num_sample"):
        metrics.check_args("pickscore", {"num_sample": 10}, "eval")
    with pytest.raises(RecipeError, match="projections"):
        metrics.check_args("sw_r14", {"projections": 10}, "eval")


def test_canonical_detector_config_is_found_through_the_scorers_mmdet(tmp_path, monkeypatch):
    from rdm_eval.geneval_scoring import CANONICAL_CONFIG, canonical_detector_config

    pkg = tmp_path / "site" / "mmdet"
    (pkg / ".mim" / "configs" / "mask2former").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    with pytest.raises(RdmError, match="no builtin"):
        canonical_detector_config(sys.executable)
    (pkg / ".mim" / "configs" / "mask2former" / CANONICAL_CONFIG).write_text("# builtin\n")
    assert canonical_detector_config(sys.executable) == pkg / ".mim" / "configs" / "mask2former" / CANONICAL_CONFIG
    monkeypatch.setenv("PYTHONPATH", "")
    with pytest.raises(RdmError, match="mmdet is not importable"):
        canonical_detector_config(sys.executable)
