"""Entry point of the rdm_toy plugin: registrations only (cheap, no heavy imports).

The CPU demo's components: the ``digits`` data source, the ``digits-mlp`` one-step generator (and its
class-conditional twin ``digits-classcond``),
seven small frozen encoders (four for training, three held out) and the ``rdm toy`` command.
"""

from __future__ import annotations

from rdm_core import hookimpl
from rdm_core.registry import CommandSpec
from rdm_toy.specs import SPECS


@hookimpl
def rdm_register_encoders(registry) -> None:
    for name, spec in SPECS.items():
        registry.add(name, f"rdm_toy.encoders:{name}", spec=spec, help=f"toy ({spec.split}): {spec.notes}")


@hookimpl
def rdm_register_generators(registry) -> None:
    registry.add(
        "digits-mlp",
        "rdm_toy.generator:digits_mlp",
        help="small unconditional one-step MLP generator of 8x8 digits (CPU demo)",
    )
    registry.add(
        "digits-classcond",
        "rdm_toy.conditional:DigitsClassCondGenerator",
        help="class-conditional digits generator (10 classes + null row): the CPU twin of the ImageNet pmf run",
    )


@hookimpl
def rdm_register_data_sources(registry) -> None:
    registry.add(
        "digits",
        "rdm_toy.data:digits",
        help="scikit-learn's 1797 bundled 8x8 digits; seeded stratified train/val split",
    )


@hookimpl
def rdm_register_commands(registry) -> None:
    registry.add(
        "toy",
        "rdm_toy.cli:configure",
        spec=CommandSpec(help="CPU demo helpers: (re)train the toy encoders, check mode coverage."),
    )
