"""The generator contract: conditions, the one-step ``generate`` call, and video-to-frames flattening.

Part of the plugin-facing API re-exported by :mod:`rdm_core.interfaces`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import Tensor, nn


@dataclass
class Conditions:
    """What a generator is conditioned on for one batch of ``B`` samples; opaque to the trainer.

    Attributes:
        inputs: whatever the generator's ``generate`` consumes, with ``B`` rows: a context tensor
            ``(B, L, D)``, a tuple of tensors (FLUX.1: T5 context and CLIP pooled vector), class
            ids ``(B,)`` int64, or ``None`` for unconditional models.
        caption_ids: ``(B,)`` int64 rows of the generator's prompt table (``sample_conditions``
            only). The joint image-text feature looks up the caption's text feature with them, so
            they index the same prompts file the text table was built from. ``None`` when the
            conditions come from no table (unconditional, or ``conditions_from_prompts``).
        captions: the ``B`` caption texts when known (PickScore, sample grids), else ``None``.
    """

    inputs: Any = None
    caption_ids: Tensor | None = None
    captions: list[str] | None = None

    def to(self, device: torch.device | str) -> Conditions:
        """The same conditions with every tensor (also inside tuples, lists, dicts) on ``device``."""
        import torch

        def move(x: Any) -> Any:
            if isinstance(x, torch.Tensor):
                return x.to(device)
            if isinstance(x, (tuple, list)):
                return type(x)(move(v) for v in x)
            if isinstance(x, dict):
                return {k: move(v) for k, v in x.items()}
            return x

        ids = self.caption_ids.to(device) if self.caption_ids is not None else None
        return Conditions(move(self.inputs), ids, self.captions)


@runtime_checkable
class Generator(Protocol):
    """A one-step generator: standard-normal noise (+ conditions) -> images in ``[0, 1]``.

    The trainer, ``rdm generate``, ``rdm eval`` and reference renders use only these methods;
    anything more (prompt encoding, a multi-step teacher, checkpointing, sizes for ``rdm plan``)
    is an optional capability of :mod:`rdm_core.capabilities`.

    Devices: ``build_generator`` moves :meth:`trainable_module` to the run's device and nothing
    else, so frozen parts (a VAE, text encoders) must follow the trainable module's device (and
    float64 dtype, for exactness runs) by themselves, e.g. on the first ``generate`` call.

    Precision: parameters of the trainable module stay float32 master weights (float64 in
    exactness runs). Under ``train.precision: bf16`` the caller wraps ``generate`` in bf16
    autocast; a generator may also force its own autocast (the diffusers generators'
    ``precision`` argument).
    """

    def noise_shape(self) -> tuple[int, ...]:
        """Per-sample noise shape (no batch axis).

        Callers draw ``torch.randn((B, *noise_shape()))`` on the run's device, float32 (float64
        in exactness runs), and pass it to :meth:`generate` unchanged.
        """
        ...

    def sample_conditions(self, n: int, rng: torch.Generator) -> Conditions:
        """Draw ``n`` training conditions, using ``rng`` as the only source of randomness.

        ``rng`` is a dedicated ``torch.Generator`` (seeded from the run seed and rank by the
        trainer; CPU, or the render device in evaluation); the same ``rng`` state must give the
        same conditions. The result may live on any device: callers ``.to(device)`` it. An
        unconditional generator returns ``Conditions(inputs=None)``.
        """
        ...

    def generate(self, noise: Tensor, conditions: Conditions) -> Tensor:
        """Differentiable one-step sample.

        Args:
            noise: ``(B, *noise_shape())`` standard normal, on the trainable module's device.
            conditions: ``B`` rows, already on that device.

        Returns:
            ``(B, 3, H, W)`` images, or ``(B, 3, F, H, W)`` video, RGB in ``[0, 1]``, on the
            noise's device. Floating point: float32 (float64 for a float64 module), or the
            caller's autocast dtype when the last operation ran under it (consumers that need
            float32 call ``.float()``; encoders accept either). Differentiable with respect
            to the trainable module's parameters: never wrap the forward in ``no_grad``. A pure
            function of ``noise``, ``conditions``, the parameters and torch's global RNG state:
            GradCache replays every chunk from the same inputs and RNG state and needs the same
            output.
        """
        ...

    def trainable_module(self) -> nn.Module:
        """The module whose parameters are trained.

        The trainer hands its parameters to the optimizer, shards it with FSDP, switches it
        between ``train()`` and ``eval()`` and saves/loads its ``state_dict`` in run checkpoints.
        Frozen parts must not be trainable parameters of it (``requires_grad=False`` or kept
        outside).
        """
        ...

    def load_weights(self, path: str, format: str = "auto") -> None:
        """Load third-party or released weights into the trainable module, strictly.

        ``format`` is generator-specific (``auto`` detects it from the file). A file that does
        not match raises :class:`~rdm_core.errors.ArtifactError`; a missing one
        :class:`~rdm_core.errors.WeightsNotFoundError`.
        """
        ...

    def save_weights(self, path: str, format: str = "rdm") -> None:
        """Write the trainable module's weights (safetensors, atomically) in ``format``."""
        ...


def as_image_batch(x: Tensor) -> Tensor:
    """``(B,3,H,W)`` unchanged; video ``(B,3,F,H,W)`` -> ``(B*F,3,H,W)`` frames, sample-major."""
    if x.dim() == 4:
        return x
    if x.dim() == 5:
        b, c, f, h, w = x.shape
        return x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
    raise ValueError(f"expected (B,3,H,W) images or (B,3,F,H,W) video, got shape {tuple(x.shape)}")
