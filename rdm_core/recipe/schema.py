"""The structured schema of a recipe, one dataclass per section.

OmegaConf merges YAML into these in struct mode, so a misspelled key fails at once. Components
are named by registry name; plugin-specific options go in ``args`` mappings, which
``rdm validate`` checks against the factory's signature without building anything.

The ``objective`` section is typed by a plugin: its ``name`` picks a registered objective, and
every other key belongs to that objective, which declares their schema (a dataclass) in its
registration. The loader types the section with it, again in struct mode
(:mod:`rdm_core.recipe.objective`), so the core carries no distance-specific knob.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

DEFAULT_OBJECTIVE = "mmd"


@dataclass
class Component:
    """A registry name plus the keyword arguments its factory receives."""

    name: str = "???"
    args: Dict[str, Any] = field(default_factory=dict)


@dataclass
class RunSection:
    """Identity and placement of a run: ``<output_dir>/<name>`` is the run directory."""

    name: str = "run"
    output_dir: str = "runs"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda


@dataclass
class GeneratorSection:
    """The generator plugin and its weights."""

    name: str = "???"
    args: Dict[str, Any] = field(default_factory=dict)
    weights: Optional[str] = None  # base weights (warm start); the student is a run checkpoint
    weights_format: str = "auto"
    gradient_checkpointing: bool = False
    compile: bool = False


@dataclass
class EncodersSection:
    """The battery: training encoders (in the loss) and held-out ones (evaluation only)."""

    train: List[str] = field(default_factory=list)
    held_out: List[str] = field(default_factory=list)
    variant: str = "full"  # full | tiny (random-weight stand-ins of the same classes)
    weights: Dict[str, str] = field(default_factory=dict)  # encoder -> local weights path
    args: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # encoder -> extra factory args
    batch_size: int = 64  # extraction chunk for reference building and evaluation


@dataclass
class ReferencesSection:
    """Where reference sets live and what they are built from (``rdm reference build``)."""

    dir: str = "refs"
    train: Component = field(default_factory=Component)  # image source for the reference pool
    val: Optional[Component] = None  # held-out real images: floors and evaluation banks
    resolution: int = 256
    batch_size: int = 64
    shard_size: int = 4096
    filters: List[Component] = field(default_factory=list)
    eval_bank_size: int = 16384


@dataclass
class TrainSection:
    """The optimisation: rollout N = micro_batch x world_size x chunks per step."""

    trainer: str = "gradcache"
    steps: int = 100
    rollout: int = 1024
    micro_batch: int = 8
    chunks: Optional[int] = None  # derived from rollout / (micro_batch x world_size) when None
    lr: float = 1e-4
    betas: List[float] = field(default_factory=lambda: [0.9, 0.95])
    weight_decay: float = 0.0
    eps: float = 1e-8
    grad_clip: float = 2.0
    schedule: str = "constant"  # constant | cosine
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    precision: str = "bf16"  # bf16 (autocast) | fp32 | fp64
    checkpoint_every: int = 100
    keep_checkpoints: int = 3
    sample_every: int = 0  # 0 -> only at checkpoints
    sample_count: int = 64
    # prompts the generate stage of `rdm run` renders, one sample each (prompt-conditioned generators)
    sample_prompts: List[str] = field(default_factory=list)
    log_every: int = 1
    fsdp: bool = False
    compile: bool = False
    # stop after the first step at which this run segment's training-step CPU seconds
    # (time.process_time) exceed it; None: run all train.steps
    max_seconds: Optional[float] = None
    # stop (non-zero exit) after this many consecutive steps with a non-finite loss or gradient
    max_nonfinite_steps: int = 10


@dataclass
class EvalSection:
    """Off-objective evaluation (``rdm eval``)."""

    metrics: List[str] = field(default_factory=lambda: ["sw_r14"])
    num_samples: int = 16384
    batch_size: int = 64
    seed: int = 0
    args: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # metric -> options


@dataclass
class PluginsSection:
    """Deliberate use of components a plugin offers as replacements of another plugin's.

    ``replace`` maps ``KIND.NAME`` (``encoders.digits_cnn``) to the plugin whose replacement is
    used; the plugin must offer it (``registry.add(..., replace=True)``, see ``rdm components``).
    """

    replace: Dict[str, str] = field(default_factory=dict)


@dataclass
class Recipe:
    """A whole recipe. ``extends`` names a parent recipe: a path relative to this one, or a recipe name."""

    extends: Optional[str] = None
    description: str = ""
    run: RunSection = field(default_factory=RunSection)
    generator: GeneratorSection = field(default_factory=GeneratorSection)
    encoders: EncodersSection = field(default_factory=EncodersSection)
    references: ReferencesSection = field(default_factory=ReferencesSection)
    # ``name`` plus the named objective's own settings, typed by the schema it declares
    # (rdm_core.recipe.objective); free-form only while YAML layers and overrides are merged.
    objective: Any = field(default_factory=lambda: {"name": DEFAULT_OBJECTIVE})
    train: TrainSection = field(default_factory=TrainSection)
    eval: EvalSection = field(default_factory=EvalSection)
    plugins: PluginsSection = field(default_factory=PluginsSection)
