"""Run a reference build in a separate process (the kill-and-resume test SIGKILLs it):
``python -m rdm_testing.references.build_script RECIPE [ENCODERS]``."""

from __future__ import annotations

import sys

from rdm_core.recipe.load import load_recipe
from rdm_references.pipeline import build_references
from rdm_testing.references import refplugin

if __name__ == "__main__":
    refplugin.install()
    build_references(load_recipe(sys.argv[1]), encoders=sys.argv[2] if len(sys.argv) > 2 else None)
    print("BUILD DONE", flush=True)
