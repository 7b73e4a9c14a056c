"""``rdm eval`` as a library call: pick the input, get features, run the metrics, write the report.

Inputs (exactly one): a generator checkpoint (seeded render), the recipe's base weights
(``base=True``, explicit so an untrained base is never evaluated by accident), an image folder,
a cached features file, or the real val bank itself (a seeded half split, the ~1 sanity floor).

Nothing here imports training code (rdm_gradcache, rdm_mmd): a test enforces it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rdm_core.devices import resolve_device
from rdm_core.errors import ArtifactError, RdmError, RecipeError
from rdm_core.recipe.persist import persisted_value

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

    from rdm_core.interfaces import Generator, MetricResult
    from rdm_eval.banks import EvalBank

FEATURE_METRICS = ("sw_r14", "mmd_r14")
GENERATOR_METRICS = ("pickscore", "geneval", "class_accuracy")
# what needs a prompt-conditioned generator, and what to do instead (rdm_core.capabilities.require)
PICKSCORE_PROMPTS = {
    "needed_by": "PickScore with a prompt file",
    "fix": "drop eval.args.pickscore.prompts (renders are then scored with their own captions or class names)",
}
GENEVAL_PROMPTS = {
    "needed_by": "GenEval (it renders the GenEval prompts)",
    "fix": "GenEval needs a text-to-image generator; drop 'geneval' from --metrics",
}


@dataclass
class EvalOutcome:
    """What an evaluation produced: metric results and the files written."""

    results: dict[str, MetricResult]
    encoders: list[str]
    held_out: list[str]
    out_dir: Path
    context: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


def _metric_args(recipe: Any, name: str) -> dict[str, Any]:
    from rdm_core.recipe.assemble import plain

    return dict(plain(recipe.eval.args).get(name, {}) or {})


def real_val_split(banks: dict[str, EvalBank], seed: int) -> tuple[dict[str, Tensor], dict[str, EvalBank]]:
    """Score real data against itself: a seeded half split of each val bank, the first half as
    "generated", the second half as the floor (both then share the common N)."""
    import torch

    from rdm_eval.banks import EvalBank

    generated, floors = {}, {}
    for enc, bank in banks.items():
        perm = torch.randperm(bank.val.shape[0], generator=torch.Generator().manual_seed(seed))
        half = bank.val.shape[0] // 2
        generated[enc] = bank.val[perm[:half]]
        floors[enc] = EvalBank(enc, bank.train, bank.val[perm[half:]], bank.meta, bank.rff)
    return generated, floors


def build_generator_with(recipe: Any, checkpoint: str | None, device: str) -> Generator:
    """The recipe's generator with the checkpoint's weights (or the base weights when None)."""
    from rdm_core.checkpoints import load_generator_weights
    from rdm_core.recipe.assemble import build_generator

    generator = build_generator(recipe, device)
    if checkpoint is not None:
        try:
            load_generator_weights(checkpoint, generator)
        except RuntimeError as exc:  # torch's state-dict mismatch
            raise ArtifactError(
                f"checkpoint {checkpoint} does not fit generator {recipe.generator.name!r}: {str(exc).splitlines()[0]}",
                "evaluate with the recipe the checkpoint was trained with",
            ) from exc
    return generator


def generated_features(
    recipe: Any,
    encoders: list[str],
    source: dict[str, Any],
    device: str,
    out_dir: Path,
    generator: Generator | None,
    modules: dict[str, Any] | None = None,
    fingerprints: dict[str, str] | None = None,
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Generated features for every encoder, from the chosen source; rendered ones are cached.

    Args:
        modules: the built encoders (built here when ``None``).
        fingerprints: their weights fingerprints, recorded in the cached features file.
    """
    from rdm_core.battery import Battery
    from rdm_core.recipe.assemble import build_encoders
    from rdm_eval.banks import load_features, save_features, select_features
    from rdm_eval.render import folder_batches, image_files, render_batches

    if source["kind"] == "features":
        feats, meta = load_features(source["path"])
        return select_features(feats, encoders, source["path"]), {"features_meta": meta}
    batch = int(recipe.eval.batch_size)
    modules = modules if modules is not None else build_encoders(recipe, "all", device)
    battery = Battery(modules, chunk_size=batch, device=device)
    if source["kind"] == "images":
        files = image_files(source["path"])
        feats = battery.extract(
            folder_batches(files, batch, int(recipe.references.resolution)), description=f"encoding {len(files)} images"
        )
        meta = {"source": "images", "path": str(source["path"]), "n": len(files)}
    else:
        assert generator is not None
        n, seed = int(recipe.eval.num_samples), int(recipe.eval.seed)
        precision = str(recipe.train.precision)
        renders = (
            imgs for imgs, _ in render_batches(generator, n, batch, seed=seed, device=device, precision=precision)
        )
        feats = battery.extract(renders, description=f"render + encode {n} samples")
        meta = {"source": source["kind"], "checkpoint": source.get("path"), "n": n, "seed": seed}
    path = out_dir / "features.safetensors"
    save_features(
        path,
        feats,
        {
            **meta,
            "held_out": list(recipe.encoders.held_out),
            "dims": {k: int(v.shape[1]) for k, v in feats.items()},
            "encoder_fingerprints": dict(fingerprints or {}),
        },
    )
    return feats, {**meta, "features_file": str(path)}


