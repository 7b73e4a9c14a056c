"""Regenerate docs/recipes.md from rdm_core/recipe/schema.py and the settings every installed objective
declares (tests/core/test_docs.py keeps them in sync)."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

from rdm_core.recipe import schema

HEADER = """# Recipes

A recipe is a YAML file of sections. rdm merges it into the structured schema of
`rdm_core/recipe/schema.py` in struct mode, so a misspelled key fails at once, naming the key and
the valid ones. Components are named by registry name (`rdm encoders`, `rdm plugins`); plugin
options go in `args` mappings, which `rdm validate` binds to the factory's signature without
building anything.

Every shipped recipe starts with a comment that gives the command that runs it and what it needs
(weights, references, GPUs); `rdm recipes` shows that first line.

## Inheritance and overrides

- `extends: parent.yaml` (relative to the recipe) merges the parent first; child keys win. Chains
  are followed to the root; cycles are an error. A relative `extends:` must stay inside the
  directory tree of the recipe you run (or the shipped recipes): `../../elsewhere/base.yaml` is
  refused; write the parent's absolute path to inherit from a file elsewhere knowingly.
- Command-line overrides: `rdm train RECIPE --set train.lr=1e-4 --set encoders.variant=tiny`
  (`key=value`, values parsed as YAML; list items by index, `references.filters.0.args.k=3`).
- The resolved recipe (after inheritance and overrides) is written into every run directory.

## Running a recipe: `rdm run`

```bash
rdm run RECIPE [--set key=value ...] [--stages a,b,...] [--rehearse] [--workdir DIR]
```

`rdm run` validates the recipe (`rdm validate`: names, arguments, input files; one line on the
first problem), then runs every stage the recipe declares, in this order:

| stage | when | what (the command it is) | outputs |
|---|---|---|---|
| `context` | the generator reads a context pool (`generator.args.context_pool`, klein) | `rdm context build` of `generator.args.prompts` | the pool `.npy` + `_meta.json` |
| `references` | `references.train` is set | `rdm reference build`: sources and curation filters, features, training references, eval banks, floors, tau tables | `references.dir` (and `objective.joint.text_table`) |
| `train` | always | `rdm train` (resumes from the latest checkpoint) | `<run dir>/checkpoints` |
| `generate` | always | `rdm generate` on the last checkpoint, seed 0: `train.sample_count` samples with conditions the generator draws, plus one sample per `train.sample_prompts` entry (prompt-conditioned generators; `rdm validate` refuses them otherwise); prompts recorded | `<run dir>/generated` (PNGs, `grid.png`, `samples.json`), `<run dir>/generated/prompts` (the same for `sample_prompts`) |
| `eval` | `eval.metrics` is not empty | `rdm eval` of the last checkpoint with every listed metric | `<run dir>/eval` |

Each stage is resumable (the command behind it resumes where it stopped) and is **skipped** when
its outputs are complete and match the recipe: `<run dir>/stages/<stage>.json` records the
stage's fingerprint (what of the recipe it depends on, plus the records of the stages before it)
and a signature (size, modification time) of every output file. A changed recipe value, a
re-run upstream stage, or a deleted or modified output runs the stage again. A `train` stage
never continues checkpoints written with another recipe; it stops with one line instead.
`--stages a,b` runs only those (the others count as done when their records are current).
`--workdir DIR` puts `run.output_dir`, `references.dir` and the objective's output files
(`objective.joint.text_table`) under `DIR`.

The run ends with a table (stage, status, seconds, outputs) and `<run dir>/report.json`:

```json
{"recipe": "recipes/flux2-klein-1step.yaml", "rehearse": true,
 "stages": [{"name": "references", "status": "ok", "seconds": 64.7, "outputs": ["refs/.../manifest.json"]},
            {"name": "train", "status": "skipped", "seconds": 0.0, "outputs": ["runs/.../step_0000002"]}],
 "metrics": {"sw_r14": {"value": 0.59, "per_item": {"inception": 0.91}}, "geneval": {"value": 0.5, "per_item": {}},
             "pickscore": 21.7},
 "stand_ins": {"data/flux2/coco_captions.txt": "missing here: rehearsed with 8 stand-in prompts"}}
```

`status` is `ok`, `skipped` or `failed` (a failed stage also has `error`, and ends the run);
a metric is its headline value, or `{"value", "per_item"}` when it has per-item rows.
`stand_ins` appears in rehearsals only.

### Rehearsal (`--rehearse`)

`rdm run RECIPE --rehearse` runs the same recipe file through the same stage graph, on CPU, with
every model swapped for a tiny random-weight variant of the same class and every count scaled
down, so a full-size recipe is proven wired in minutes before the GPUs are rented. It reads no
weights and needs no network. It first checks the full recipe's names and arguments (a rehearsal
never hides a missing argument), then rewrites it by these rules:

