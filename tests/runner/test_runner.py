"""The device runner as a subprocess of this machine's Python, exactly as a target runs it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.runner.bench_models import RUNNER

ALLOWED_IMPORTS = {"argparse", "hashlib", "json", "os", "platform", "sys", "time", "resource", "numpy",
                   "ai_edge_litert", "tflite_runtime", "onnxruntime"}


def run_runner(*args: str | Path, python: str = sys.executable) -> tuple[int, dict[str, Any]]:
    completed = subprocess.run([python, str(RUNNER), *map(str, args)], capture_output=True, text=True, timeout=120)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, completed.stdout + completed.stderr  # exactly one JSON document
    return completed.returncode, json.loads(lines[0])


def test_runner_is_python39_and_imports_only_stdlib_numpy_and_runtimes() -> None:
    source = RUNNER.read_text()
    tree = ast.parse(source, feature_version=(3, 9))  # rejects match, X | Y in annotations is still allowed
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            assert not any(isinstance(side, ast.Name) and side.id in ("str", "int", "None", "float")
                           for side in (node.left, node.right)), "X | Y types need Python 3.10"
    assert imported <= ALLOWED_IMPORTS, imported - ALLOWED_IMPORTS
    assert "from __future__" not in source


def test_onnx_run_reports_contract_fields(onnx_model: Path) -> None:
    status, doc = run_runner("--model", onnx_model, "--runs", 25, "--warmup", 2)
    assert status == 0
    assert doc["schema"] == "edgekd.run/1" and doc["runtime"] == "ort"
    assert len(doc["latencies_ns"]) == 25 and all(isinstance(x, int) and x > 0 for x in doc["latencies_ns"])
    assert doc["init_ms"] > 0 and doc["first_ms"] > 0
    assert doc["peak_rss_kb"] > 10_000  # numpy + onnxruntime are loaded: tens of MiB
    assert doc["versions"]["numpy"] == np.__version__
    assert doc["model_sha256"] and len(doc["model_sha256"]) == 64
    assert doc["inputs"] == [{"name": "x", "shape": [1, 64], "dtype": "float32", "quant": None}]
    for key in ("cpu_model", "cpu_count", "affinity", "governor", "temps_c", "python", "machine"):
        assert key in doc["env"]


def test_sustained_windows_split_runs(onnx_model: Path) -> None:
    status, doc = run_runner("--model", onnx_model, "--runs", 30, "--windows", 3, "--warmup", 0)
    assert status == 0
    assert [(w["start"], w["end"]) for w in doc["windows"]] == [(0, 10), (10, 20), (20, 30)]
    assert all("temps_c" in w for w in doc["windows"])


def test_duration_mode_runs_until_time_is_up(onnx_model: Path) -> None:
    status, doc = run_runner("--model", onnx_model, "--duration", 0.2, "--warmup", 0)
    assert status == 0 and len(doc["latencies_ns"]) > 10


def test_zero_runs_is_a_reference_invocation(onnx_model: Path) -> None:
    status, doc = run_runner("--model", onnx_model, "--runs", 0)
    assert status == 0 and doc["latencies_ns"] == [] and doc["first_ms"] > 0


def test_outputs_are_written_and_match_onnxruntime(onnx_model: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    x = np.random.default_rng(1).standard_normal((1, 64)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    status, _ = run_runner("--model", onnx_model, "--runs", 1, "--inputs", tmp_path / "in.npz",
                           "--outputs", tmp_path / "out.npz")
    assert status == 0
    expected = ort.InferenceSession(str(onnx_model)).run(None, {"x": x})[0]
    np.testing.assert_allclose(np.load(tmp_path / "out.npz")["y"], expected, rtol=1e-6)


def test_pinning_sets_affinity(onnx_model: Path) -> None:
    status, doc = run_runner("--model", onnx_model, "--runs", 3, "--pin", "0")
    assert status == 0 and doc["env"]["affinity"] == [0]


def test_baseline_loads_runtime_without_a_model() -> None:
    status, doc = run_runner("--baseline", "--runtime", "ort")
    assert status == 0 and doc["baseline"] is True and doc["peak_rss_kb"] > 0 and doc["latencies_ns"] == []


@pytest.mark.parametrize(
    ("args", "kind", "needle"),
    [
        (["--model", "/nonexistent/m.onnx"], "model_missing", "does not exist"),
        (["--model", "{corrupt}"], "model_corrupt", "cannot load"),
        (["--model", "{onnx}", "--runtime", "tflite"], "runtime_missing", "tflite-runtime"),
        (["--model", "{onnx}", "--inputs", "{wrong_shape}"], "bad_inputs", "shape [1, 63]"),
        (["--model", "{onnx}", "--inputs", "{wrong_dtype}"], "bad_inputs", "dtype int32"),
        (["--model", "{onnx}", "--inputs", "{wrong_name}"], "bad_inputs", "no array for input 'x'"),
        (["--model", "{onnx}", "--inputs", "/nonexistent.npz"], "inputs_missing", "does not exist"),
        (["--model", "{onnx}", "--bogus"], "bad_arguments", "--bogus"),
        (["--model", "{onnx}", "--windows", "1"], "bad_arguments", "--windows"),
    ],
)
def test_bad_input_gives_a_json_error_document(
    onnx_model: Path, tmp_path: Path, args: list[str], kind: str, needle: str
) -> None:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(onnx_model.read_bytes()[:200])
    arrays = {"wrong_shape": {"x": np.zeros((1, 63), np.float32)}, "wrong_dtype": {"x": np.zeros((1, 64), np.int32)},
              "wrong_name": {"a": np.zeros((1, 64), np.float32), "b": np.zeros((1, 64), np.float32)}}
    paths = {"corrupt": corrupt, "onnx": onnx_model}
    for name, content in arrays.items():
        np.savez(tmp_path / f"{name}.npz", **content)
        paths[name] = tmp_path / f"{name}.npz"
    status, doc = run_runner(*[a.format(**paths) for a in args])
    assert status == 3
    assert set(doc) == {"schema", "error"} and doc["error"]["kind"] == kind
    assert needle in doc["error"]["message"] + (doc["error"]["hint"] or ""), doc


def test_missing_numpy_names_the_package(onnx_model: Path, tmp_path: Path) -> None:
    """A device Python without numpy (simulated with -S -I: no site-packages) gets a clear error."""
    completed = subprocess.run([sys.executable, "-S", "-I", str(RUNNER), "--model", str(onnx_model)],
                               capture_output=True, text=True, timeout=60)
    doc = json.loads(completed.stdout.strip().splitlines()[-1])
    assert completed.returncode == 3 and doc["error"]["kind"] == "numpy_missing"
    assert "pip install numpy" in doc["error"]["hint"]
