"""The in-process plugin and build script of the reference-build tests."""
