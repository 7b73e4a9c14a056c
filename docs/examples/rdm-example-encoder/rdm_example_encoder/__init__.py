"""Example rdm plugin package (see docs/plugins.md)."""
