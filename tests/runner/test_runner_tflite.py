"""The runner on TFLite files with ai_edge_litert: fp32 and full int8, XNNPACK on and off."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.runner.test_runner import run_runner


@pytest.mark.parametrize("xnnpack", [True, False])
def test_fp32_runs_with_and_without_xnnpack(tflite_models: dict[str, Path], xnnpack: bool) -> None:
    args = ["--model", tflite_models["fp32"], "--runs", 10] + ([] if xnnpack else ["--no-xnnpack"])
    status, doc = run_runner(*args)
    assert status == 0 and doc["runtime"] == "litert" and doc["xnnpack"] is xnnpack
    assert len(doc["latencies_ns"]) == 10


def test_int8_inputs_are_generated_quantized(tflite_models: dict[str, Path]) -> None:
    status, doc = run_runner("--model", tflite_models["int8"], "--runs", 5)
    assert status == 0
    (spec,) = doc["inputs"]
    assert spec["dtype"] == "int8" and spec["quant"]["scale"] > 0


def test_float_inputs_for_an_int8_model_are_quantized_and_noted(tflite_models: dict[str, Path], tmp_path: Path) -> None:
    np.savez(tmp_path / "in.npz", x=np.full((1, 16), 0.5, np.float32))
    status, doc = run_runner(
        "--model",
        tflite_models["int8"],
        "--runs",
        1,
        "--inputs",
        tmp_path / "in.npz",
        "--outputs",
        tmp_path / "out.npz",
    )
    assert status == 0 and any("quantized from float32 to int8" in note for note in doc["notes"])
    assert np.load(tmp_path / "out.npz")[next(iter(np.load(tmp_path / "out.npz").files))].dtype == np.int8


def test_truncated_tflite_is_reported_corrupt(tflite_models: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(tflite_models["fp32"].read_bytes()[:64])
    status, doc = run_runner("--model", broken)
    assert status == 3 and doc["error"]["kind"] == "model_corrupt"
