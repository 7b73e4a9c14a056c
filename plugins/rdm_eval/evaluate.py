"""``rdm eval`` as a library call: pick the input, get features, run the metrics, write the report.

The inputs and their features are :mod:`rdm_eval.eval_inputs`, the files written
:mod:`rdm_eval.eval_outputs`; the metrics that render with the generator (PickScore, class
accuracy, GenEval) are run here.

Inputs (exactly one): a generator checkpoint (seeded render), the recipe's base weights
(``base=True``, explicit so an untrained base is never evaluated by accident), an image folder,
a cached features file, or the real val bank itself (a seeded half split, the ~1 sanity floor).

Nothing here imports training code (rdm_gradcache, rdm_mmd): a test enforces it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rdm_core.devices import resolve_device
from rdm_core.errors import RdmError, RecipeError
from rdm_core.recipe.persist import persisted_value
from rdm_eval.eval_inputs import build_generator_with, checked_encoders, generated_features, real_val_split
from rdm_eval.eval_outputs import EvalOutcome, default_out_dir, write_outputs

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

    from rdm_core.interfaces import Generator, MetricResult

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


def _metric_args(recipe: Any, name: str) -> dict[str, Any]:
    from rdm_core.recipe.assemble import plain

    return dict(plain(recipe.eval.args).get(name, {}) or {})


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
    modules, fingerprints = checked_encoders(recipe, kind, features, device) if feature_metrics else (None, None)
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
    write_outputs(outcome)
    return outcome


def _check_prompt_capability(recipe: Any, generator: Generator, names: list[str]) -> None:
    """Refuse, before anything is rendered, metrics that need prompts the generator cannot encode."""
    from rdm_core.capabilities import PromptConditionedGenerator, require

    what = f"generator {recipe.generator.name!r}"
    if "geneval" in names and _metric_args(recipe, "geneval").get("scorer") != "results":
        require(generator, PromptConditionedGenerator, what=what, **GENEVAL_PROMPTS)
    if "pickscore" in names and _metric_args(recipe, "pickscore").get("prompts"):
        require(generator, PromptConditionedGenerator, what=what, **PICKSCORE_PROMPTS)
