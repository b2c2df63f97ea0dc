"""The runner on an emulated Raspberry Pi: aarch64 CPython under qemu with the real aarch64 wheels,
both device flavours (ai-edge-litert + numpy 2; tflite-runtime 2.14 + numpy < 2). Correctness only:
no timing or memory figure is asserted under emulation."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.support.aarch64 import aarch64_root, install_python_wrapper
from tests.support.bench_models import RUNNER

pytestmark = [pytest.mark.aarch64, pytest.mark.slow]


def run_on_pi(flavour: str, *args: str | Path) -> tuple[int, dict]:
    """Through the same `python3` wrapper the SSH fixtures give their Pi users."""
    with tempfile.TemporaryDirectory() as bin_dir:
        python3 = install_python_wrapper(Path(bin_dir), aarch64_root(), flavour)
        completed = subprocess.run(
            [str(python3), str(RUNNER), *map(str, args)], check=False, capture_output=True, text=True, timeout=600
        )
        lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, completed.stdout + completed.stderr[-2000:]
    return completed.returncode, json.loads(lines[0])


@pytest.mark.parametrize(("flavour", "runtime", "numpy_major"), [("litert", "litert", "2"), ("tflite", "tflite", "1")])
def test_tflite_int8_on_both_pi_flavours(
    tflite_models: dict[str, Path], flavour: str, runtime: str, numpy_major: str
) -> None:
    status, doc = run_on_pi(flavour, "--model", tflite_models["int8"], "--runs", 5, "--warmup", 1, "--windows", 2)
    assert status == 0, doc
    assert doc["runtime"] == runtime and doc["versions"]["numpy"].split(".")[0] == numpy_major
    assert doc["env"]["machine"] == "aarch64" and len(doc["latencies_ns"]) == 5 and len(doc["windows"]) == 2
    assert doc["inputs"][0]["dtype"] == "int8"


def test_onnx_on_a_pi_without_onnxruntime_names_the_package(onnx_model: Path) -> None:
    status, doc = run_on_pi("tflite", "--model", onnx_model)
    assert status == 3 and doc["error"]["kind"] == "runtime_missing"
    assert "pip install onnxruntime" in doc["error"]["hint"]


@pytest.mark.parametrize("runtime", ["auto", "tflite"])
def test_tflite_runtime_under_numpy2_is_a_json_error_naming_the_fix(
    tflite_models: dict[str, Path], runtime: str
) -> None:
    """tflite-runtime 2.14 (built for numpy 1.x) with numpy 2 raises SystemError when the interpreter is made:
    the runner reports it as its JSON error with the two fixes, not as a traceback."""
    status, doc = run_on_pi("tflite-numpy2", "--model", tflite_models["fp32"], "--runtime", runtime, "--runs", 2)
    assert status == 3, doc
    assert doc["error"]["kind"] == "runtime_broken"
    assert "tflite-runtime cannot run with numpy 2." in doc["error"]["message"]
    assert "SystemError" in doc["error"]["message"]
    assert 'pip install "numpy<2"' in doc["error"]["hint"] and "ai-edge-litert" in doc["error"]["hint"]
