"""The ``pmf`` generator: a class-conditional one-step pixel MeanFlow model behind rdm's interface.

One network evaluation per sample: noise z ~ N(0, I) (never scaled), the sample's class id, and
the guidance settings (cfg, [t_min, t_max]) as conditioning; output ``clamp(x * 0.5 + 0.5, 0, 1)``
with gradients through the whole chain. The ImageNet post-training run (the paper's pMF-H
FD-SIM warm start) uses cfg 7.0 and the interval [0.2, 0.6].
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rdm_core.errors import ArtifactError, RecipeError, ShapeError
from rdm_core.interfaces import Conditions
from rdm_pmf.checkpoint import (
    LoadReport,
    convert_public_state,
    detect_layout,
    load_into,
    read_public,
    to_flax_style,
    write_public,
)
from rdm_pmf.config import PMFConfig, build_config
from rdm_pmf.network import Denoiser, sample, to_images

PRECISIONS = ("bf16", "fp32", "inherit")
LOAD_FORMATS = ("auto", "rdm", "public")
SAVE_FORMATS = ("rdm", "public", "public-flax")
PUBLIC_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


class PMFGenerator:
    """Implements :class:`rdm_core.interfaces.Generator` for the pMF networks.

    Args:
        preset: published size (``pmf-h``, the ImageNet warm start; also ``pmf-t/b/m/l/xl``).
        variant: ``full``, or ``tiny`` for the pMF-T network at 64 px with 8 classes (random
            weights, CPU tests and rehearsals).
        config: overrides of any network hyper-parameter by its public name (``img_size``,
            ``num_classes``, ``rope_2d``, ...).
        cfg: guidance scale ω fed as conditioning (no second pass).
        t_min, t_max: guidance interval fed as conditioning.
        num_steps: sampling steps (1: the one-step generator).
        precision: ``bf16`` autocast on CUDA devices as in the public wrapper (on CPU the network
            runs in fp32, which the public CUDA-only autocast also does); ``fp32`` never
            autocasts; ``inherit`` keeps the caller's autocast.
    """

    name = "pmf"

    @classmethod
    def rehearsal_args(cls, args: dict[str, Any], rehearsal: Any) -> dict[str, Any]:
        """``rdm run --rehearse``: the tiny variant of the same preset (no weights are read)."""
        return dict(args, variant="tiny")

    def __init__(
        self,
        preset: str = "pmf-h",
        variant: str = "full",
        config: dict[str, Any] | None = None,
        cfg: float = 7.0,
        t_min: float = 0.2,
        t_max: float = 0.6,
        num_steps: int = 1,
        precision: str = "bf16",
    ) -> None:
        if precision not in PRECISIONS:
            raise RecipeError(f"pmf precision {precision!r} is unknown.", f"use one of: {', '.join(PRECISIONS)}")
        if int(num_steps) < 1:
            raise RecipeError(f"pmf num_steps {num_steps} must be >= 1.", "use 1 for the one-step generator")
        if not 0.0 <= float(t_min) <= float(t_max) <= 1.0:
            raise RecipeError(
                f"pmf guidance interval [{t_min}, {t_max}] is not inside [0, 1] in order.",
                "use t_min <= t_max within [0, 1] (the ImageNet run: 0.2 and 0.6)",
            )
        if float(cfg) <= 0.0:
            raise RecipeError(f"pmf cfg {cfg} must be positive (it enters as 1 - 1/cfg).", "use e.g. 7.0")
        self.config: PMFConfig = build_config(preset, variant, config)
        self.args: dict[str, Any] = dict(
            preset=preset, variant=variant, config=dict(config or {}), cfg=float(cfg), t_min=float(t_min),
            t_max=float(t_max), num_steps=int(num_steps), precision=precision,
        )  # fmt: skip
        self.cfg, self.t_min, self.t_max, self.num_steps = float(cfg), float(t_min), float(t_max), int(num_steps)
        self.precision = precision
        self.model = Denoiser(self.config)
        self.load_report: LoadReport | None = None

    # -- the Generator protocol ---------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def noise_shape(self) -> tuple[int, ...]:
        c = self.config
        return (c.in_channels, c.img_size, c.img_size)

    def sample_conditions(self, n: int, rng: torch.Generator) -> Conditions:
        """``n`` class ids uniform in ``[0, num_classes)`` from ``rng`` (on ``rng``'s device)."""
        labels = torch.randint(0, self.num_classes, (n,), generator=rng, device=rng.device)
        return Conditions(inputs=labels)

    def conditions_from_classes(self, class_ids: Any) -> Conditions:
        """Conditions for given class ids (``num_classes`` itself is the null class)."""
        labels = torch.as_tensor(class_ids, dtype=torch.int64).reshape(-1)
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) > self.num_classes):
            raise ShapeError(
                f"pmf class ids must be in [0, {self.num_classes}] ({self.num_classes} = null class), "
                f"got {int(labels.min())}..{int(labels.max())}.",
                f"pass ImageNet-style class indices below {self.num_classes}",
            )
        return Conditions(inputs=labels)

    def generate(self, noise: Tensor, conditions: Conditions) -> Tensor:
        """One differentiable sample per noise row: ``[0, 1]`` images (B, 3, S, S)."""
        return to_images(self.sample_states(noise, conditions))

    def sample_states(self, noise: Tensor, conditions: Conditions) -> Tensor:
        """The sampler's output state in the network's [-1, 1] range, before the image map
        (what parity fixtures of the public sampler hold); differentiable."""
        labels = conditions.inputs if isinstance(conditions, Conditions) else conditions
        if noise.dim() != 4 or tuple(noise.shape[1:]) != self.noise_shape():
            raise ShapeError(
                f"pmf expects noise of shape (B, {', '.join(map(str, self.noise_shape()))}), got {tuple(noise.shape)}.",
                "draw noise with shape (B, *generator.noise_shape())",
            )
        if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.is_floating_point():
            raise ShapeError(
                "pmf conditions must be a 1-D integer tensor of class ids.",
                "use generator.sample_conditions(...) or conditions_from_classes(ids)",
            )
        if labels.shape[0] != noise.shape[0]:
            raise ShapeError(
                f"pmf got {noise.shape[0]} noise rows but {labels.shape[0]} class ids.", "pass one class id per sample"
            )
        param = next(self.model.parameters())
        noise = noise.to(device=param.device, dtype=param.dtype)
        labels = labels.to(device=param.device, dtype=torch.int64)
        was_training = self.model.training
        self.model.eval()  # no dropout or batch statistics: mirrors the public wrapper only
        try:
            with self._autocast(param.device):
                return sample(
                    self.model,
                    noise,
                    labels,
                    cfg=self.cfg,
                    t_min=self.t_min,
                    t_max=self.t_max,
                    num_steps=self.num_steps,
                )
        finally:
            self.model.train(was_training)

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        if self.precision == "inherit":
            return contextlib.nullcontext()
        on = self.precision == "bf16" and device.type == "cuda"
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=on)

    def trainable_module(self) -> nn.Module:
        """The denoiser (keys ``net.*``, exactly the public checkpoints' keys)."""
        return self.model

    def set_gradient_checkpointing(self, on: bool) -> None:
        """Recompute each block in the backward pass instead of keeping its activations."""
        self.model.net.gradient_checkpointing = bool(on)

    # -- weights ------------------------------------------------------------------------------
    def load_weights(self, path: str, format: str = "auto") -> LoadReport:
        """Load rdm safetensors (a file, checkpoint or run directory) or a public ``.pth``.

        ``auto`` reads ``.pth``/``.pt``/``.bin``/``.ckpt`` as public (either layout, converted)
        and everything else as rdm. Keys the model lacks (a v-head, EMA copies) are ignored and
        reported; missing keys and shape mismatches are refused.
        """
        if format not in LOAD_FORMATS:
            raise RecipeError(f"pmf cannot read weights format {format!r}.", f"use one of: {', '.join(LOAD_FORMATS)}")
        if format == "public" or (format == "auto" and Path(path).suffix.lower() in PUBLIC_SUFFIXES):
            raw = read_public(path)
            layout = detect_layout(raw)
            state, dropped = convert_public_state(raw)
            report = load_into(self.model, state, str(path), layout, dropped)
        else:
            report = self._load_rdm(path)
        self.load_report = report
        if report.unexpected or report.dropped:
            from rdm_core.console import err_console

            err_console.print(f"pmf weights: {report.summary()}", style="yellow")
        return report

    def _load_rdm(self, path: str) -> LoadReport:
        from rdm_core.artifacts import load_tensors
        from rdm_core.checkpoints import resolve_model_file

        file = resolve_model_file(path)
        state, meta = load_tensors(file)
        saved = meta.get("config")
        if isinstance(saved, dict) and saved != self.config.to_dict():
            diff = sorted(
                k for k in set(saved) | set(self.config.to_dict()) if saved.get(k) != self.config.to_dict().get(k)
            )
            raise ArtifactError(
                f"{file} was saved from another pmf configuration (differs in {', '.join(diff)}).",
                "use the generator args the weights were saved with",
            )
        report = load_into(self.model, state, str(file), "rdm", [])
        if report.unexpected:
            raise ArtifactError(f"{report.summary()}: rdm files hold exactly the model's keys.", "re-save the weights")
        return report

    def save_weights(self, path: str, format: str = "rdm", step: int = 0) -> None:
        """Write the weights: ``rdm`` (safetensors + config header), ``public`` (native ``.pth``)
        or ``public-flax`` (the PyTorch port's layout of the original pMF release)."""
        if format not in SAVE_FORMATS:
            raise RecipeError(f"pmf cannot write weights format {format!r}.", f"use one of: {', '.join(SAVE_FORMATS)}")
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        if format == "rdm":
            from rdm_core.artifacts import save_tensors

            save_tensors(path, state, {"generator": self.name, "config": self.config.to_dict(), "args": self.args})
            return
        if format == "public-flax":
            state = to_flax_style(state, self.model.net.rope)
        write_public(path, state, step)

    # -- planning -----------------------------------------------------------------------------
    @classmethod
    def plan_stats(
        cls,
        preset: str = "pmf-h",
        variant: str = "full",
        config: dict[str, Any] | None = None,
        num_steps: int = 1,
        **_: Any,
    ) -> dict[str, Any]:
        """Parameters and exact forward FLOPs per sample for ``rdm plan`` (meta device, no memory)."""
        from torch.utils.flop_counter import FlopCounterMode

        cfg = build_config(preset, variant, config)
        with torch.device("meta"):
            model = Denoiser(cfg)
            x = torch.empty(1, cfg.in_channels, cfg.img_size, cfg.img_size)
            scalars = [torch.ones(1) for _ in range(5)]
            with FlopCounterMode(display=False) as count:
                model(x, *scalars, torch.zeros(1, dtype=torch.int64))
        return {
            "params": sum(p.numel() for p in model.parameters()),
            "flops_per_sample": float(count.get_total_flops()) * int(num_steps),
            "tokens": cfg.seq_len,
            "blocks": cfg.shared_depth + cfg.aux_head_depth,
            "width": cfg.hidden_size,
        }
