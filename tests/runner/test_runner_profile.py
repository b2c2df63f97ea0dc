"""The runner's --profile: per-op rows from ONNX Runtime's own profiler, on x86 and under the aarch64 qemu flavour.

The rows are checked for the op set the graph holds (MatMul and Relu per layer, on the CPU provider) and for
fitting inside the traced runs; no timing is asserted (how close they come to the unprofiled median is a
figure of bench/suites/profile.py). The profiler's own overhead, measured here by the same runner (3 × MatMul 512 +
Relu, one thread, x86): the profiled session's median is about +30 % over the unprofiled one (0.145 vs
0.111 ms), about 5-7 µs per node per inference, while the per-op rows (interquartile mean) sum to 1.00-1.02×
the unprofiled median, since ORT's node timings leave the per-run session overhead out.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.runner.test_runner import run_runner
from tests.support.bench_models import RUNNER, make_matmul_onnx

RECORDED_TRACE = Path(__file__).with_name("recordings") / "ort_trace_conv_stack.json"
#: The aarch64 ORT wheel the emulated Pi gets (the host's onnxruntime version, so both parse alike).
AARCH64_ORT = "onnxruntime==1.32.0"


def _runner_module() -> Any:
    spec = importlib.util.spec_from_file_location("edgekd_runner_copy", RUNNER)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def matmul_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 512-wide MatMul + Relu layers: large enough that the profiler's per-node cost is small."""
    return make_matmul_onnx(tmp_path_factory.mktemp("profile") / "chain512.onnx", layers=3, size=512)


def test_the_library_summarises_a_recorded_trace_with_the_runners_code() -> None:
    """One implementation: edgekd.profile.ort_trace calls the runner's summarize_ort_trace (the runner cannot
    import edgekd): same result on a trace recorded from onnxruntime 1.32 (2 convs, fused nodes, 6 runs)."""
    from edgekd.profile.ort_trace import STATISTIC, summarize_ort_trace

    events = json.loads(RECORDED_TRACE.read_text())
    runner = _runner_module()
    for warmup in (0, 1, 4, 10):
        assert runner.summarize_ort_trace(events, warmup_runs=warmup) == summarize_ort_trace(events, warmup_runs=warmup)
    summary = summarize_ort_trace(events, warmup_runs=1)
    assert summary["rows"] and summary["statistic"] == STATISTIC and len(summary["run_ns"]) == 5


def _check_rows(doc: dict[str, Any], layers: int) -> list[dict[str, Any]]:
    rows = doc["op_profile"]["rows"]
    assert [row["op_type"] for row in rows] == ["MatMul", "Relu"] * layers
    assert {row["provider"] for row in rows} == {"CPUExecutionProvider"}
    assert all(row["calls"] == 1.0 and row["ms"] > 0 for row in rows)
    assert doc["providers"] == ["CPUExecutionProvider"] and doc["requested_providers"] == ["CPUExecutionProvider"]
    return rows


def test_profile_rows_on_x86_have_the_graphs_ops_and_sum_to_the_median(matmul_model: Path) -> None:
    status, doc = run_runner("--model", matmul_model, "--runs", 200, "--warmup", 10, "--profile")
    assert status == 0, doc
    rows = _check_rows(doc, layers=3)
    assert doc["op_profile"]["runs"] == 200 and doc["op_profile"]["statistic"] == "interquartile mean"
    assert len(doc["latencies_ns"]) == 200 and len(doc["profile_latencies_ns"]) == 200
    # Structure, not timing: the node times come from the same traced runs as `run_ns`, and a sequential
    # executor's nodes of one run fit inside that run. How close the rows come to the unprofiled median (the
    # issue's 25 %) is measured in bench/ (bench/results/profile.json: 1.00-1.04 on this model), not asserted
    # here: an unprofiled and a profiled session on a shared host differ by more than that at random.
    total = sum(row["ms"] for row in rows)
    assert 0 < total <= max(doc["op_profile"]["run_ns"]) / 1e6, (total, doc["op_profile"]["run_ns"][:5])


