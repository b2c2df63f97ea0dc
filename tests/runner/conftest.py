"""Fixtures for runner tests: tiny models written once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

from tests.support.bench_models import make_matmul_onnx, make_tflite


@pytest.fixture(scope="session")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_matmul_onnx(tmp_path_factory.mktemp("onnx") / "chain.onnx")


@pytest.fixture(scope="session")
def tflite_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tflite")
    return {precision: make_tflite(folder / f"dense.{precision}.tflite", precision) for precision in ("fp32", "int8")}
