"""Shared test settings: keep every test away from the user's real history, caches and inventory."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path_factory.getbasetemp() / "edgekd-state"
    state.mkdir(exist_ok=True)
    monkeypatch.setenv("EDGEKD_HISTORY", str(state / "history.sqlite"))
    monkeypatch.delenv("EDGEKD_TARGETS", raising=False)


# Quiet TensorFlow's C++ logging in every test process.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