def _prompts_for(cond: Any, class_names: list[str]) -> list[str]:
    import torch

    if cond.captions:
        return list(cond.captions)
    labels = cond.inputs
    if isinstance(labels, torch.Tensor) and labels.dim() == 1 and not labels.is_floating_point():
        return [class_names[int(i)] for i in labels.cpu()]
    raise RdmError(
        "pickscore cannot tell the prompts of this generator's conditions (no captions, no class ids).",
        "pass a prompt file: --set eval.args.pickscore.prompts=PATH",
    )


def pickscore_scores(generator: Generator, metric: Any, batch: int, device: str, precision: str = "fp32") -> Tensor:
    """PickScores of one seeded render: class-conditional (noise then labels per batch, seed 1)
    or, with a prompt file, one sample per prompt with all noise drawn at once (seed 0); the
    generator runs under the autocast of ``precision`` as in training."""
    import torch

    from rdm_core.capabilities import PromptConditionedGenerator, require
    from rdm_core.interfaces import as_image_batch
    from rdm_core.precision import generator_autocast
    from rdm_eval.render import render_batches

    scores = []
    if metric.prompts:
        from rdm_core.prompts import read_prompts

        prompted = require(generator, PromptConditionedGenerator, what="the generator", **PICKSCORE_PROMPTS)
        prompts = read_prompts(metric.prompts)
        rng = torch.Generator(device=device).manual_seed(metric.seed)
        noise = torch.randn((len(prompts), *generator.noise_shape()), generator=rng, device=device)
        for start in range(0, len(prompts), batch):
            cond = prompted.conditions_from_prompts(prompts[start : start + batch]).to(device)
            with torch.no_grad(), generator_autocast(precision, device):
                images = as_image_batch(generator.generate(noise[start : start + batch], cond)).float()
            scores.append(metric.score(images, prompts[start : start + batch]))
        return torch.cat(scores)
    from rdm_eval.pickscore import class_prompts

    names = class_prompts(metric.template)
    renders = render_batches(generator, metric.num_samples, batch, seed=metric.seed, device=device, precision=precision)
    for images, cond in renders:
        scores.append(metric.score(images, _prompts_for(cond, names)))
    return torch.cat(scores)


def load_baseline(recipe: Any, generator: Generator, path: str) -> None:
    """Weights of the PickScore baseline: the recipe's base weights (``generator.weights``, read in
    ``generator.weights_format``, e.g. a public ``.pth``) or any checkpoint ``--checkpoint`` takes."""
    from rdm_core.checkpoints import load_generator_weights

    section = recipe.generator
    same = bool(section.weights) and str(section.weights) == path
    load_generator_weights(path, generator, format=str(section.weights_format) if same else "auto")


def run_pickscore(recipe: Any, generator: Generator, device: str, checkpoint: str | None = None) -> MetricResult:
    """Mean PickScore of the render; with ``baseline``, the matched-pair win rate (the same seeded
    stream re-rendered with the baseline weights, which stay loaded afterwards).

    ``eval.args.pickscore.generator_args`` (only ``ctx_len``: the FLUX.2 headline encodes the
    Pick-a-Pic prompts at 232 tokens, not the training 48) renders with a generator rebuilt with
    those arguments and the same weights.
    """
    from rdm_core.plugins import registry

    args = _metric_args(recipe, "pickscore")
    args.setdefault("device", device)
    metric = registry("metrics").create("pickscore", **args)
    if metric.generator_args:
        from omegaconf import OmegaConf

        recipe = OmegaConf.merge(recipe, {"generator": {"args": dict(metric.generator_args)}})
        generator = build_generator_with(recipe, checkpoint, device)
    batch, precision = int(recipe.eval.batch_size), str(recipe.train.precision)
    scores = pickscore_scores(generator, metric, batch, device, precision)
    baseline = None
    if metric.baseline:
        load_baseline(recipe, generator, str(metric.baseline))
        baseline = pickscore_scores(generator, metric, batch, device, precision)
    result = metric.evaluate(scores=scores, baseline_scores=baseline)
    result.extra.update(metric.render_settings())
    return result


