"""PickScore (docs/method.md): a CLIP preference model scoring image-prompt pairs.

Model ``yuvalkirstain/PickScore_v1`` with the processor of
``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``. Images are converted to uint8 PIL first (feeding
floats makes the processor rescale twice), text is padded/truncated to 77 tokens, and
``score = exp(logit_scale) * cos(image_emb, text_emb)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rdm_core.errors import ShapeError, WeightsNotFoundError
from rdm_core.interfaces import MetricResult

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

PICKSCORE_MODEL = "yuvalkirstain/PickScore_v1"
PICKSCORE_PROCESSOR = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
MAX_TEXT_TOKENS = 77


def _resolve(source: str, what: str) -> tuple[str, bool]:
    """(path or hub id, local_files_only). A local directory is used as is; a hub id comes from the
    HF cache, and is downloaded only when online."""
    from rdm_core.weights import is_offline

    p = Path(source).expanduser()
    if p.is_dir():
        return str(p), True
    if p.is_absolute() or source.startswith((".", "~")) or source.count("/") != 1:
        raise WeightsNotFoundError(
            f"{what} not found at {source}.",
            f"pass a local directory saved with save_pretrained(), or a hub id like {PICKSCORE_MODEL}",
        )
    return source, is_offline()


def _load(loader: Any, source: str, what: str) -> Any:
    if source == "tiny":  # the random-weight stand-in of rehearsals, through the same loading code
        from rdm_eval.tiny_pickscore import tiny_pickscore_dir

        source = str(tiny_pickscore_dir())
    path, local_only = _resolve(source, what)
    try:
        return loader.from_pretrained(path, local_files_only=local_only)
    except OSError as exc:
        raise WeightsNotFoundError(
            f"{what} ({source}) is not available locally{' and the hub is offline' if local_only else ''}: {exc}.",
            f"download it on a machine with internet (`huggingface-cli download {source}`) or pass a local directory",
        ) from exc


def class_prompts(template: str = "a photo of a {}") -> list[str]:
    """ImageNet prompts in class-index order, from the class names rdm ships (torchvision's names,
    sorted-WordNet-id order; see :mod:`rdm_references.imagenet`)."""
    from rdm_references.imagenet import class_prompts as prompts

    return prompts(template)


def to_pil(images: Tensor) -> list[Any]:
    """``[0,1]`` (B,3,H,W) -> uint8 PIL images with ``round(x*255)``."""
    from PIL import Image

    from rdm_core.images import to_uint8

    arr = to_uint8(images).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(a) for a in arr]


class PickScorer:
    """Scores (image, prompt) pairs with a CLIP preference model.

    Args:
        model: local directory or hub id of a transformers ``CLIPModel`` (PickScore_v1); ``tiny``:
            a random-weight stand-in built locally (rehearsals).
        processor: local directory or hub id of the processor (CLIP-H); defaults to ``model``.
        device: where the model runs.
        batch_size: pairs per forward (64).
    """

    def __init__(
        self,
        model: str = PICKSCORE_MODEL,
        processor: str | None = PICKSCORE_PROCESSOR,
        device: Any = "cpu",
        batch_size: int = 64,
    ) -> None:
        from transformers import AutoProcessor, CLIPModel

        self.model = _load(CLIPModel, model, "PickScore model").to(device).eval().requires_grad_(False)
        self.processor = _load(AutoProcessor, processor or model, "PickScore processor")
        self.device = device
        self.batch_size = batch_size

    def score(self, images: Tensor, prompts: Sequence[str]) -> Tensor:
        """``exp(logit_scale) * cos`` per pair, float32 on CPU, ``(B,)``."""
        import torch

        if images.dim() != 4 or images.shape[0] != len(prompts):
            raise ShapeError(
                f"PickScore needs one prompt per image: {tuple(images.shape)} images, {len(prompts)} prompts.",
                "pass (B,3,H,W) images in [0,1] and B prompts",
            )
        out = []
        for start in range(0, len(prompts), self.batch_size):
            stop = start + self.batch_size
            pixel = self.processor(images=to_pil(images[start:stop]), return_tensors="pt")["pixel_values"]
            text = self.processor(
                text=list(prompts[start:stop]),
                padding="max_length",
                truncation=True,
                max_length=MAX_TEXT_TOKENS,
                return_tensors="pt",
            )
            mask = text.get("attention_mask")
            with torch.no_grad():
                # CLIPModel.forward's image/text embeddings are stable across transformers versions
                # (get_*_features return output objects since v5).
                res = self.model(
                    input_ids=text["input_ids"].to(self.device),
                    pixel_values=pixel.to(self.device),
                    attention_mask=mask.to(self.device) if mask is not None else None,
                )
                img, txt = res.image_embeds.float(), res.text_embeds.float()
                cos = (img / img.norm(dim=-1, keepdim=True) * (txt / txt.norm(dim=-1, keepdim=True))).sum(-1)
                out.append((self.model.logit_scale.float().exp() * cos).cpu())
        return torch.cat(out)


def win_rate(scores_a: Tensor, scores_b: Tensor) -> dict[str, float]:
    """Matched-pair comparison: fraction where A scores strictly higher than B (ties reported apart)."""
    if scores_a.shape != scores_b.shape or scores_a.dim() != 1 or scores_a.numel() == 0:
        raise ShapeError(
            f"win rate needs two matched 1-D score vectors, got {tuple(scores_a.shape)} and {tuple(scores_b.shape)}.",
            "score the same noise and prompts with both models",
        )
    n = scores_a.numel()
    return {
        "win_rate": float((scores_a > scores_b).sum()) / n,
        "tie_rate": float((scores_a == scores_b).sum()) / n,
        "n": n,
    }


class PickScoreMetric:
    """The ``pickscore`` metric: mean score, and the win rate against a baseline when given.

    Args:
        model / processor / device / batch_size: see :class:`PickScorer`.
        num_samples: class-conditional render size (4000 for the ImageNet protocol).
        seed: render seed (1 for class-conditional renders; 0 with a prompt file).
        prompts: prompt file (JSONL ``prompt`` rows or text lines): one sample per prompt.
        baseline: checkpoint of model B for the matched-pair win rate (same noise and conditions).
        template: class-name prompt template for class-conditional generators.
        generator_args: generator arguments of this render only. ``ctx_len`` is the one allowed:
            the FLUX.2 headline encodes the Pick-a-Pic prompts at 232 tokens (48 truncates ~53 of
            them); every other render keeps the training pool's length.
    """

    name = "pickscore"
    RENDER_OVERRIDES = ("ctx_len",)

    def __init__(
        self,
        model: str = PICKSCORE_MODEL,
        processor: str | None = PICKSCORE_PROCESSOR,
        device: Any = "cpu",
        batch_size: int = 64,
        num_samples: int = 4000,
        seed: int | None = None,
        prompts: str | None = None,
        baseline: str | None = None,
        template: str = "a photo of a {}",
        generator_args: dict[str, Any] | None = None,
    ) -> None:
        self._check_overrides(generator_args or {}, "pickscore generator_args")
        self.generator_args = dict(generator_args or {})
        self._args = dict(model=model, processor=processor, device=device, batch_size=batch_size)
        self._scorer: PickScorer | None = None
        self.num_samples = int(num_samples)
        self.seed = int(seed) if seed is not None else (0 if prompts else 1)
        self.prompts, self.baseline, self.template = prompts, baseline, template

    @classmethod
    def rehearsal_args(cls, args: dict[str, Any], rehearsal: Any) -> dict[str, Any]:
        """``rdm run --rehearse``: the tiny CLIP stand-in, the first prompts, <= 8 class renders, no baseline."""
        out = dict(args, model="tiny", processor="tiny", baseline=None)
        out["num_samples"] = min(int(args.get("num_samples", 4000)), 8)
        out["batch_size"] = min(int(args.get("batch_size", 64)), 8)
        if args.get("prompts"):
            out["prompts"] = rehearsal.prompts(args["prompts"])
        return out

    @classmethod
    def _check_overrides(cls, generator_args: dict[str, Any], where: str) -> None:
        from rdm_core.errors import RecipeError

        other = sorted(set(generator_args) - set(cls.RENDER_OVERRIDES))
        if other:
            raise RecipeError(
                f"{where}: {other} would evaluate another generator than the one trained.",
                f"only {', '.join(cls.RENDER_OVERRIDES)} may differ for the PickScore render",
            )

    @classmethod
    def check_recipe_args(cls, args: dict[str, Any], where: str) -> None:
        """``rdm validate``: the prompt file exists, only ``ctx_len`` is overridden (nothing loaded)."""
        from rdm_core.recipe.validate import require_file

        cls._check_overrides(dict(args.get("generator_args") or {}), f"{where} generator_args")
        require_file(
            args.get("prompts"),
            f"{where} prompts",
            "export the Pick-a-Pic test prompts (see docs/evaluation.md) and point eval.args.pickscore.prompts at them",
        )

    def render_settings(self) -> dict[str, Any]:
        """The render protocol options (recorded in reports)."""
        return {
            "num_samples": self.num_samples,
            "seed": self.seed,
            "prompts": self.prompts,
            "baseline": self.baseline,
            "template": self.template,
            "generator_args": self.generator_args,
            "model": self._args["model"],
            "processor": self._args["processor"],
        }

    @property
    def scorer(self) -> PickScorer:
        if self._scorer is None:
            self._scorer = PickScorer(**self._args)
        return self._scorer

    def score(self, images: Tensor, prompts: Sequence[str]) -> Tensor:
        """Per-pair PickScores (the callable other plugins use, e.g. reference curation)."""
        return self.scorer.score(images, prompts)

    def evaluate(
        self,
        *,
        images: Tensor | None = None,
        prompts: Sequence[str] | None = None,
        scores: Tensor | None = None,
        baseline_images: Tensor | None = None,
        baseline_scores: Tensor | None = None,
        **_: Any,
    ) -> MetricResult:
        """Mean PickScore of ``images`` (or precomputed ``scores``); win rate vs the baseline."""
        if scores is None:
            if images is None or prompts is None:
                raise ShapeError(
                    "pickscore needs images and prompts (or precomputed scores).",
                    "render with a checkpoint (`rdm eval --checkpoint`) so prompts are known",
                )
            scores = self.scorer.score(images, prompts)
        extra: dict[str, Any] = {"n": int(scores.numel())}
        per_item: dict[str, float] = {}
        if baseline_scores is None and baseline_images is not None:
            baseline_scores = self.scorer.score(baseline_images, prompts or [])
        if baseline_scores is not None:
            wr = win_rate(scores, baseline_scores)
            extra.update(wr, baseline_mean=float(baseline_scores.double().mean()))
            per_item["win_rate"] = wr["win_rate"]
        return MetricResult(self.name, float(scores.double().mean()), per_item, extra)
