"""The structured schema of a recipe, one dataclass per section.

OmegaConf merges YAML into these in struct mode, so a misspelled key fails at once. Components
are named by registry name; plugin-specific options go in ``args`` mappings, which
``rdm validate`` checks against the factory's signature without building anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional


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
class JointSection:
    """The joint image-text feature ``[phi(x) | beta * tau(c)]`` for text-to-image."""

    enabled: bool = False
    text_encoder: str = "siglip2_text"
    text_table: Optional[str] = None  # tau rows aligned with the generator's prompt pool
    s_txt: Optional[float] = 1.0  # beta = sigma_img / s_txt; None -> median of the tau table


@dataclass
class DistanceSection:
    """How generated and reference features are compared, per encoder."""

    reference: str = "nystrom"  # reference-set kind: nystrom | exact | rff | frechet | sliced_wasserstein
    kernel: str = "gaussian"
    kernel_args: Dict[str, Any] = field(default_factory=dict)
    bandwidth_scale: float = 1.0
    bandwidth_subsample: int = 10000
    landmarks: int = 4096
    seed: int = 0
    gen_chunk: int = 8192
    args: Dict[str, Any] = field(default_factory=dict)  # reference-kind options


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
    floor_draws: int = 8


@dataclass
class BalanceSection:
    """How per-encoder losses are combined: self-normalisation, then weights.

    ``uniform``: all weights 1. ``static``: ``weights``. ``controller``: the gated proportional
    Lagrangian (docs/method.md) with floors from the reference build.
    """

    mode: str = "uniform"  # uniform | static | controller
    weights: Dict[str, float] = field(default_factory=dict)
    eps: float = 1e-7
    kp: float = 1.0
    ki: float = 0.0
    kd: float = 0.0
    ema_beta: float = 0.5
    temperature: float = 2.0
    cost_clip: float = 5.0
    lambda_max: float = 10.0
    softmax: bool = True
    normalized: bool = False
    total: Optional[float] = None  # budget; None -> number of training encoders
    floors: Optional[str] = None  # JSON file; None -> <references.dir>/floors.json


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
    log_every: int = 1
    fsdp: bool = False
    compile: bool = False
    # stop after the first step at which this run segment's training-step CPU seconds
    # (time.process_time) exceed it; None: run all train.steps
    max_seconds: Optional[float] = None


@dataclass
class EvalSection:
    """Off-objective evaluation (``rdm eval``)."""

    metrics: List[str] = field(default_factory=lambda: ["sw_r14"])
    num_samples: int = 16384
    batch_size: int = 64
    seed: int = 0
    args: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # metric -> options


@dataclass
class Recipe:
    """A whole recipe. ``extends`` names a parent recipe file (relative to this one)."""

    extends: Optional[str] = None
    description: str = ""
    run: RunSection = field(default_factory=RunSection)
    generator: GeneratorSection = field(default_factory=GeneratorSection)
    encoders: EncodersSection = field(default_factory=EncodersSection)
    joint: JointSection = field(default_factory=JointSection)
    distance: DistanceSection = field(default_factory=DistanceSection)
    references: ReferencesSection = field(default_factory=ReferencesSection)
    balance: BalanceSection = field(default_factory=BalanceSection)
    train: TrainSection = field(default_factory=TrainSection)
    eval: EvalSection = field(default_factory=EvalSection)
