"""`rdm eval` end to end on tiny components: checkpoints, features re-use, image folders, real val,
report/PNG/features files, PickScore matched pairs, errors.

The eval banks' val split is drawn shifted from train (``eval_tiny.VAL_SHIFT``), and every SW_r14 /
MMD_r14 number is checked against the metric's definition computed from the written files
(``rdm_testing.eval.brute``): swapping train and val, or dividing by the wrong set, changes it."""

from __future__ import annotations

import json

import pytest
import torch

from rdm_core.artifacts import read_json, read_meta
from rdm_core.checkpoints import load_model_weights
from rdm_core.cli.main import main
from rdm_core.errors import ArtifactError, RecipeError
from rdm_core.images import save_png
from rdm_core.recipe.load import load_recipe
from rdm_eval.evaluate import evaluate
from rdm_eval.pickscore import PickScorer, class_prompts
from rdm_eval.render import render_batches
from rdm_testing.eval import brute
from rdm_testing.eval.eval_tiny import ENCODERS, TinyGenerator, bank_features
from rdm_testing.eval.tiny_clip import build_tiny_clip


def test_checkpoint_eval_writes_table_report_chart_and_features(eval_env, tmp_path, capsys):
    recipe, good, bad = eval_env
    assert main(["eval", str(recipe), "--checkpoint", str(good), "--out", str(tmp_path / "good")]) == 0
    table = capsys.readouterr().out
    assert "tiny_c*" in table and "tiny_a*" not in table and "r_SW" in table and "r_MMD" in table
    report = read_json(tmp_path / "good" / "eval.json")
    sw, mmd = report["metrics"]["sw_r14"], report["metrics"]["mmd_r14"]
    assert set(sw["per_item"]) == set(ENCODERS) and report["context"]["held_out"] == ["tiny_c"]
    refs = recipe.parent / "refs"
    brute.assert_metrics_as_defined(report["metrics"], refs, tmp_path / "good" / "features.safetensors")
    assert (tmp_path / "good" / "ratios.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    meta = read_meta(tmp_path / "good" / "features.safetensors")
    assert meta["kind"] == "eval_features" and meta["n"] == 512 and meta["held_out"] == ["tiny_c"]

    assert main(["eval", str(recipe), "--checkpoint", str(bad), "--out", str(tmp_path / "bad"), "--json"]) == 0
    shifted = json.loads(capsys.readouterr().out)["metrics"]
    brute.assert_metrics_as_defined(shifted, refs, tmp_path / "bad" / "features.safetensors")
    assert shifted["sw_r14"]["value"] > 2 * sw["value"] and shifted["mmd_r14"]["value"] > 3 * mmd["value"]

    # cached features reproduce the render's numbers exactly, without the generator
    assert (
        main(
            [
                "eval",
                str(recipe),
                "--features",
                str(tmp_path / "good" / "features.safetensors"),
                "--out",
                str(tmp_path / "again"),
                "--json",
            ]
        )
        == 0
    )
    again = json.loads(capsys.readouterr().out)["metrics"]
    assert again["sw_r14"]["value"] == sw["value"] and again["mmd_r14"]["value"] == mmd["value"]


def test_render_is_seeded_and_matched(host):
    gen = TinyGenerator()
    a = [(x.clone(), c.inputs.clone()) for x, c in render_batches(gen, 20, 8, seed=0)]
    b = [(x.clone(), c.inputs.clone()) for x, c in render_batches(gen, 20, 8, seed=0)]
    assert [x.shape[0] for x, _ in a] == [8, 8, 4]
    assert all(torch.equal(x, y) and torch.equal(lab_a, lab_b) for (x, lab_a), (y, lab_b) in zip(a, b, strict=True))


def test_real_val_and_images_inputs(eval_env, tmp_path):
    recipe_path, _good, _ = eval_env
    recipe = load_recipe(recipe_path)
    real = evaluate(recipe, real_val=True, out_dir=tmp_path / "rv")
    assert real.context["real_val_split_seed"] == 0
    # real val: a seeded half of the val bank scored against the other half as the floor
    refs = recipe_path.parent / "refs"
    for enc in ENCODERS:
        train, val = bank_features(refs, enc)
        perm = torch.randperm(len(val), generator=torch.Generator().manual_seed(0))
        half = len(val) // 2
        want = brute.sw_ratio(val[perm[:half]], val[perm[half:]], train)
        assert real.results["sw_r14"].per_item[enc] == pytest.approx(want, rel=brute.SW_REL)
    folder = tmp_path / "imgs" / "nested"
    gen = TinyGenerator()
    for k, (images, _) in enumerate(render_batches(gen, 256, 128, seed=3)):
        for i, img in enumerate(images):
            save_png(img, folder / f"{k}_{i:03d}.png")
    (folder / "notes.txt").write_text("ignored")
    out = evaluate(recipe, images=str(tmp_path / "imgs"), out_dir=tmp_path / "im")
    assert out.context["generated"]["n"] == 256
    brute.assert_metrics_as_defined(out.results, refs, tmp_path / "im" / "features.safetensors")


def test_pickscore_matched_pairs_against_a_baseline(eval_env, tmp_path):
    recipe_path, good, bad = eval_env
    clip = tmp_path / "clip"
    build_tiny_clip(clip)
    overrides = [
        f"eval.args.pickscore.model={clip}",
        f"eval.args.pickscore.processor={clip}",
        "eval.args.pickscore.num_samples=24",
        f"eval.args.pickscore.baseline={bad}",
    ]
    recipe = load_recipe(recipe_path, overrides)
    res = evaluate(recipe, checkpoint=str(good), metrics=["pickscore"], out_dir=tmp_path / "ps").results["pickscore"]
    assert res.extra["n"] == 24
    # the matched pairs scored here: the same seeded render (noise, then labels) with each weight set
    scorer, names = PickScorer(str(clip), str(clip)), class_prompts("a photo of a {}")

    def scores(checkpoint) -> torch.Tensor:
        gen = TinyGenerator()
        load_model_weights(str(checkpoint), gen.trainable_module())
        out = [scorer.score(x, [names[i] for i in c.inputs.tolist()]) for x, c in render_batches(gen, 24, 128, seed=1)]
        return torch.cat(out).double()

    mine, theirs = scores(good), scores(bad)
    assert 0 < (mine > theirs).sum() < 24  # neither side wins every pair: the rate below is informative
    assert res.per_item["win_rate"] == (mine > theirs).sum().item() / 24
    assert res.value == pytest.approx(mine.mean().item(), rel=1e-6)
    assert res.extra["baseline_mean"] == pytest.approx(theirs.mean().item(), rel=1e-6)
    # the same weights on both sides: every pair ties
    same = load_recipe(recipe_path, [*overrides[:3], f"eval.args.pickscore.baseline={good}"])
    tie = evaluate(same, checkpoint=str(good), metrics=["pickscore"], out_dir=tmp_path / "ps2").results["pickscore"]
    assert tie.extra["tie_rate"] == 1.0 and tie.per_item["win_rate"] == 0.0
    assert tie.value == pytest.approx(res.value)


def test_input_and_bank_errors(eval_env, tmp_path, capsys):
    recipe_path, _good, _ = eval_env
    recipe = load_recipe(recipe_path)
    with pytest.raises(RecipeError, match="exactly one input"):
        evaluate(recipe)
    with pytest.raises(RecipeError, match="render with the generator"):
        evaluate(recipe, real_val=True, metrics=["pickscore"])
    (tmp_path / "refs" / "eval" / "tiny_b_val.safetensors").unlink()
    with pytest.raises(ArtifactError, match="rdm reference build"):
        evaluate(recipe, real_val=True)
    assert main(["eval", str(recipe_path), "--real-val", "--metrics", "sw_r41"]) == 2
    assert "sw_r14" in capsys.readouterr().err


def test_features_from_a_battery_cache(eval_env, tmp_path):
    from rdm_core.battery import Battery
    from rdm_core.recipe.assemble import build_encoders
    from rdm_testing.eval.eval_tiny import real_images

    recipe = load_recipe(eval_env[0])
    images = real_images(256, 9)
    Battery(build_encoders(recipe, "all")).extract(images, cache_path=tmp_path / "cache.safetensors", progress=False)
    out = evaluate(recipe, features=str(tmp_path / "cache.safetensors"), metrics=["sw_r14"], out_dir=tmp_path / "bc")
    brute.assert_metrics_as_defined(
        out.results, eval_env[0].parent / "refs", tmp_path / "cache.safetensors", names=["sw_r14"]
    )
    Battery(build_encoders(recipe, "train")).extract(images, cache_path=tmp_path / "part.safetensors", progress=False)
    with pytest.raises(ArtifactError, match="no features for encoder"):
        evaluate(recipe, features=str(tmp_path / "part.safetensors"), out_dir=tmp_path / "bc2")
