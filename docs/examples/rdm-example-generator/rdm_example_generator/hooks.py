"""Registration only: names, lazy factories and a recipe file. Nothing heavy is imported here."""

from __future__ import annotations

from rdm_core import hookimpl


@hookimpl
def rdm_register_generators(registry):
    registry.add(
        "example-conv",
        "rdm_example_generator.generator:ConvGenerator",
        help="small convolutional one-step generator of colour images (example plugin)",
    )


@hookimpl
def rdm_register_recipes(registry):
    # "package:path" points inside the installed package; rdm finds it without importing anything
    registry.add("example-digits", "rdm_example_generator:recipes/example-digits.yaml")
