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

from tests.support.bench_models import RUNNER

STDLIB = {"argparse", "array", "hashlib", "json", "os", "platform", "sys", "tempfile", "time", "resource", "warnings"}
# flatbuffers: installed with ai-edge-litert, imported only by the LiteRT op-by-op profile (--profile)
ALLOWED_IMPORTS = STDLIB | {"numpy", "ai_edge_litert", "tflite_runtime", "onnxruntime", "flatbuffers"}


def run_runner(*args: str | Path, python: str = sys.executable) -> tuple[int, dict[str, Any]]:
    completed = subprocess.run(
        [python, str(RUNNER), *map(str, args)], check=False, capture_output=True, text=True, timeout=120
    )
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
            assert not any(
                isinstance(side, ast.Name) and side.id in ("str", "int", "None", "float")
                for side in (node.left, node.right)
            ), "X | Y types need Python 3.10"
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
    for key in ("cpu_model", "cpu_count", "affinity", "governor", "thermal_zones", "python", "machine"):
        assert key in doc["env"]


def test_sustained_windows_split_runs(onnx_model: Path) -> None:
    status, doc = run_runner("--model", onnx_model, "--runs", 30, "--windows", 3, "--warmup", 0)
    assert status == 0
    assert [(w["start"], w["end"]) for w in doc["windows"]] == [(0, 10), (10, 20), (20, 30)]
    assert all("thermal_zones" in w and isinstance(w["freq_khz"], dict) for w in doc["windows"])


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
    status, _ = run_runner(
        "--model", onnx_model, "--runs", 1, "--inputs", tmp_path / "in.npz", "--outputs", tmp_path / "out.npz"
    )
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
    arrays = {
        "wrong_shape": {"x": np.zeros((1, 63), np.float32)},
        "wrong_dtype": {"x": np.zeros((1, 64), np.int32)},
        "wrong_name": {"a": np.zeros((1, 64), np.float32), "b": np.zeros((1, 64), np.float32)},
    }
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
    completed = subprocess.run(
        [sys.executable, "-S", "-I", str(RUNNER), "--model", str(onnx_model)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    doc = json.loads(completed.stdout.strip().splitlines()[-1])
    assert completed.returncode == 3 and doc["error"]["kind"] == "numpy_missing"
    assert "pip install numpy" in doc["error"]["hint"]


FAKE_BROKEN_RUNTIME = """
raise SystemError("<built-in method CreateWrapperFromFile of PyCapsule object> returned a result with an exception set")
"""


def test_a_runtime_that_raises_at_import_is_a_json_error(tflite_models: dict[str, Path], tmp_path: Path) -> None:
    """Any exception while importing the runtime (here SystemError, as tflite-runtime 2.14 built for numpy 1.x
    raises it under numpy 2) ends in the runner's JSON error naming the fix, not a traceback without JSON."""
    package = tmp_path / "site" / "tflite_runtime"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(FAKE_BROKEN_RUNTIME)
    (package / "interpreter.py").write_text("")
    env = {"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"}
    completed = subprocess.run(
        [sys.executable, str(RUNNER), "--model", str(tflite_models["fp32"]), "--runtime", "tflite"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    assert completed.returncode == 3 and len(lines) == 1, completed.stdout + completed.stderr
    error = json.loads(lines[0])["error"]
    assert error["kind"] == "runtime_broken"
    # numpy here is 2.x, as on the device where tflite-runtime 2.14's wheel raises this at import
    assert error["message"].startswith("tflite-runtime cannot run with numpy 2.") and "SystemError" in error["message"]
    assert 'pip install "numpy<2"' in error["hint"] and "ai-edge-litert" in error["hint"]


@pytest.mark.parametrize(
    ("args", "kind", "text"),
    [
        (["--runs", "1000000000000"], "bad_arguments", "--runs/--warmup 1000000000000 is more than 1000000"),
        (["--shape", "x=1,0"], "bad_arguments", "is not a shape"),
        (["--shape", "y=1,64"], "bad_arguments", "--shape names input y"),
        (["--shape", "x=1,63"], "bad_inputs", "input 'x' has shape [1, 63] from --shape, the model expects [1, 64]"),
    ],
)
def test_bad_runs_and_shapes_are_refused(onnx_model: Path, args: list[str], kind: str, text: str) -> None:
    status, doc = run_runner("--model", onnx_model, *args)
    assert status == 3 and doc["error"]["kind"] == kind and text in doc["error"]["message"], doc


def test_symbolic_dims_need_a_shape_and_the_shape_is_recorded(tmp_path: Path) -> None:
    """An ONNX image model with symbolic height/width: never benchmarked as 1x1; --shape or the --inputs
    array gives the size, a symbolic batch dimension alone becomes 1 with a note."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["image"], ["out"])],
        "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "height", "width"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3, "height", "width"])],
    )
    model = tmp_path / "symbolic.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model)
    status, doc = run_runner("--model", model, "--runs", 2)
    assert status == 3 and doc["error"]["kind"] == "shape_unknown", doc
    assert doc["error"]["message"] == (
        "input 'image' has symbolic dimensions ['N', 3, 'height', 'width']: the shape to benchmark cannot be known"
    )
    assert "--shape image=1,3,<height>,<width>" in doc["error"]["hint"]
    status, doc = run_runner("--model", model, "--runs", 2, "--shape", "image=1,3,32,24")
    assert status == 0 and doc["input_shapes"] == {"image": [1, 3, 32, 24]}, doc
    np.savez(tmp_path / "in.npz", image=np.zeros((2, 3, 8, 8), np.float32))
    status, doc = run_runner("--model", model, "--runs", 2, "--inputs", tmp_path / "in.npz")
    assert status == 0 and doc["input_shapes"] == {"image": [2, 3, 8, 8]}, doc
    flat = tmp_path / "batch.onnx"
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 16])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), flat)
    status, doc = run_runner("--model", flat, "--runs", 2)
    assert status == 0 and doc["input_shapes"] == {"x": [1, 16]}
    assert "input 'x': batch dimension batch set to 1" in doc["notes"]


def test_runs_are_kept_in_a_preallocated_array() -> None:
    from importlib import util

    spec = util.spec_from_file_location("edgekd_runner_under_test", RUNNER)
    runner = util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    calls = []
    latencies, bounds = runner.timed_loop(lambda: calls.append(1), 7, None, 2)
    assert len(latencies) == 7 == len(calls) and all(isinstance(x, int) and x >= 0 for x in latencies)
    assert [(b["start"], b["end"]) for b in bounds] == [(0, 3), (3, 7)]
