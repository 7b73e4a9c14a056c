"""Fixtures shared by the MMD tests."""

from __future__ import annotations

import pytest

from rdm_mmd.kernels import GaussianKernel


@pytest.fixture
def gram_calls(monkeypatch):
    """(rows, cols) of every GaussianKernel.gram call: only the checkpoint path calls gram."""
    calls: list[tuple[int, int]] = []
    gram = GaussianKernel.gram

    def spy(self, x, y):
        calls.append((x.shape[0], y.shape[0]))
        return gram(self, x, y)

    monkeypatch.setattr(GaussianKernel, "gram", spy)
    return calls