def run_class_accuracy(recipe: Any, generator: Generator, device: str) -> MetricResult:
    """Seeded class-conditional render, classified; accuracy against the conditioned classes."""
    import torch

    from rdm_core.plugins import registry
    from rdm_eval.class_accuracy import class_ids
    from rdm_eval.render import render_batches

    metric = registry("metrics").create("class_accuracy", **_metric_args(recipe, "class_accuracy"))
    predicted, labels = [], []
    for images, cond in render_batches(
        generator, metric.num_samples, int(recipe.eval.batch_size), seed=metric.seed, device=device
    ):
        labels.append(class_ids(cond))
        predicted.append(metric.classify(images))
    return metric.evaluate(predicted=torch.cat(predicted), labels=torch.cat(labels))


def run_geneval(recipe: Any, generator: Generator | None, device: str, out_dir: Path) -> MetricResult:
    from rdm_core.plugins import registry
    from rdm_eval import geneval

    metric = registry("metrics").create("geneval", **_metric_args(recipe, "geneval"))
    if metric.scorer_name == "results":  # scored elsewhere: nothing to render
        return metric.evaluate(image_dir=out_dir / "geneval")
    if generator is None:
        raise RdmError(
            "geneval needs a generator to render the prompts.",
            "pass --checkpoint (or --base), or score an existing render with eval.args.geneval.scorer=results",
        )
    prompts = geneval.load_prompts(metric.prompts)
    image_dir = geneval.render(
        generator,
        prompts,
        out_dir / "geneval",
        samples_per_prompt=metric.samples_per_prompt,
        device=device,
        resume=metric.resume,
        precision=str(recipe.train.precision),
    )
    result = metric.evaluate(image_dir=image_dir)
    result.extra["prompt_set"] = geneval.prompt_set_report(prompts)
    return result


def evaluate(
    recipe: Any,
    *,
    checkpoint: str | None = None,
    base: bool = False,
    images: str | None = None,
    features: str | None = None,
    real_val: bool = False,
    metrics: list[str] | None = None,
    out_dir: str | Path | None = None,
) -> EvalOutcome:
    """Run the recipe's (or the given) metrics on one input and write features + report files.

    Raises:
        RecipeError: no input or several inputs, unknown metric names.
    """
    from rdm_core.plugins import registry
    from rdm_core.recipe.assemble import encoder_names
    from rdm_eval.banks import load_banks

    chosen = [
        k
        for k, v in (
            ("checkpoint", checkpoint),
            ("base", base),
            ("images", images),
            ("features", features),
            ("real_val", real_val),
        )
        if v
    ]
    if len(chosen) != 1:
        raise RecipeError(
            f"rdm eval needs exactly one input, got {', '.join(chosen) or 'none'}.",
            "pass one of --checkpoint C, --base, --images DIR, --features FILE, --real-val",
        )
    kind = chosen[0]
    names = list(metrics or recipe.eval.metrics)
    known = registry("metrics")
    for m in names:
        known.get(m)  # UnknownNameError with suggestions
    needs_generator = [m for m in names if m in GENERATOR_METRICS]
    if (
        needs_generator
        and kind not in ("checkpoint", "base")
        and not (needs_generator == ["geneval"] and _metric_args(recipe, "geneval").get("scorer") == "results")
    ):
        raise RecipeError(
            f"metric(s) {', '.join(needs_generator)} render with the generator, but the input is {kind}.",
            "pass --checkpoint C (or --base), or drop them from --metrics",
        )
    device = str(resolve_device(recipe.run.device))  # a string: it goes into metric args and the report
    out = Path(out_dir) if out_dir else default_out_dir(recipe, kind, checkpoint)
    encoders, held_out = encoder_names(recipe, "all"), list(recipe.encoders.held_out)
    source = {"kind": kind, "path": checkpoint or images or features}
    feature_metrics = [m for m in names if m not in GENERATOR_METRICS]
    modules, fingerprints = _checked_encoders(recipe, kind, features, device) if feature_metrics else (None, None)
    generator = build_generator_with(recipe, checkpoint, device) if kind in ("checkpoint", "base") else None
    if generator is not None:
        _check_prompt_capability(recipe, generator, names)
    out.mkdir(parents=True, exist_ok=True)  # only once the inputs are known to fit
    context: dict[str, Any] = {
        "input": source,
        "device": device,
        "references": str(persisted_value(recipe, "references.dir")),
        "encoders": encoders,
        "held_out": held_out,
        "metrics": names,
    }
    results: dict[str, MetricResult] = {}
    if feature_metrics:
        banks = load_banks(recipe.references.dir, encoders)
        if kind == "real_val":
            gen_feats, banks = real_val_split(banks, int(recipe.eval.seed))
            context["real_val_split_seed"] = int(recipe.eval.seed)
        else:
            gen_feats, meta = generated_features(
                recipe, encoders, source, device, out, generator, modules, fingerprints
            )
            context["generated"] = meta
        for m in feature_metrics:
            args = _metric_args(recipe, m)
            if m in FEATURE_METRICS:
                args.setdefault("device", device)
            metric = known.create(m, **args)
            results[m] = metric.evaluate(generated=gen_feats, banks=banks, held_out=held_out)
    if "geneval" in names:
        results["geneval"] = run_geneval(recipe, generator, device, out)
    if "class_accuracy" in names:
        assert generator is not None
        results["class_accuracy"] = run_class_accuracy(recipe, generator, device)
    if "pickscore" in names:  # last: a baseline pass leaves the baseline weights loaded
        assert generator is not None
        results["pickscore"] = run_pickscore(recipe, generator, device, checkpoint)
    outcome = EvalOutcome(results, encoders, held_out, out, context)
    _write_outputs(outcome)
    return outcome


