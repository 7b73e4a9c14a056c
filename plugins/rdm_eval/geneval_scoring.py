"""GenEval scoring: a small scorer interface, the official external scorer, and the metric.

A scorer turns an image directory in the official layout into a results JSONL (one object per
image with ``tag`` and ``correct``). Built-ins:

* ``official``: runs ``djghosh13/geneval``'s ``evaluation/evaluate_images.py`` as a subprocess
  (it is not bundled: it needs mmdet 3.3.0, mmcv and the Mask2Former weights), passing the
  canonical mmdet builtin Mask2Former Swin-S config EXPLICITLY (the authors' wrapper
  left the scorer's default config in place, which shifts the colour tasks).
* ``results``: an existing results JSONL scored elsewhere.

Any other ``"module:Class"`` satisfying :class:`GenEvalScorer` can be named instead (a plugin).
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from rdm_core.errors import ArtifactError, RdmError
from rdm_core.interfaces import MetricResult

CANONICAL_CONFIG = "mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco.py"


@runtime_checkable
class GenEvalScorer(Protocol):
    """Scores an image directory (official layout) into a results JSONL and returns its path."""

    name: str

    def score(self, image_dir: Path, results: Path) -> Path: ...


def canonical_detector_config(python: str = sys.executable) -> Path:
    """The mmdet package's builtin Mask2Former Swin-S COCO-instance config, found through the
    scorer's Python (mmdet 3.x ships configs under ``mmdet/.mim/configs``)."""
    probe = "import os, mmdet; print(os.path.dirname(mmdet.__file__))"
    try:
        done = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise RdmError(
            f"mmdet is not importable by {python} (needed for the canonical GenEval detector config).",
            "install the GenEval scorer stack (mmdet==3.3.0, mmcv) in that Python, or pass "
            "eval.args.geneval.detector_config=PATH",
        ) from exc
    root = Path(done.stdout.strip().splitlines()[-1])
    for candidate in (
        root / ".mim" / "configs" / "mask2former" / CANONICAL_CONFIG,
        root.parent / "configs" / "mask2former" / CANONICAL_CONFIG,
    ):
        if candidate.is_file():
            return candidate
    raise RdmError(
        f"mmdet at {root} has no builtin {CANONICAL_CONFIG}.",
        "install mmdet==3.3.0 (the canonical build), or pass eval.args.geneval.detector_config=PATH",
    )


