"""docs/examples/rdm-example-generator installs like any third-party plugin: its generator and the
recipe it ships are listed, validate, train and sample through the commands a user types."""

from __future__ import annotations

import json

from rdm_testing import REPO_ROOT

EXAMPLE = REPO_ROOT / "docs" / "examples" / "rdm-example-generator"
STRICT = {"RDM_STRICT_PLUGINS": "1"}  # the example must load without any problem
SMALL = [
    "encoders.train=[digits_pixels,digits_random]",
    "encoders.held_out=[digits_gabor]",
    "distance.landmarks=64",
    "references.eval_bank_size=256",
    "references.floor_draws=1",
    "train.steps=2",
    "train.rollout=64",
    "train.micro_batch=32",
    "train.chunks=2",
    "train.sample_count=4",
    "train.checkpoint_every=2",
]


def test_example_generator_and_its_recipe_work_end_to_end(plugin_env, tmp_path):
    plugin_env.install(EXAMPLE)
    rows = {r["name"]: r for r in json.loads(plugin_env.rdm("plugins", "--json", **STRICT).stdout)}
    assert rows["example_generator"]["status"] == "loaded" and not rows["example_generator"]["problems"]
    assert rows["example_generator"]["hooks"] == ["rdm_register_generators", "rdm_register_recipes"]
    recipes = {r["name"]: r for r in json.loads(plugin_env.rdm("recipes", "--json", **STRICT).stdout)}
    assert recipes["example-digits"]["plugin"] == "example_generator"
    gens = json.loads(plugin_env.rdm("components", "generators", "--json", **STRICT).stdout)
    assert {"example-conv", "digits-mlp"} <= {g["name"] for g in gens}

    assert "generator 'example-conv'" in plugin_env.rdm("validate", "example-digits", **STRICT).stdout

    sets = [
        a
        for o in [*SMALL, f"references.dir={tmp_path / 'refs'}", f"run.output_dir={tmp_path / 'runs'}"]
        for a in ("--set", o)
    ]
    env = {"RDM_CACHE": str(tmp_path / "cache"), **STRICT}
    plugin_env.rdm("reference", "build", "example-digits", *sets, **env)
    plugin_env.rdm("train", "example-digits", *sets, **env)
    run_dir = tmp_path / "runs" / "example-digits"
    assert (run_dir / "checkpoints" / "step_0000002" / "model.safetensors").is_file()
    for source in (["--checkpoint", str(run_dir)], ["--base"]):
        out = tmp_path / source[0].strip("-")
        plugin_env.rdm("generate", "example-digits", *source, "--num", "3", "--out", str(out), *sets, **env)
        assert len(list(out.glob("0000*.png"))) == 3
