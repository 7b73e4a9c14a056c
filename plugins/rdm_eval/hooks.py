"""Entry point of the rdm_eval plugin: registrations only (cheap, no heavy imports).

Evaluation is strictly off-objective: nothing in this package imports the training plugins
(rdm_gradcache, rdm_mmd); ``tests/eval`` enforces it.
"""

from __future__ import annotations

from rdm_core import hookimpl
from rdm_core.registry import CommandSpec, Registry


@hookimpl
def rdm_register_metrics(registry: Registry) -> None:
    registry.add(
        "sw_r14",
        "rdm_eval.metrics:SlicedWassersteinRatio",
        help="mean over encoders of SW_2(gen, train) / SW_2(val, train); real val = 1",
    )
    registry.add(
        "mmd_r14",
        "rdm_eval.metrics:RffMmdRatio",
        help="mean over encoders of the RFF-MMD ratio m(gen) / m(val) (D 4096, seed 99999)",
    )
    registry.add(
        "pickscore",
        "rdm_eval.pickscore:PickScoreMetric",
        help="mean PickScore (PickScore_v1) and matched-pair win rate vs a baseline",
    )
    registry.add(
        "class_accuracy",
        "rdm_eval.class_accuracy:ClassAccuracy",
        help="class-conditional generators: share of seeded samples a fixed classifier assigns to their class",
    )
    registry.add(
        "geneval",
        "rdm_eval.geneval_scoring:GenEvalMetric",
        help="GenEval: seeded render, external scorer, overall = mean of the six task rates",
    )


@hookimpl
def rdm_register_stages(registry: Registry) -> None:
    registry.add("eval", "rdm_eval.run_stage:EvalStage", help="every metric of eval.metrics on the latest checkpoint")


@hookimpl
def rdm_register_commands(registry: Registry) -> None:
    registry.add(
        "eval",
        "rdm_eval.cli:configure",
        spec=CommandSpec(help="Off-objective evaluation: SW_r14, MMD_r14, PickScore, GenEval."),
    )