class OfficialScorer:
    """The official GenEval scorer as a subprocess.

    Args:
        repo: a checkout of ``djghosh13/geneval`` (its ``evaluation/evaluate_images.py`` is run).
        detector_dir: directory with the Mask2Former checkpoint (the scorer's ``--model-path``).
        detector_config: mmdet config; ``None`` -> the canonical builtin config of the installed mmdet.
        python: interpreter of the scorer's environment (mmdet/mmcv usually live apart).
        options: extra ``key=value`` strings passed as ``--options`` (e.g. ``model=NAME``).
        script: override the script path (relative to ``repo``).
    """

    name = "official"

    def __init__(
        self,
        repo: str,
        detector_dir: str,
        detector_config: str | None = None,
        python: str = sys.executable,
        options: Sequence[str] = (),
        script: str = "evaluation/evaluate_images.py",
    ) -> None:
        self.repo, self.detector_dir = Path(repo), Path(detector_dir)
        self.detector_config = detector_config
        self.python, self.options, self.script = python, list(options), script

    def command(self, image_dir: Path, results: Path) -> list[str]:
        """The exact scorer command line (recorded in the report)."""
        script = self.repo / self.script
        if not script.is_file():
            raise RdmError(
                f"GenEval scorer script {script} not found.",
                "clone github.com/djghosh13/geneval and pass eval.args.geneval.repo=PATH",
            )
        if not self.detector_dir.is_dir():
            raise RdmError(
                f"GenEval detector directory {self.detector_dir} does not exist.",
                "download the Mask2Former checkpoint with the geneval repo's download script and pass "
                "eval.args.geneval.detector_dir=PATH",
            )
        config = Path(self.detector_config) if self.detector_config else canonical_detector_config(self.python)
        if not config.is_file():
            raise RdmError(f"detector config {config} does not exist.", "pass an existing mmdet config file")
        cmd = [
            self.python,
            str(script),
            str(image_dir),
            "--outfile",
            str(results),
            "--model-path",
            str(self.detector_dir),
            "--model-config",
            str(config),
        ]
        if self.options:
            cmd += ["--options", *self.options]
        return cmd

    def score(self, image_dir: Path, results: Path) -> Path:
        cmd = self.command(image_dir, results)
        results.parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(cmd, cwd=str(self.repo), capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise RdmError(
                f"the GenEval scorer failed (exit {done.returncode}): {' | '.join(tail)}",
                "run the printed command by hand in the scorer's environment to debug it",
            )
        if not results.is_file():
            raise ArtifactError(
                f"the GenEval scorer exited 0 but wrote no {results}.", "check the scorer's --outfile handling"
            )
        return results


class ResultsFileScorer:
    """Uses a results JSONL produced elsewhere (e.g. on a machine with the detector)."""

    name = "results"

    def __init__(self, results: str | None = None) -> None:
        if not results:
            raise RdmError(
                "the 'results' GenEval scorer needs the path of a results JSONL.",
                "pass --set eval.args.geneval.results=PATH",
            )
        self.results = Path(results)

    def score(self, image_dir: Path, results: Path) -> Path:
        if not self.results.is_file():
            raise ArtifactError(
                f"GenEval results file {self.results} not found.",
                "pass eval.args.geneval.results=PATH of the official scorer's output",
            )
        return self.results


BUILTIN_SCORERS: dict[str, Any] = {"official": OfficialScorer, "results": ResultsFileScorer}


def scorer_class(name: str) -> Any:
    """The class of a built-in scorer name or a ``"module:Class"`` path."""
    from rdm_core.registry import import_object

    if name in BUILTIN_SCORERS:
        return BUILTIN_SCORERS[name]
    if ":" in name:
        try:
            return import_object(name)
        except (ImportError, AttributeError) as exc:
            raise RdmError(
                f"GenEval scorer {name!r} cannot be imported ({exc}).", "fix the module:Class path"
            ) from None
    raise RdmError(
        f"unknown GenEval scorer {name!r}.", f"use one of {', '.join(BUILTIN_SCORERS)} or a 'module:Class' path"
    )


def check_scorer_args(name: str, args: dict[str, Any], where: str = "eval.args.geneval") -> None:
    """The scorer's arguments bind to its class and none it requires is missing (nothing built or run)."""
    from rdm_core.errors import RecipeError
    from rdm_core.registry import missing_required

    cls = scorer_class(name)
    missing = missing_required(cls, args)
    if missing:
        raise RecipeError(
            f"{where}: the {name!r} GenEval scorer needs {', '.join(missing)}.",
            "set " + ", ".join(f"{where}.{m}" for m in missing) + " (see docs/evaluation.md, GenEval)",
        )
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = [k for k in args if k not in params or k == "self"]
        if unknown:
            raise RecipeError(
                f"{where}: the {name!r} GenEval scorer has no argument {unknown[0]!r}.",
                f"use one of: {', '.join(k for k in params if k != 'self')}",
            )


def make_scorer(name: str, **args: Any) -> GenEvalScorer:
    """A built-in scorer by name, or any ``"module:Class"`` implementing :class:`GenEvalScorer`."""
    cls = scorer_class(name)
    try:
        scorer = cls(**args)
    except TypeError as exc:
        raise RdmError(
            f"GenEval scorer {name!r} does not accept these arguments: {exc}.",
            "check eval.args.geneval (see docs/evaluation.md)",
        ) from exc
    if not isinstance(scorer, GenEvalScorer):
        raise RdmError(
            f"{name!r} is not a GenEval scorer (needs .name and .score(image_dir, results)).",
            "implement the GenEvalScorer protocol",
        )
    return scorer


def _folder_index(filename: str) -> int | None:
    """The prompt-folder index of a result's image path (``.../<idx:05d>/samples/<j>.png``)."""
    parts = Path(filename).parts
    if len(parts) >= 3 and parts[-2] == "samples" and parts[-3].isdigit():
        return int(parts[-3])
    return None


class GenEvalMetric:
    """The ``geneval`` metric: scores a rendered directory and summarises by task.

    Args:
        scorer: ``official``, ``results`` or ``"module:Class"``.
        prompts: GenEval prompt file (official JSONL); ``None`` -> the shipped official 553 prompts.
        samples_per_prompt: images per prompt (4 in the protocol).
        resume: skip prompt folders that are already complete when rendering.
        scorer_args: keyword arguments of the scorer (``repo``, ``detector_dir``,
            ``detector_config``, ``python``, ``options`` for ``official``; ``results`` for ``results``).
    """

    name = "geneval"

    def __init__(
        self,
        scorer: str = "official",
        prompts: str | None = None,
        samples_per_prompt: int = 4,
        resume: bool = True,
        **scorer_args: Any,
    ) -> None:
        check_scorer_args(scorer, scorer_args)  # a missing repo/detector_dir fails here, before any render
        self.scorer_name = scorer
        self.prompts = prompts
        self.samples_per_prompt = int(samples_per_prompt)
        self.resume = bool(resume)
        self.scorer_args = scorer_args

    @classmethod
    def check_recipe_args(cls, args: dict[str, Any], where: str) -> None:
        """``rdm validate``: the scorer's required arguments and the prompt file, nothing run."""
        from rdm_core.recipe.validate import require_file

        own = ("scorer", "prompts", "samples_per_prompt", "resume")
        try:
            check_scorer_args(args.get("scorer", "official"), {k: v for k, v in args.items() if k not in own}, where)
        except RdmError as exc:
            from rdm_core.errors import RecipeError

            raise RecipeError(
                exc.problem if exc.problem.startswith(where) else f"{where}: {exc.problem}", exc.fix
            ) from None
        require_file(args.get("prompts"), f"{where} prompts", "omit it for the shipped official 553 prompts")
        if args.get("scorer", "official") == "official":
            script = Path(str(args["repo"])) / str(args.get("script", "evaluation/evaluate_images.py"))
            require_file(script, f"{where} repo", "clone github.com/djghosh13/geneval there (or set repo)")
            require_file(
                args["detector_dir"],
                f"{where} detector_dir",
                "download the Mask2Former weights with the geneval repo's script there (or set detector_dir)",
                directory=True,
            )

    @classmethod
    def rehearsal_args(cls, args: dict[str, Any], rehearsal: Any) -> dict[str, Any]:
        """``rdm run --rehearse``: the official scorer's command line run on the detector stand-in
        (``rdm_eval/standin``: same layout and results format, no detection), the first prompt of
        every task, <= 2 samples per prompt."""
        from rdm_eval.geneval import PACKAGED_PROMPTS

        standin = Path(__file__).resolve().parent / "standin"
        detector = Path(rehearsal.root) / "geneval_detector"
        detector.mkdir(parents=True, exist_ok=True)
        out = {k: v for k, v in args.items() if k in ("samples_per_prompt", "resume")}
        out.update(
            scorer="official",
            repo=str(standin),
            detector_dir=str(detector),
            detector_config=str(standin / "mask2former_standin.py"),
            python=sys.executable,
            prompts=rehearsal.prompts(args.get("prompts") or PACKAGED_PROMPTS),
        )
        out["samples_per_prompt"] = min(int(args.get("samples_per_prompt", 4)), 2)
        return out

    def score(self, images: Any, prompts: Sequence[str]) -> list[float]:
        """Per-image correctness (1.0 / 0.0) of ``images`` for GenEval ``prompts`` (one scorer run)."""
        import tempfile

        from rdm_core.images import save_png

        if len(prompts) != images.shape[0]:
            raise RdmError(f"{images.shape[0]} images but {len(prompts)} prompts.", "pass one prompt per image")
        with tempfile.TemporaryDirectory(prefix="rdm_geneval_") as tmp:
            files = [save_png(images[i], Path(tmp) / "in" / f"{i:06d}.png") for i in range(len(prompts))]
            return self.score_files(files, prompts, Path(tmp) / "work")

    def score_files(self, files: Sequence[Path], prompts: Sequence[str], workdir: Path) -> list[float]:
        """Per-image correctness of saved images, all scored in ONE scorer run.

        The files are linked (or copied) into the official layout, one prompt folder per image,
        under ``workdir``; the scorer runs once and its rows are mapped back by folder. Reference
        curation calls this once per filter, however many renders there are.
        """
        import json
        import shutil

        from rdm_eval.geneval import load_prompts, read_results

        if len(files) != len(prompts):
            raise RdmError(f"{len(files)} images but {len(prompts)} prompts.", "pass one prompt per image")
        by_text = {p.prompt: p.metadata for p in load_prompts(self.prompts)}
        unknown = [t for t in prompts if t not in by_text]
        if unknown:
            raise RdmError(
                f"prompt {unknown[0]!r} is not in the GenEval prompt file.",
                "score only GenEval prompts, or pass the matching prompts file",
            )
        root = Path(workdir) / "images"
        if root.exists():
            shutil.rmtree(root)
        for i, (src, text) in enumerate(zip(files, prompts, strict=True)):
            folder = root / f"{i:06d}"
            (folder / "samples").mkdir(parents=True)
            target = folder / "samples" / "0000.png"
            try:
                os.link(src, target)
            except OSError:  # another filesystem: copy
                shutil.copyfile(src, target)
            (folder / "metadata.jsonl").write_text(json.dumps(by_text[text]) + "\n")
        scorer = make_scorer(self.scorer_name, **self.scorer_args)
        rows = read_results(scorer.score(root, Path(workdir) / "results.jsonl"))
        flags = [0.0] * len(prompts)
        for row in rows:
            idx = _folder_index(str(row.get("filename", "")))
            if idx is not None and 0 <= idx < len(flags):
                flags[idx] = 1.0 if row["correct"] else 0.0
        return flags

    def evaluate(
        self,
        *,
        image_dir: str | os.PathLike[str] | None = None,
        results: str | os.PathLike[str] | None = None,
        **_: Any,
    ) -> MetricResult:
        """Score ``image_dir`` (or read ``results`` directly) -> overall = mean of task rates."""
        from rdm_eval.geneval import read_results, summarize

        if results is None:
            if image_dir is None:
                raise RdmError(
                    "geneval needs a rendered image directory or a results file.",
                    "render with `rdm eval --checkpoint ... --metrics geneval`",
                )
            image_dir = Path(image_dir)
            scorer = make_scorer(self.scorer_name, **self.scorer_args)
            results = scorer.score(image_dir, image_dir.parent / "geneval_results.jsonl")
        summary = summarize(read_results(results))
        extra = {
            "per_image": summary["per_image"],
            "counts": summary["counts"],
            "missing_tasks": summary["missing_tasks"],
            "results": str(results),
            "scorer": self.scorer_name,
        }
        return MetricResult(self.name, summary["overall"], dict(summary["tasks"]), extra)
