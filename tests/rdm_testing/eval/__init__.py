"""Tiny components and on-disk fixtures of the evaluation tests."""
