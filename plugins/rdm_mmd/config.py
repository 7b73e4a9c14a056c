"""The MMD objective's recipe section: ``objective: {name: mmd, distance, balance, joint}``.

Plain dataclasses and no torch: the recipe loader imports this module to type the section
(struct mode: a misspelled key fails naming the valid ones), and so does every command that
loads a recipe naming ``mmd``. The reference pipeline (``rdm reference build``) reads the same
settings through :func:`mmd_settings`, so a reference is built with exactly the kernel,
bandwidth and landmarks that training checks it against.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rdm_core.errors import RecipeError

if TYPE_CHECKING:  # pragma: no cover
    from rdm_core.interfaces import ObjectiveCost


@dataclass
class DistanceSettings:
    """How generated and reference features are compared, per encoder: the reference-set kind
    (``rdm plugins``: nystrom, exact, rff, frechet, sliced_wasserstein), its kernel and bandwidth
    rule, and the options of the build and of the loss."""

    reference: str = "nystrom"  # reference-set kind
    kernel: str = "gaussian"
    kernel_args: dict[str, Any] = field(default_factory=dict)
    bandwidth_scale: float = 1.0  # sigma = bandwidth_scale x median pairwise distance of the pool
    bandwidth_subsample: int = 10000  # rows of the seeded subsample behind the median heuristic
    landmarks: int = 4096  # Nystrom M
    seed: int = 0  # every subsample, k-means, the tau median
    gen_chunk: int = 8192  # rows per block of the exact within-batch repulsion
    args: dict[str, Any] = field(default_factory=dict)  # reference-kind build options


@dataclass
class BalanceSettings:
    """How per-encoder losses are combined: self-normalisation, then weights.

    ``uniform``: all weights 1. ``static``: ``weights``. ``controller``: the gated proportional
    Lagrangian with floors from the reference build (``docs/training.md``).
    """

    mode: str = "uniform"  # uniform | static | controller
    weights: dict[str, float] = field(default_factory=dict)
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
    total: float | None = None  # budget; None -> number of training encoders
    floors: str | None = None  # JSON file; None -> <references.dir>/floors.json
    floor_draws: int = 8  # real validation batches of N rows averaged into each floor


@dataclass
class JointSettings:
    """The joint image-text feature ``[phi(x) | beta * tau(c)]`` for text-to-image."""

    enabled: bool = False
    text_encoder: str = "siglip2_text"
    text_table: str | None = None  # tau rows aligned with the generator's prompt pool
    s_txt: float | None = 1.0  # beta = sigma_img / s_txt; None -> median of the tau table


@dataclass
class MMDSettings:
    """Squared MMD per training encoder against a frozen reference set, self-normalised and
    combined with uniform, static or controller weights; optionally on the joint image-text
    feature."""

    distance: DistanceSettings = field(default_factory=DistanceSettings)
    balance: BalanceSettings = field(default_factory=BalanceSettings)
    joint: JointSettings = field(default_factory=JointSettings)


BALANCE_MODES = ("uniform", "static", "controller")


def mmd_settings(recipe: Any, purpose: str = "building reference sets") -> Any:
    """``recipe.objective`` when its objective declares :class:`MMDSettings`.

    Raises:
        RecipeError: the recipe's objective has other settings (e.g. a third-party distance),
            so nothing defines a kernel, bandwidth or reference kind for ``purpose``.
    """
    from rdm_core.recipe.objective import objective_name, objective_spec, resolve_declared

    name = objective_name(recipe.objective)
    spec = objective_spec(name)
    declared = resolve_declared(spec.settings) if spec is not None and spec.settings is not None else None
    if not (isinstance(declared, type) and issubclass(declared, MMDSettings)):
        raise RecipeError(
            f"{purpose} needs the MMD objective's settings, but the recipe's objective is {name!r}.",
            "use objective.name: mmd (with objective.distance / balance / joint), or skip this step",
        )
    return recipe.objective


def check_recipe(recipe: Any) -> list[str]:
    """``rdm validate``'s checks of the MMD settings: names resolve, arguments bind, values make
    sense. Builds nothing and reads no file.

    Raises:
        RecipeError: naming the key and the fix.
    """
    from rdm_core.errors import UnknownNameError
    from rdm_core.plugins import registry
    from rdm_core.recipe.assemble import plain

    settings = mmd_settings(recipe, "the mmd objective")
    distance, balance = settings.distance, settings.balance
    try:
        registry("references").get(str(distance.reference))
        registry("kernels").check_args(str(distance.kernel), plain(distance.kernel_args) or {}, "objective.distance")
    except UnknownNameError as exc:
        raise RecipeError(f"objective.distance: {exc.problem}", exc.fix) from None
    if distance.bandwidth_scale <= 0:
        raise RecipeError(
            "objective.distance.bandwidth_scale must be positive.",
            "use e.g. 1.0 (or 0.25 for the cold klein kernel)",
        )
    if balance.mode not in BALANCE_MODES:
        raise RecipeError(
            f"objective.balance.mode = {balance.mode!r} is not allowed.", f"use one of: {', '.join(BALANCE_MODES)}"
        )
    if balance.mode == "static":
        unknown = set(plain(balance.weights)) - set(recipe.encoders.train)
        if unknown:
            raise RecipeError(
                f"objective.balance.weights names {sorted(unknown)}, not training encoders.",
                "weights apply to encoders.train entries only",
            )
    joint = " on the joint image-text feature" if settings.joint.enabled else ""
    return [f"objective mmd: {distance.reference} with {distance.kernel} kernel, {balance.mode} weights{joint}"]


# Width of the default text tower (SigLIP2 SO400M text), appended per encoder by the joint feature.
JOINT_TEXT_DIM = 1152


def plan_cost(recipe: Any, feature_dims: Mapping[str, int]) -> ObjectiveCost:
    """The loss's share of a step for ``rdm plan``: widths after joint coupling, the N x M cross
    kernel per encoder plus one repulsion block, and FLOPs of both Gram products and their
    gradients (forward + backward ~ 3 x 2 multiply-adds per entry and feature)."""
    from rdm_core.interfaces import ObjectiveCost

    settings = mmd_settings(recipe, "planning the mmd objective")
    distance = settings.distance
    n = int(recipe.train.rollout)
    text = JOINT_TEXT_DIM if settings.joint.enabled else 0
    dims = {name: int(dim) + text for name, dim in feature_dims.items()}
    m = int(distance.landmarks) if distance.reference == "nystrom" else n
    count = len(dims)
    loss_graph = 4 * n * m * count + 8 * n * min(n, int(distance.gen_chunk))
    flops = 6 * count * (n * n + n * m) * (sum(dims.values()) / max(1, count))
    return ObjectiveCost(
        feature_dims=dims,
        memory={"loss graph (N x M per encoder + one repulsion block)": float(loss_graph)},
        flops=float(flops),
    )
