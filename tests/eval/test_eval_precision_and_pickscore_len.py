"""Evaluation renders run under the training autocast; the PickScore render alone may change the
context length (the FLUX.2 headline's 232 tokens) and does so on a generator rebuilt with the same
weights; the klein recipe carries the paper's GenEval and PickScore protocol."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rdm_core.errors import RecipeError
from rdm_testing.eval.eval_tiny import TinyGenerator

ROOT = Path(__file__).resolve().parents[2]
PICKAPIC = ROOT.parent / "shared" / "data" / "prompts" / "pickapic_test_prompts.jsonl"


@pytest.fixture
def recorded(monkeypatch):
    """Autocast state of every generate() call and the kwargs of every TinyGenerator built."""
    seen: dict[str, list] = {"autocast": [], "built": []}
    real_init, real_generate = TinyGenerator.__init__, TinyGenerator.generate

    def init(self, **kwargs):
        seen["built"].append(kwargs)
        real_init(self, **kwargs)

    def generate(self, noise, conditions):
        seen["autocast"].append(torch.is_autocast_enabled(noise.device.type))
        return real_generate(self, noise, conditions)

    monkeypatch.setattr(TinyGenerator, "__init__", init)
    monkeypatch.setattr(TinyGenerator, "generate", generate)
    return seen


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_eval_renders_follow_train_precision(eval_env, tmp_path, recorded, precision):
    from rdm_core.recipe.load import load_recipe
    from rdm_eval.evaluate import evaluate

    recipe_path, good, _ = eval_env
    recipe = load_recipe(recipe_path, [f"train.precision={precision}", "eval.num_samples=8", "eval.batch_size=4"])
    evaluate(recipe, checkpoint=str(good), metrics=["sw_r14"], out_dir=tmp_path / "ev")
    assert recorded["autocast"] == [precision == "bf16"] * 2


def test_pickscore_render_alone_uses_its_ctx_len(eval_env, tmp_path, recorded, monkeypatch):
    from rdm_core.recipe.load import load_recipe
    from rdm_eval import evaluate as ev

    seen_weights = []
    monkeypatch.setattr(ev, "pickscore_scores", lambda gen, metric, b, d, p: seen_weights.append(gen) or torch.zeros(3))
    recipe_path, good, _ = eval_env
    sets = ["eval.args.pickscore.generator_args={ctx_len: 232}", f"eval.args.pickscore.prompts={PICKAPIC}"]
    ev.evaluate(load_recipe(recipe_path, sets), checkpoint=str(good), metrics=["pickscore"], out_dir=tmp_path / "e")
    assert [b.get("ctx_len") for b in recorded["built"]] == [None, 232]  # the checkpoint's generator, then the 232 one
    from rdm_core.checkpoints import load_model_weights

    expect = TinyGenerator()
    load_model_weights(str(good), expect.trainable_module())
    got = seen_weights[0].trainable_module().state_dict()
    assert all(torch.equal(got[k], v) for k, v in expect.trainable_module().state_dict().items())


def test_only_ctx_len_may_differ_for_the_pickscore_render(host):
    from rdm_core.plugins import registry

    with pytest.raises(RecipeError, match=r"\['resolution'\] would evaluate another generator"):
        registry("metrics").check_args("pickscore", {"generator_args": {"resolution": 256}}, "eval.args.pickscore")
    with pytest.raises(RecipeError, match="only ctx_len may differ"):
        registry("metrics").create("pickscore", generator_args={"ctx_len": 232, "variant": "tiny"})


def test_klein_recipe_evaluates_like_the_paper():
    from rdm_core.recipe.assemble import plain
    from rdm_core.recipe.load import load_recipe
    from rdm_eval.geneval import load_prompts, prompt_set_report

    r = load_recipe(ROOT / "recipes" / "flux2-klein-1step.yaml")
    assert list(r.eval.metrics) == ["sw_r14", "geneval", "pickscore"]
    args = plain(r.eval.args)
    assert args["geneval"]["samples_per_prompt"] == 4 and "prompts" not in args["geneval"]  # the shipped 553
    assert prompt_set_report(load_prompts(None))["official"] is True
    assert args["pickscore"]["generator_args"] == {"ctx_len": 232} and r.generator.args.ctx_len == 48
    assert r.references.val is not None  # SW_r14 has banks to compare against
    geneval_part = plain(r.references.train.args)["sources"][0]["args"]
    assert set(geneval_part["scorer_args"]) == {"repo", "detector_dir"}
