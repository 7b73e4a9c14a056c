"""Class accuracy of a class-conditional generator: does a sample show the class it was asked for?

A seeded render (one generator seeded ``seed`` draws, per batch, the noise then the class ids),
each image classified by a fixed classifier fitted on real data, and the share of samples whose
predicted class is the conditioned one. Per-class accuracies are reported beside the mean.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rdm_core.errors import RecipeError, ShapeError
from rdm_core.interfaces import MetricResult

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor


class ClassAccuracy:
    """Metric ``class_accuracy``.

    Args:
        classifier: ``"module:attr"`` of a function ``images -> (B,) int64`` predicted classes
            (e.g. ``rdm_toy.classifier:classify`` for the digits).
        num_samples: rendered samples.
        seed: render seed (its own stream, independent of the SW render).
    """

    name = "class_accuracy"

    def __init__(self, classifier: str = "", num_samples: int = 1000, seed: int = 2) -> None:
        if ":" not in classifier:
            raise RecipeError(
                f"class_accuracy needs a classifier 'module:attr', got {classifier!r}.",
                "set eval.args.class_accuracy.classifier, e.g. rdm_toy.classifier:classify",
            )
        if int(num_samples) <= 0:
            raise RecipeError(f"class_accuracy num_samples {num_samples} must be positive.", "use e.g. 1000")
        self.classifier_name, self.num_samples, self.seed = classifier, int(num_samples), int(seed)
        self._classify: Callable[[Tensor], Tensor] | None = None

    def classify(self, images: Tensor) -> Tensor:
        if self._classify is None:
            from rdm_core.registry import import_object

            self._classify = import_object(self.classifier_name)
        return self._classify(images).reshape(-1).cpu()

    def evaluate(self, *, predicted: Tensor, labels: Tensor, **_: Any) -> MetricResult:
        """Share of ``predicted == labels``; ``per_item`` holds the accuracy of every class seen."""
        import torch

        if predicted.shape != labels.shape or labels.dim() != 1 or labels.numel() == 0:
            raise ShapeError(
                f"class_accuracy needs matched 1-D predictions and labels, got {tuple(predicted.shape)} and "
                f"{tuple(labels.shape)}.",
                "render with a class-conditional generator (Conditions.inputs = class ids)",
            )
        hit = predicted.long() == labels.long()
        per_class = {str(int(c)): float(hit[labels == c].double().mean()) for c in torch.unique(labels)}
        return MetricResult(
            self.name,
            float(hit.double().mean()),
            per_item=per_class,
            extra={"n": int(labels.numel()), "seed": self.seed, "classifier": self.classifier_name},
        )


def class_ids(conditions: Any) -> Tensor:
    """The class ids of a render batch's conditions (1-D integer ``inputs``)."""
    import torch

    from rdm_core.interfaces import Conditions

    labels = conditions.inputs if isinstance(conditions, Conditions) else None
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.is_floating_point():
        raise ShapeError(
            "class_accuracy needs a class-conditional generator (conditions carry 1-D integer class ids).",
            "drop class_accuracy from eval.metrics for this generator",
        )
    return labels.cpu()
