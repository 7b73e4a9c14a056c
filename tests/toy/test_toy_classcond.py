"""The class-conditional digits twin: generator, class table, captions, class accuracy, controller plot,
and the recipe end to end (reference build, a few controller-on steps, evaluation)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rdm_core.errors import RecipeError, ShapeError
from rdm_core.interfaces import Conditions, Generator
from rdm_toy.conditional import CLASS_PROMPTS, CLASS_PROMPTS_FILE, DigitsClassCondGenerator, class_text_encoder

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "digits-classcond.yaml"


def test_generator_conditions_name_the_class_row_and_change_the_sample():
    gen = DigitsClassCondGenerator(prompts=str(CLASS_PROMPTS_FILE))
    assert isinstance(gen, Generator) and gen.num_classes == 10
    cond = gen.sample_conditions(2000, torch.Generator().manual_seed(0))
    assert torch.equal(cond.inputs, cond.caption_ids) and cond.inputs.min() == 0 and cond.inputs.max() == 9
    assert gen.trainable_module().label_embedding.num_embeddings == 11  # + the null row
    noise = torch.randn(1, 32)
    a, b = (gen.generate(noise, gen.conditions_from_classes([c])) for c in (3, 7))
    assert a.shape == (1, 3, 16, 16) and not torch.equal(a, b)
    assert gen.generate(noise, gen.conditions_from_classes([10])).shape == a.shape  # the null class
    with pytest.raises(ShapeError, match="one class id per noise row"):
        gen.generate(torch.randn(2, 32), Conditions(inputs=torch.tensor([1])))
    with pytest.raises(ShapeError, match=r"in \[0, 10\]"):
        gen.conditions_from_classes([11])


def test_weights_round_trip(tmp_path):
    gen = DigitsClassCondGenerator(seed=3)
    gen.save_weights(str(tmp_path / "w.safetensors"))
    other = DigitsClassCondGenerator(seed=4)
    other.load_weights(str(tmp_path / "w.safetensors"))
    noise, cond = torch.randn(4, 32), gen.conditions_from_classes([0, 1, 2, 3])
    assert torch.equal(gen.generate(noise, cond), other.generate(noise, cond))


def test_class_prompt_file_and_one_hot_table(tmp_path):
    assert CLASS_PROMPTS_FILE.read_text().splitlines() == list(CLASS_PROMPTS)
    bad = tmp_path / "p.txt"
    bad.write_text("the digit 1\nthe digit 0\n")
    with pytest.raises(RecipeError, match="class order"):
        DigitsClassCondGenerator(num_classes=2, prompts=str(bad))
    tau = class_text_encoder().encode(["the digit 4", "the digit 0"])
    assert torch.equal(tau, torch.eye(10)[[4, 0]])
    with pytest.raises(ShapeError, match="class prompts"):
        class_text_encoder().encode(["a cat"])


def test_digits_captions_are_the_class_prompts():
    from rdm_toy.data import digits

    src = digits("val", captions=True)
    rows = list(range(20))
    assert src.captions(rows) == [f"the digit {int(c)}" for c in src.labels(rows)]
    assert src.read(rows[:3]).captions == src.captions(rows[:3])
    assert digits("val").captions(rows) is None and digits("val").read([0]).captions is None


def test_class_accuracy_arithmetic_and_errors():
    from rdm_eval.class_accuracy import ClassAccuracy, class_ids

    metric = ClassAccuracy(classifier="rdm_toy.classifier:classify")
    res = metric.evaluate(predicted=torch.tensor([1, 2, 2, 0, 1]), labels=torch.tensor([1, 2, 1, 0, 2]))
    assert res.value == pytest.approx(3 / 5)
    assert res.per_item == {"0": 1.0, "1": 0.5, "2": 0.5}
    with pytest.raises(ShapeError, match="matched"):
        metric.evaluate(predicted=torch.tensor([1]), labels=torch.tensor([1, 2]))
    with pytest.raises(RecipeError, match="module:attr"):
        ClassAccuracy(classifier="classify")
    with pytest.raises(ShapeError, match="class-conditional"):
        class_ids(Conditions(inputs=None))


def test_controller_plot_from_a_metrics_log(tmp_path):
    from rdm_mmd.plots import save_controller_plot

    log = tmp_path / "metrics.jsonl"
    rows = [{"step": s, "raw": {"a": 2.0 / s, "b": 1.0}, "weights": {"a": 1.5, "b": 0.5}} for s in range(1, 6)]
    log.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    png = save_controller_plot(log, {"a": 0.5, "b": 0.9}, tmp_path / "controller.png")
    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "empty.jsonl").write_text("")
    assert save_controller_plot(tmp_path / "empty.jsonl", {}, tmp_path / "none.png") is None


def test_recipe_end_to_end_with_the_controller(tmp_path, monkeypatch):
    """Reference build (classes coupled, floors at N), 3 controller steps, evaluation with class accuracy."""
    from rdm_core.interfaces import TrainerOptions
    from rdm_core.recipe.load import load_recipe
    from rdm_eval.evaluate import evaluate
    from rdm_gradcache.trainer import gradcache_trainer
    from rdm_references.pipeline import build_references

    monkeypatch.chdir(ROOT)  # the recipe's class prompt file is relative to the repository root
    recipe = load_recipe(
        RECIPE,
        overrides=[
            f"run.output_dir={tmp_path}/runs",
            f"references.dir={tmp_path}/refs",
            f"objective.joint.text_table={tmp_path}/refs/class_table.safetensors",
            "train.steps=3",
            "train.log_every=1",
            "train.checkpoint_every=3",
            "train.sample_count=8",
            "objective.distance.landmarks=64",
            "eval.num_samples=200",
            "eval.args.class_accuracy.num_samples=50",
        ],
    )
    build_references(recipe)
    floors = json.loads((tmp_path / "refs" / "floors.json").read_text())
    assert floors["n"] == 448 and set(floors["floors"]) == set(recipe.encoders.train)
    summary = gradcache_trainer(recipe, TrainerOptions(show_progress=False)).run()
    run = Path(summary["run_dir"])
    assert (run / "controller.png").is_file() and (run / "loss.png").is_file()
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [1, 2, 3]
    assert logged[0]["weights"] == {e: 1.0 for e in recipe.encoders.train}  # initial weights, step 1
    later = logged[-1]["weights"]  # then the budget (4 encoders) shared by those above their floors
    assert sum(later.values()) == pytest.approx(4.0) and len(set(later.values())) > 1
    outcome = evaluate(recipe, checkpoint=str(run), metrics=["sw_r14", "class_accuracy"])
    acc = outcome.results["class_accuracy"]
    assert 0.0 <= acc.value <= 1.0 and acc.extra["n"] == 50
    assert "mean_held_out" in outcome.results["sw_r14"].extra
