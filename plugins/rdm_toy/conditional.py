"""The class-conditional CPU twin of the ImageNet generator: ``digits-classcond``.

Like the pMF ImageNet model it is conditioned on a class id through a label table of
``num_classes + 1`` rows, the last one being the null (unconditional) class, and it draws
training classes uniformly. Unlike the ImageNet run it starts from random weights, with no
class-conditional warm start, so the loss itself must see the class: the recipe couples each
feature row with the one-hot code of its class (the joint feature ``[phi(x) | beta * onehot(c)]``,
the same mechanism text-to-image recipes use with text embeddings), and the reference is built
from the real digits with their true classes. The class prompts (``the digit k``) name the rows
of that one-hot table.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rdm_core.errors import RecipeError, ShapeError
from rdm_core.interfaces import Conditions
from rdm_core.seeding import seeded_init
from rdm_toy.data import NATIVE, NUM_CLASSES
from rdm_toy.generator import DigitsMLP, DigitsMLPGenerator

CLASS_PROMPTS: tuple[str, ...] = tuple(f"the digit {k}" for k in range(NUM_CLASSES))
CLASS_PROMPTS_FILE = Path(__file__).parent / "assets" / "digit_classes.txt"


class ClassCondDigitsMLP(nn.Module):
    """(noise, class id) -> images: a label embedding concatenated to the noise, then the MLP."""

    def __init__(
        self, noise_dim: int, hidden: int, depth: int, resolution: int, base: int, num_classes: int, embed_dim: int
    ) -> None:
        super().__init__()
        self.noise_dim, self.num_classes = noise_dim, num_classes
        self.label_embedding = nn.Embedding(num_classes + 1, embed_dim)  # row num_classes: the null class
        self.body = DigitsMLP(noise_dim + embed_dim, hidden, depth, resolution, base)

    def forward(self, noise: Tensor, labels: Tensor) -> Tensor:
        return self.body(torch.cat([noise.reshape(noise.shape[0], -1), self.label_embedding(labels)], dim=1))


class DigitsClassCondGenerator(DigitsMLPGenerator):
    """Class-conditional one-step digit generator (:class:`rdm_core.interfaces.Generator`).

    Conditions carry the class ids twice: as ``inputs`` (what the network reads) and as
    ``caption_ids`` (the row of the class table a joint feature couples the sample with).

    Args:
        noise_dim, hidden, depth, resolution, base, seed: as for ``digits-mlp``.
        num_classes: classes (10 digits); the label table has one more row, the null class.
        embed_dim: width of the label embedding.
        prompts: the class prompt file (one prompt per class, in class order) from which the
            reference build makes the generator-side one-hot table; checked against the
            classes when given.
    """

    name = "digits-classcond"

    def __init__(
        self,
        noise_dim: int = 32,
        hidden: int = 256,
        depth: int = 2,
        resolution: int = 16,
        base: int = NATIVE,
        seed: int = 0,
        num_classes: int = NUM_CLASSES,
        embed_dim: int = 16,
        prompts: str | None = None,
    ) -> None:
        if not 1 <= int(num_classes) <= NUM_CLASSES or int(embed_dim) < 1:
            raise RecipeError(
                f"digits-classcond got num_classes={num_classes}, embed_dim={embed_dim}.",
                f"use 1 <= num_classes <= {NUM_CLASSES} and a positive embed_dim",
            )
        if prompts is not None:
            check_class_prompts(prompts, int(num_classes))
        self.args: dict[str, Any] = dict(
            noise_dim=noise_dim, hidden=hidden, depth=depth, resolution=resolution, base=base, seed=seed,
            num_classes=num_classes, embed_dim=embed_dim, prompts=prompts,
        )  # fmt: skip
        self.num_classes = int(num_classes)
        with seeded_init(seed=seed):
            self.module = ClassCondDigitsMLP(noise_dim, hidden, depth, resolution, base, self.num_classes, embed_dim)

    def sample_conditions(self, n: int, rng: torch.Generator) -> Conditions:
        """``n`` class ids uniform in ``[0, num_classes)`` (the null class is never drawn)."""
        labels = torch.randint(0, self.num_classes, (n,), generator=rng, device=rng.device)
        return Conditions(inputs=labels, caption_ids=labels.clone())

    def conditions_from_classes(self, class_ids: Any) -> Conditions:
        """Conditions for explicit ids (``num_classes`` = the null class, which has no table row)."""
        labels = torch.as_tensor(class_ids, dtype=torch.int64).reshape(-1)
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) > self.num_classes):
            raise ShapeError(
                f"digits-classcond class ids must be in [0, {self.num_classes}], got {labels.tolist()[:5]}.",
                f"use digit classes 0..{self.num_classes - 1} ({self.num_classes} = null)",
            )
        return Conditions(inputs=labels, caption_ids=labels.clone())

    def generate(self, noise: Tensor, conditions: Conditions | None = None) -> Tensor:
        """Differentiable one-step sample ``(B, 3, R, R)`` in ``[0, 1]`` for the conditions' classes."""
        labels = conditions.inputs if isinstance(conditions, Conditions) else None
        if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.shape[0] != noise.shape[0]:
            raise ShapeError(
                f"digits-classcond needs one class id per noise row ({noise.shape[0]}).",
                "pass generator.sample_conditions(n, rng) or conditions_from_classes(ids)",
            )
        if noise.dim() != 2 or noise.shape[1] != self.module.noise_dim:
            raise ShapeError(
                f"digits-classcond expects noise of shape (B, {self.module.noise_dim}), got {tuple(noise.shape)}.",
                "draw noise with shape (B, *generator.noise_shape())",
            )
        param = next(self.module.parameters())
        return self.module(noise.to(device=param.device, dtype=param.dtype), labels.to(param.device))

    def sample(self, n: int, seed: int = 0, batch_size: int = 1024, classes: Tensor | None = None) -> Tensor:
        """``n`` samples without gradients; classes ``arange(n) % num_classes`` unless given."""
        gen = torch.Generator().manual_seed(seed)
        labels = torch.arange(n) % self.num_classes if classes is None else torch.as_tensor(classes)
        out = []
        with torch.no_grad():
            for start in range(0, n, batch_size):
                b = min(batch_size, n - start)
                noise = torch.randn(b, *self.noise_shape(), generator=gen)
                out.append(self.generate(noise, self.conditions_from_classes(labels[start : start + b])))
        return torch.cat(out).cpu()