| what | rule |
|---|---|
| encoders (and the joint text tower) | `encoders.variant: tiny`, no weight files, `batch_size` <= 8 |
| generators | their own rule (`rehearsal_args`): klein and FLUX.1 tiny at 64 px (FLUX.1 32 T5 tokens), Wan tiny with 5 frames of 32x32 and 16 tokens; `teacher_steps` <= 2, VAE in fp32, no `model_dir`/`weights` |
| teacher sources | the generator's tiny arguments, `repeats` <= 2, `steps` <= 2, `count` <= 8, `batch_size` <= 8, `resolution` <= 64, `frames` = the tiny generator's |
| curation filters, `mix` | their nested sources and registry scorers by their own rules |
| PickScore | a tiny CLIP built locally (`model: tiny`, through the real loading code), `num_samples` <= 8, no baseline |
| GenEval | the official scorer's command line run on a detector **stand-in** (below), the first prompt of each of the six tasks, `samples_per_prompt` <= 2 |
| prompt files | a copy of their first 8 prompts (GenEval-format files: the first prompt of each task) in the rehearsal directory; a file that does not exist here is replaced by 8 stand-in prompts and listed in `stand_ins` (the full run needs the real one) |
| `train` | `steps` 2, `micro_batch` <= 2, `chunks` 2, `rollout` = their product, a checkpoint every step, `sample_count` <= 4, the first 2 `sample_prompts`, no `max_seconds`, no FSDP |
| `objective` | its own rule (`rehearsal_args` of the objective's class): `mmd` caps `distance.landmarks` at 16 and `distance.bandwidth_subsample` at 256, sets `balance.floor_draws` 2 and moves `joint.text_table` into the rehearsal directory |
| `references` | `batch_size` <= 8, `shard_size` 32, `eval_bank_size` 32, `resolution` <= 64 |
| `eval` | `num_samples` <= 16, `batch_size` <= 8 |
| files | `run.device: cpu`; every output (run directory, references, context pool, tau table) under `--workdir` (default `rehearse/<recipe>`) |

The real file layouts are written: the context pool, curated renders, feature shards, banks,
the GenEval folder layout (`<idx>/metadata.jsonl` + `samples/<j>.png`) and the results JSONL.

What the GenEval stand-in proves: `rdm_eval/standin/evaluation/evaluate_images.py` takes the
official scorer's command line, reads the official folder layout and writes the official
results format, which rdm reads and summarises exactly as it does the real scorer's output (one
scorer process per run, overall = mean of the task rates). It detects nothing: it marks an image
correct when its brightness is at least the median of the run. So a rehearsal proves the
arguments, files and plumbing of GenEval, never a GenEval number; the real scorer (mmdet 3.3.0,
Mask2Former weights) is only exercised by the full run. The same holds for every tiny stand-in:
numbers from a rehearsal mean nothing.

`rdm validate --rehearse RECIPE` checks the rehearsal without running it; `rdm validate RECIPE`
checks the full recipe, including that its input files (prompt sets, the GenEval scorer
checkout, image folders) exist.

## Sections and keys

Defaults are the schema's; `???` means required when the section is used.
"""

OBJECTIVE = """### `objective`

The training objective: `name` picks a registered objective (`rdm plugins`, default `mmd`);
every other key of the section belongs to that objective, which declares their schema with its
registration. They are validated exactly like the core keys (struct mode: a misspelled key fails
in one line naming the valid ones), and `rdm validate` runs the objective's own checks. A
recipe layer (or `--set objective.name=...`) that names another objective starts its settings
afresh. The settings of every installed objective are listed below.

| key | default |
|---|---|
| `name` | `'mmd'` |
"""


def _table(cls: type, *, nested_below: bool = False) -> list[str]:
    """One section's docstring and key table; dataclass-typed keys are shown inline as a dict, or
    (``nested_below``) documented in their own table after this one."""
    lines = [(inspect.getdoc(cls) or "").replace("\n", " "), "", "| key | default |", "|---|---|"]
    instance = cls()
    for key in dataclasses.fields(cls):
        value = getattr(instance, key.name)
        if dataclasses.is_dataclass(value) and nested_below:
            lines.append(f"| `{key.name}` | see below |")
            continue
        if dataclasses.is_dataclass(value):
            value = dataclasses.asdict(value)
        lines.append(f"| `{key.name}` | `{value!r}` |")
    return [*lines, ""]


def _nested(prefix: str, cls: type) -> list[str]:
    """Tables of the dataclass-typed fields of ``cls``, depth first."""
    lines: list[str] = []
    instance = cls()
    for key in dataclasses.fields(cls):
        value = getattr(instance, key.name)
        if dataclasses.is_dataclass(value):
            section = f"{prefix}.{key.name}"
            lines += [f"#### `{section}`", "", *_table(type(value), nested_below=True), *_nested(section, type(value))]
    return lines


def objective_settings() -> list[tuple[str, str, Any]]:
    """``(objective name, plugin, settings dataclass or None)`` of every installed objective."""
    from rdm_core.interfaces import ObjectiveSpec
    from rdm_core.plugins import PluginHost
    from rdm_core.recipe.objective import resolve_declared

    out = []
    for entry in PluginHost().registry("objectives").entries():
        spec = entry.spec if isinstance(entry.spec, ObjectiveSpec) else ObjectiveSpec()
        out.append((entry.name, entry.plugin, resolve_declared(spec.settings) if spec.settings else None))
    return out


def render() -> str:
    lines = [HEADER]
    for section in dataclasses.fields(schema.Recipe):
        if section.name in ("extends", "description"):
            continue
        if section.name == "objective":
            lines.append(OBJECTIVE)
            continue
        cls = type(section.default_factory())
        lines += [f"### `{section.name}`", "", *_table(cls)]
    lines += ["## Objective settings", ""]
    for name, plugin, settings in objective_settings():
        lines += [f"### `objective` with `name: {name}` (plugin `{plugin}`)", ""]
        if settings is None:
            lines += ["No settings.", ""]
            continue
        lines += _table(settings, nested_below=True) + _nested("objective", settings)
    return "\n".join(lines)


if __name__ == "__main__":
    Path(__file__).resolve().parents[1].joinpath("docs", "recipes.md").write_text(render())