def _check_prompt_capability(recipe: Any, generator: Generator, names: list[str]) -> None:
    """Refuse, before anything is rendered, metrics that need prompts the generator cannot encode."""
    from rdm_core.capabilities import PromptConditionedGenerator, require

    what = f"generator {recipe.generator.name!r}"
    if "geneval" in names and _metric_args(recipe, "geneval").get("scorer") != "results":
        require(generator, PromptConditionedGenerator, what=what, **GENEVAL_PROMPTS)
    if "pickscore" in names and _metric_args(recipe, "pickscore").get("prompts"):
        require(generator, PromptConditionedGenerator, what=what, **PICKSCORE_PROMPTS)


def default_out_dir(recipe: Any, kind: str, checkpoint: str | None) -> Path:
    """Where ``rdm eval`` writes without ``--out``.

    A checkpoint's evaluation goes beside it, never into the recipe's run directory (which may
    be another run): an rdm checkpoint ``RUN/checkpoints/step_N`` (or ``RUN`` itself, meaning its
    latest checkpoint) -> ``RUN/eval/step_N``; any other weights file or folder ``X`` ->
    ``<folder of X>/eval/<name of X>``. Other inputs go to ``<recipe run dir>/eval/<input kind>``.
    """
    from rdm_core.run_dir import run_directory

    if kind != "checkpoint" or checkpoint is None:
        return run_directory(recipe) / "eval" / kind
    from rdm_core.checkpoints import rdm_model_file

    model = rdm_model_file(checkpoint)
    if model is not None and model.parent.parent.name == "checkpoints":
        return model.parent.parent.parent / "eval" / model.parent.name
    p = Path(checkpoint).expanduser()
    return p.parent / "eval" / (p.stem if p.is_file() else p.name)


def _checked_encoders(
    recipe: Any, kind: str, features: str | None, device: str
) -> tuple[dict[str, Any] | None, dict[str, str] | None]:
    """Build the battery (inputs that extract features) and refuse banks that do not fit it.

    Returns:
        ``(encoders, weights fingerprints)``; ``(None, fingerprints recorded in the features file
        or None)`` for inputs that extract nothing.
    """
    from rdm_core.recipe.assemble import build_encoders
    from rdm_references.check import check_references
    from rdm_references.stages import encoder_fingerprint

    if kind in ("checkpoint", "base", "images"):
        modules = build_encoders(recipe, "all", device)
        fingerprints = {n: encoder_fingerprint(m) for n, m in modules.items()}
        check_references(recipe, fingerprints, stage="eval")  # feature dims are checked against the banks
        return modules, fingerprints
    recorded = None
    if kind == "features" and features is not None and Path(features).is_file():
        from rdm_core.artifacts import read_meta

        recorded = read_meta(features).get("encoder_fingerprints") or None
    check_references(recipe, recorded, stage="eval")
    return None, recorded


def _write_outputs(outcome: EvalOutcome) -> None:
    from rdm_eval.report import bar_chart, write_report

    outcome.files["report"] = str(write_report(outcome.out_dir / "eval.json", outcome.results, outcome.context))
    png = bar_chart(
        outcome.out_dir / "ratios.png",
        outcome.results,
        outcome.encoders,
        outcome.held_out,
        title=f"{outcome.context['input']['kind']}: ratio to real val (dashed = 1; * held-out, hatched)",
    )
    if png is not None:
        outcome.files["chart"] = str(png)
    if "generated" in outcome.context and "features_file" in outcome.context["generated"]:
        outcome.files["features"] = outcome.context["generated"]["features_file"]


def headline(outcome: EvalOutcome) -> dict[str, float]:
    """Metric name -> headline value."""
    return {name: res.value for name, res in outcome.results.items()}
