"""Example rdm plugin package: a generator and a recipe (see docs/plugins.md)."""
