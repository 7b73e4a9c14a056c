"""``rdm run --rehearse``: the same recipe and stage graph on tiny stand-ins, scaled-down counts.

The rules (also in docs/recipes.md):

* every model becomes its tiny variant: ``encoders.variant: tiny`` (the text tower follows), and
  every component whose factory implements :class:`Rehearsable` rewrites its own arguments
  (generators: ``variant: tiny``, small resolution and frame counts; teacher sources: their
  generator's tiny arguments; PickScore: a tiny CLIP built on the spot; GenEval: a detector
  stand-in with the official folder layout and results format);
* counts: ``train.steps`` 2, ``micro_batch`` <= 2, ``chunks`` 2 (rollout = their product),
  a checkpoint every step; ``references``: ``batch_size`` <= 8, ``shard_size`` 32,
  ``eval_bank_size`` 32, ``resolution`` <= 64; ``eval.num_samples`` <= 16, ``batch_size`` <= 8;
  the objective's settings by its own rules (the ``mmd`` objective: ``distance.landmarks`` <= 16,
  ``bandwidth_subsample`` <= 256, ``balance.floor_draws`` 2, its tau table relocated);
  teacher ``repeats`` <= 2; prompt files: their first 8 prompts (GenEval-format files: the first
  prompt of every task), copied into the rehearsal directory;
* files: every output (run directory, references, context pool, tau table) goes under the
  rehearsal directory; an input prompt file that does not exist here is replaced by a stand-in
  of a few prompts, and the report lists it (the full run needs the real one);
* ``run.device: cpu``; no weights are read and nothing is downloaded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from rdm_core.errors import RecipeError
from rdm_core.prompts import PACKAGE_PREFIX
from rdm_core.recipe.assemble import plain
from rdm_core.recipe.objective import objective_name

PROMPT_ROWS = 8
STAND_IN_PROMPTS = (
    "a red cube on a wooden table",
    "a photo of a dog running on the beach",
    "two green apples and a blue cup",
    "a city street at night in the rain",
    "an astronaut riding a horse",
    "a bowl of soup with steam rising",
    "a yellow bicycle leaning against a wall",
    "a mountain lake at sunrise",
)


@runtime_checkable
class Rehearsable(Protocol):
    """A factory that knows its tiny, fast arguments for ``rdm run --rehearse``."""

    @classmethod
    def rehearsal_args(cls, args: dict[str, Any], rehearsal: Rehearsal) -> dict[str, Any]:
        """The arguments to use in a rehearsal (``args`` are the recipe's, already plain)."""
        ...


@dataclass
class Rehearsal:
    """The rehearsal directory and what the transform did (recorded in ``report.json``).

    Attributes:
        root: where every output and every rewritten input goes.
        stand_ins: input files that do not exist here, replaced by stand-ins: ``{path: note}``.
    """

    root: Path
    stand_ins: dict[str, str] = field(default_factory=dict)

    def prompts(self, path: str | None, rows: int = PROMPT_ROWS) -> str | None:
        """A copy of the first ``rows`` prompts of ``path`` (GenEval-format files: the first
        prompt of every task) in the rehearsal directory; a stand-in when ``path`` is missing."""
        from rdm_core.prompts import resolve_path

        if path is None:
            return None
        source = resolve_path(str(path))
        name = source.name if source.suffix else f"{source.name}.txt"
        out = self.root / "inputs" / name
        if not source.is_file() and str(path).startswith(PACKAGE_PREFIX):
            raise RecipeError(f"{path} is not a file shipped in that package.", "fix the pkg: path")
        if not source.is_file():
            self.stand_ins[str(path)] = f"missing here: rehearsed with {len(STAND_IN_PROMPTS)} stand-in prompts"
            out = out.with_suffix(".txt") if out.suffix != ".jsonl" else out
            lines = [json.dumps({"prompt": p}) if out.suffix == ".jsonl" else p for p in STAND_IN_PROMPTS]
        else:
            lines = _first_prompts(source, rows)
            if source.suffix == ".json":  # the first prompts, one per line
                out = out.with_suffix(".txt")
        out.parent.mkdir(parents=True, exist_ok=True)
        if not out.is_file() or out.read_text().splitlines() != lines:  # unchanged copies keep their mtime
            out.write_text("".join(f"{line}\n" for line in lines))
        return str(out)

    def output(self, path: str | None, folder: str = "data") -> str | None:
        """``path`` relocated into the rehearsal directory (same file name)."""
        if path is None:
            return None
        return str(self.root / folder / Path(str(path)).name)

    def component(self, kind: str, comp: Any) -> Any:
        """A nested ``{name, args}`` component rewritten by its factory's rules."""
        comp = plain(comp)
        if not isinstance(comp, dict) or "name" not in comp:
            return comp
        return {"name": comp["name"], "args": self.args(kind, str(comp["name"]), dict(comp.get("args") or {}))}

    def args(self, kind: str, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """``args`` of registry entry ``kind/name`` after its factory's rehearsal rules."""
        from rdm_core.plugins import registry

        factory = registry(kind).resolve(name)
        if isinstance(factory, Rehearsable):
            return dict(factory.rehearsal_args(dict(args), self))
        return args


def _first_prompts(path: Path, rows: int) -> list[str]:
    """The first ``rows`` prompts of a prompt file as lines; for GenEval rows (``tag`` + ``include``)
    the first row of every tag."""
    if path.suffix == ".jsonl":
        from rdm_core.artifacts import read_jsonl

        values = [row for _, row in read_jsonl(path, fix="write one JSON object per line", error=RecipeError)]
        if values and all(isinstance(row, dict) and "tag" in row and "include" in row for row in values):
            first: dict[str, Any] = {}
            for row in values:
                first.setdefault(str(row["tag"]), row)
            return [json.dumps(row) for row in first.values()]
        return [json.dumps(row) for row in values[:rows]]
    if path.suffix == ".json":
        from rdm_core.prompts import read_prompts

        return read_prompts(path)[:rows]
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()][:rows]


def rehearsal_recipe(recipe: Any, root: str | Path) -> tuple[Any, Rehearsal]:
    """The rehearsal of ``recipe`` (a new recipe object) and what was replaced.

    Args:
        recipe: a loaded recipe.
        root: the rehearsal directory (outputs and rewritten inputs go there).
    """
    from rdm_core.recipe.load import recipe_from_dict

    reh = Rehearsal(Path(root))
    data = plain(recipe)
    data.pop("extends", None)
    run, gen, enc, refs, tr, ev = (
        data["run"],
        data["generator"],
        data["encoders"],
        data["references"],
        data["train"],
        data["eval"],
    )
    run.update(device="cpu", output_dir=str(reh.root / "runs"))
    gen["args"] = reh.args("generators", gen["name"], dict(gen.get("args") or {}))
    gen["weights"] = None
    enc.update(variant="tiny", weights={}, batch_size=min(int(enc["batch_size"]), 8))
    settings = dict(data["objective"])
    name = objective_name(settings)
    settings.pop("name", None)
    data["objective"] = {"name": name, **reh.args("objectives", name, settings)}
    refs.update(
        dir=str(reh.root / "refs" / Path(str(refs["dir"])).name),
        batch_size=min(int(refs["batch_size"]), 8),
        shard_size=32,
        eval_bank_size=32,
        resolution=min(int(refs["resolution"]), 64),
    )
    for split in ("train", "val"):
        if refs.get(split) and refs[split].get("name") not in (None, "???"):
            refs[split] = reh.component("data_sources", refs[split])
    refs["filters"] = [reh.component("data_sources", f) for f in refs.get("filters") or []]
    micro = min(int(tr["micro_batch"]), 2)
    tr.update(
        steps=2,
        micro_batch=micro,
        chunks=2,
        rollout=2 * micro,
        checkpoint_every=1,
        keep_checkpoints=2,
        sample_every=0,
        sample_count=min(int(tr["sample_count"]), 4),
        sample_prompts=list(tr.get("sample_prompts") or [])[:2],
        log_every=1,
        max_seconds=None,
        fsdp=False,
    )
    ev.update(num_samples=min(int(ev["num_samples"]), 16), batch_size=min(int(ev["batch_size"]), 8))
    ev["args"] = {m: reh.args("metrics", m, dict(a or {})) for m, a in (ev.get("args") or {}).items()}
    for metric in ev.get("metrics") or []:  # metrics without args get their rehearsal rules too
        if metric not in ev["args"]:
            rehearsed = reh.args("metrics", metric, {})
            if rehearsed:
                ev["args"][metric] = rehearsed
    return recipe_from_dict(data), reh


@runtime_checkable
class RelocatableOutputs(Protocol):
    """A factory whose recipe settings name files the run writes (the ``mmd`` objective's tau
    table), so ``rdm run --workdir`` can move them with the core outputs."""

    @classmethod
    def relocate_outputs(cls, args: dict[str, Any], under: Callable[[Any], Any]) -> dict[str, Any]:
        """``args`` with every output path ``p`` replaced by ``under(p)``."""
        ...


def relocate_outputs(recipe: Any, workdir: Path) -> Any:
    """``recipe`` with its outputs under ``workdir``: ``run.output_dir``, ``references.dir`` and
    the objective's own output files (relative paths are taken relative to ``workdir``, absolute
    ones kept)."""
    from rdm_core.recipe.load import recipe_from_dict

    data = plain(recipe)
    data.pop("extends", None)

    def under(path: Any) -> Any:
        return path if path is None or Path(str(path)).is_absolute() else str(workdir / str(path))

    data["run"]["output_dir"] = under(data["run"]["output_dir"])
    data["references"]["dir"] = under(data["references"]["dir"])
    settings = dict(data["objective"])
    name = objective_name(settings)
    from rdm_core.plugins import registry

    if name in registry("objectives"):
        factory = registry("objectives").resolve(name)
        if isinstance(factory, RelocatableOutputs):
            settings.pop("name", None)
            data["objective"] = {"name": name, **factory.relocate_outputs(settings, under)}
    return recipe_from_dict(data)
