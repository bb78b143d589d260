"""Shared pytest fixtures: the shared data folder (skip when absent), seeded RNGs, the PyTorch backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """Path to ``../shared/data``; skips the test when the folder is absent (users' machines)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not available")
    return SHARED_DATA


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded random generator, so that every test is reproducible."""
    return np.random.default_rng(12345)


@pytest.fixture(autouse=True)
def torch_backend_by_default(monkeypatch):
    """Run ``backend="auto"`` on PyTorch in tests: tiny random models would each pay an ONNX export.

    Tests of the backend choice itself delete ``EVSEG_BACKEND`` with ``monkeypatch.delenv``.
    """
    monkeypatch.setenv("EVSEG_BACKEND", "torch")
