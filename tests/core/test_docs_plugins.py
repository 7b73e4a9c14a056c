"""docs/plugins.md is enough to write working plugins: its code blocks are executed.

Every block titled with a file name is one file of an example package (or a recipe); the packages
are built from those blocks alone, installed into a throwaway environment, and used through the
commands the page shows: listing, validation, a reference build, training and sampling with the
generator plugin's shipped recipe, a reference build with the encoder plugin's recipe, and the
"Testing a plugin" snippet. The blocks must equal the files in docs/examples (one source).
"""

from __future__ import annotations

import json
import re

from rdm_testing import REPO_ROOT

DOC = REPO_ROOT / "docs" / "plugins.md"
EXAMPLES = REPO_ROOT / "docs" / "examples"
BLOCK = re.compile(r"^```(\w+)(?: ([^\n]*))?\n(.*?)^```$", re.S | re.M)
STRICT = {"RDM_STRICT_PLUGINS": "1"}  # the examples must load without any problem
SMALL = [  # cheap toy encoders (no fit at first use) and tiny sizes: the demo's code path in seconds
    "encoders.train=[digits_pixels,digits_random]",
    "objective.distance.landmarks=64",
    "references.eval_bank_size=256",
    "objective.balance.floor_draws=1",
    "train.steps=2",
    "train.rollout=64",
    "train.micro_batch=32",
    "train.chunks=2",
    "train.sample_count=4",
    "train.checkpoint_every=2",
]


def blocks() -> tuple[dict[str, str], dict[str, list[str]]]:
    """``({title: text}, {"run": [scripts], "pytest": [test modules]})`` of the page."""
    files: dict[str, str] = {}
    code: dict[str, list[str]] = {"run": [], "pytest": []}
    for lang, info, text in BLOCK.findall(DOC.read_text()):
        title = re.search(r'title="([^"]+)"', info or "")
        flag = (info or "").split()[:1]
        if title:
            files[title.group(1)] = text
        elif lang == "python" and flag and flag[0] in code:
            code[flag[0]].append(text)
    return files, code


def test_doc_files_are_the_example_files():
    files, runnable = blocks()
    assert {"rdm-example-encoder/pyproject.toml", "rdm-example-generator/pyproject.toml", "color-digits.yaml"} <= set(
        files
    )
    for title, text in files.items():
        assert (EXAMPLES / title).read_text() == text, f"docs/plugins.md and docs/examples/{title} differ"
    # what a pip install leaves behind in a developer's tree (git-ignored) is not an example file
    installed = ("build", "__pycache__")
    shipped = {
        p.relative_to(EXAMPLES).as_posix()
        for p in EXAMPLES.rglob("*")
        if p.is_file() and not any(part in installed or part.endswith(".egg-info") for part in p.parts)
    }
    assert shipped <= set(files), f"files in docs/examples the page does not show: {sorted(shipped - set(files))}"
    assert len(runnable["run"]) == 1 and len(runnable["pytest"]) == 1


def _sets(*overrides: str) -> list[str]:
    return [arg for o in overrides for arg in ("--set", o)]


def test_plugins_written_from_the_docs_work_end_to_end(plugin_env, tmp_path):
    files, code = blocks()
    src = tmp_path / "from_docs"
    for title, text in files.items():
        (src / title).parent.mkdir(parents=True, exist_ok=True)
        (src / title).write_text(text)
    plugin_env.install(src / "rdm-example-encoder", src / "rdm-example-generator")

    rows = {r["name"]: r for r in json.loads(plugin_env.rdm("plugins", "--json", **STRICT).stdout)}
    for name in ("example_encoder", "example_generator"):
        assert rows[name]["status"] == "loaded" and not rows[name]["problems"], rows[name]
    assert "0 problem(s)" in plugin_env.rdm("plugins", "--check", **STRICT).stdout
    encoders = {r["name"]: r for r in json.loads(plugin_env.rdm("encoders", "--json", **STRICT).stdout)}
    assert encoders["color_stats"]["dim"] == 24 and encoders["color_stats"]["plugin"] == "example_encoder"
    recipes = {r["name"]: r for r in json.loads(plugin_env.rdm("recipes", "--json", **STRICT).stdout)}
    assert recipes["example-digits"]["plugin"] == "example_generator"
    color = src / "color-digits.yaml"
    assert plugin_env.rdm("validate", "example-digits", str(color), **STRICT).stdout.count("ok ") == 2

    env = {"RDM_CACHE": str(tmp_path / "cache"), **STRICT}
    sets = _sets(*SMALL, f"references.dir={tmp_path / 'refs'}", f"run.output_dir={tmp_path / 'runs'}")
    plugin_env.rdm("reference", "build", "example-digits", *sets, "--set", "encoders.held_out=[digits_gabor]", **env)
    plugin_env.rdm("train", "example-digits", *sets, "--set", "encoders.held_out=[digits_gabor]", **env)
    run_dir = tmp_path / "runs" / "example-digits"
    assert (run_dir / "checkpoints" / "step_0000002" / "model.safetensors").is_file()
    for source in (["--checkpoint", str(run_dir)], ["--base"]):
        out = tmp_path / source[0].strip("-")
        plugin_env.rdm("generate", "example-digits", *source, "--num", "3", "--out", str(out), *sets, **env)
        assert len(list(out.glob("0000*.png"))) == 3

    color_sets = _sets(*SMALL, f"references.dir={tmp_path / 'color_refs'}", "encoders.held_out=[color_stats]")
    plugin_env.rdm("reference", "build", str(color), *color_sets, **env)
    bank = json.loads((tmp_path / "color_refs" / "manifest.json").read_text())
    assert "color_stats" in json.dumps(bank)

    for script in code["run"]:
        plugin_env.python("-c", script, **STRICT)
    for i, module in enumerate(code["pytest"]):
        test_file = tmp_path / f"test_doc_block_{i}.py"
        test_file.write_text(module)
        done = plugin_env.python("-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file), **STRICT)
        assert " passed" in done.stdout and "failed" not in done.stdout