def check_class_prompts(path: str, num_classes: int) -> None:
    """Refuse a prompt file that is not the class prompts in class order."""
    from rdm_core.prompts import read_prompts

    found = read_prompts(path)
    if list(found) != list(CLASS_PROMPTS[:num_classes]):
        raise RecipeError(
            f"{path} does not list the {num_classes} digit class prompts in class order.",
            f"use {CLASS_PROMPTS_FILE} (lines 'the digit 0' .. 'the digit {num_classes - 1}')",
        )


class ClassOneHotText:
    """A "text tower" for class prompts: ``the digit k`` -> the one-hot vector of class k (10-d)."""

    dim = NUM_CLASSES

    def encode(self, prompts: Sequence[str]) -> Tensor:
        index = {p: k for k, p in enumerate(CLASS_PROMPTS)}
        unknown = [p for p in prompts if p not in index]
        if unknown:
            raise ShapeError(
                f"class_onehot knows only the digit class prompts, got {unknown[0]!r}.",
                "caption the digits with `captions: true` on the digits source",
            )
        return nn.functional.one_hot(torch.tensor([index[p] for p in prompts]), NUM_CLASSES).float()


def class_text_encoder(variant: str = "full", weights: str | None = None) -> ClassOneHotText:
    """Factory for ``objective.joint.text_encoder: rdm_toy.conditional:class_text_encoder``."""
    return ClassOneHotText()
