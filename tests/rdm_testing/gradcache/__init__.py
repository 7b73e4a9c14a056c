"""Tiny generator, encoders, plugin and project builder for the GradCache trainer tests."""