def test_profile_leaves_no_trace_file_behind(matmul_model: Path, tmp_path: Path) -> None:
    """The trace is written beside the runner (the target's work dir) and removed after reading."""
    runner = tmp_path / "edgekd_runner.py"
    runner.write_bytes(RUNNER.read_bytes())
    completed = subprocess.run(
        [sys.executable, str(runner), "--model", str(matmul_model), "--runs", "3", "--profile"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert json.loads(completed.stdout.strip().splitlines()[-1])["op_profile"]["runs"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edgekd_runner.py"]


def test_duration_mode_profiles_as_many_runs_as_were_timed_and_says_so(matmul_model: Path) -> None:
    status, doc = run_runner("--model", matmul_model, "--duration", 0.1, "--warmup", 1, "--profile")
    assert status == 0
    assert doc["op_profile"]["runs"] == min(len(doc["latencies_ns"]), 1000)
    assert doc["profile_note"].startswith("profiled ")


def test_without_profile_the_document_has_no_profile_fields(onnx_model: Path) -> None:
    status, doc = run_runner("--model", onnx_model, "--runs", 3)
    assert status == 0
    assert not {"op_profile", "profile_unavailable", "profile_latencies_ns"} & set(doc)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_tflite_profile_times_every_operator_as_a_model_of_its_own(
    tflite_models: dict[str, Path], precision: str
) -> None:
    """LiteRT's Python interpreter has no per-op profiler: the runner builds a one-operator model per node
    (from TensorFlow's converter output, not edgekd's) and times it; the rows are the file's operators in
    order, XNNPACK took them (the default delegate), and the whole model's median is recorded beside them."""
    status, doc = run_runner("--model", tflite_models[precision], "--runs", 30, "--warmup", 2, "--profile")
    assert status == 0, doc
    rows = doc["op_profile"]["rows"]
    assert [row["op_type"] for row in rows] == ["FULLY_CONNECTED", "FULLY_CONNECTED"]
    assert {row["provider"] for row in rows} == {"XNNPACK"} and doc["requested_providers"] == ["XNNPACK"]
    assert all(row["ms"] >= 0 and row["calls"] == 1.0 for row in rows)
    assert doc["op_profile"]["statistic"] == "median, invoke overhead subtracted"
    assert doc["op_profile"]["invoke_overhead_ms"] > 0 and doc["op_profile"]["whole_model_median_ms"] > 0
    assert "op by op" in doc["profile_source"] and "profile_unavailable" not in doc


def test_tflite_profile_without_xnnpack_runs_on_the_builtin_kernels(tflite_models: dict[str, Path]) -> None:
    status, doc = run_runner("--model", tflite_models["fp32"], "--runs", 10, "--no-xnnpack", "--profile")
    assert status == 0, doc
    assert {row["provider"] for row in doc["op_profile"]["rows"]} == {"CPU"}
    assert doc["requested_providers"] == ["CPU"]


def _aarch64_ort() -> Path:
    """The real aarch64 onnxruntime wheel for the emulated Pi (cp311), installed once beside the aarch64 root."""
    from tests.support.aarch64 import root_dir

    target = root_dir().parent / ("aarch64-" + AARCH64_ORT.replace("==", "-"))
    if (target / "onnxruntime").is_dir():
        return target
    work = Path(tempfile.mkdtemp(prefix=".ort-", dir=target.parent))
    platforms = [
        arg
        for tag in (
            "manylinux2014_aarch64",
            "manylinux_2_17_aarch64",
            "manylinux_2_27_aarch64",
            "manylinux_2_28_aarch64",
        )
        for arg in ("--platform", tag)
    ]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            "--target",
            str(work),
            "--only-binary=:all:",
            "--implementation",
            "cp",
            "--python-version",
            "3.11",
            "--abi",
            "cp311",
            *platforms,
            "--no-deps",
            AARCH64_ORT,
        ],
        check=True,
        env={**os.environ, "PIP_CONSTRAINT": ""},
        timeout=600,
    )
    try:
        work.rename(target)
    except OSError:  # another process installed it first
        pass
    return target


@pytest.mark.aarch64
@pytest.mark.slow
def test_profile_rows_under_the_aarch64_qemu_flavour(onnx_model: Path) -> None:
    """aarch64 CPython under qemu (the litert Pi 5 flavour's numpy 2 + the real aarch64 onnxruntime wheel):
    the same op set; no timing is asserted under emulation."""
    from tests.support.aarch64 import aarch64_root, flavour_env, qemu_python_argv

    root = aarch64_root()
    env = flavour_env(root, "litert")
    env["PYTHONPATH"] = f"{_aarch64_ort()}{os.pathsep}{env['PYTHONPATH']}"
    completed = subprocess.run(
        [
            *qemu_python_argv(root, "litert"),
            str(RUNNER),
            "--model",
            str(onnx_model),
            "--runs",
            "5",
            "--warmup",
            "1",
            "--profile",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **env},
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    assert completed.returncode == 0 and len(lines) == 1, completed.stdout + completed.stderr[-2000:]
    doc = json.loads(lines[0])
    assert doc["env"]["machine"] == "aarch64" and doc["runtime"] == "ort"
    _check_rows(doc, layers=1)
    assert doc["op_profile"]["runs"] == 5


@pytest.mark.aarch64
@pytest.mark.slow
def test_tflite_op_by_op_profile_under_the_aarch64_qemu_flavour(tflite_models: dict[str, Path]) -> None:
    """The real aarch64 ai-edge-litert wheel under qemu: its own flatbuffer schema rebuilds the one-operator
    models there; the same operators in order (no timing asserted under emulation)."""
    from tests.support.aarch64 import aarch64_root, flavour_env, qemu_python_argv

    root = aarch64_root()
    completed = subprocess.run(
        [*qemu_python_argv(root, "litert"), str(RUNNER), "--model", str(tflite_models["int8"]), "--runs", "5",
         "--warmup", "1", "--profile"],
        capture_output=True, text=True, timeout=600, env={**os.environ, **flavour_env(root, "litert")}, check=False,
    )  # fmt: skip
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    assert completed.returncode == 0 and len(lines) == 1, completed.stdout + completed.stderr[-2000:]
    doc = json.loads(lines[0])
    assert doc["env"]["machine"] == "aarch64" and doc["runtime"] == "litert"
    assert [row["op_type"] for row in doc["op_profile"]["rows"]] == ["FULLY_CONNECTED", "FULLY_CONNECTED"]
    assert "op by op" in doc["profile_source"]
