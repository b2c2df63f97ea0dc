"""`benchmark_model` named in the inventory of a local or SSH target: TFLite artifacts get their per-op rows
from `--enable_op_profiling=true` on that target, like adb's tool mode; ONNX keeps the runner's ORT profiler.

No benchmark_model binary exists on this machine: tests/support/android_tool_standin.py stands in for it
(installed under the binary's name, it takes the tool's flags, really times the model with LiteRT and prints
the tool's real output format, op-profiling tables included). Over SSH it runs on the emulated Pi 5 (aarch64
Python under qemu behind the loopback sshd), pushed there with the target's sha256 check.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edgekd.artifacts import describe_file
from edgekd.bench.orchestrate import bench_artifacts
from edgekd.config.bench import BenchConfig
from edgekd.errors import BenchError
from edgekd.inventory import make_target
from edgekd.targets.local import LocalTarget
from edgekd.targets.ssh.target import SshTarget
from tests.support.android_tool_standin import write_standin
from tests.support.bench_models import make_matmul_onnx, make_tflite

PROFILED = BenchConfig(runs=5, warmup=1, repeats=1, energy=False, profile=True)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bm-models")
    return {
        "tflite": make_tflite(folder / "dense fp32.tflite"),  # a space: every remote word must be quoted
        "onnx": make_matmul_onnx(folder / "chain.onnx", layers=2, size=32),
    }


class Recording(LocalTarget):
    """This machine, keeping every command line it ran."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.argvs: list[list[str]] = []

    def run(self, argv, timeout):  # type: ignore[no-untyped-def]
        self.argvs.append([str(a) for a in argv])
        return super().run(argv, timeout)


def _tool_rows(profile: dict[str, Any]) -> list[dict[str, Any]]:
    assert profile["schema"] == "edgekd.profile/1" and profile["rows"], profile
    return profile["rows"]


def _dense(rows: list[dict[str, Any]]) -> bool:
    """The dense layer's row: FULLY_CONNECTED, or XNNPACK's "Fully Connected (NC, F32) GEMM" when delegated."""
    return any(row["op_type"] in ("FULLY_CONNECTED", "Fully Connected (NC, F32) GEMM") for row in rows)


def test_local_inventory_benchmark_model_profiles_tflite(models: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "tools").mkdir()
    tool = write_standin(tmp_path / "tools" / "benchmark_model")  # stands in for the binary this machine lacks
    inventory = tmp_path / "targets.toml"
    inventory.write_text('[targets.box]\nkind = "local"\nbenchmark_model = "tools/benchmark_model"\n')
    made = make_target("box", inventory)
    target = Recording(
        "box", workdir_parent=tmp_path / "work", sysfs=tmp_path / "sys", benchmark_model=made.benchmark_model
    )  # type: ignore[attr-defined]
    assert made.identity()["benchmark_model"] == str(tool) and made.op_profiler() is not None
    tflite, onnx = describe_file(models["tflite"]), describe_file(models["onnx"])
    by_name = {r.artifact: r for r in bench_artifacts(target, [tflite, onnx], PROFILED)}
    rows = _tool_rows(by_name[tflite.name].profile)
    assert _dense(rows) and any(r["provider"] == "XNNPACK" for r in rows)
    notes = " ".join(by_name[tflite.name].profile["notes"])
    assert "benchmark_model --enable_op_profiling=true on box" in notes
    assert by_name[tflite.name].stats.n == 5  # the timed figures stay the runner's, unprofiled
    tool_runs = [argv for argv in target.argvs if argv[0].endswith("-benchmark_model")]
    assert len(tool_runs) == 1 and "--enable_op_profiling=true" in tool_runs[0]
    assert f"--graph={Path(tool_runs[0][0]).parent}" in next(a for a in tool_runs[0] if a.startswith("--graph="))
    assert "--num_threads=1" in tool_runs[0] and "--num_runs=5" in tool_runs[0] and "--use_xnnpack=true" in tool_runs[0]
    runner_runs = [argv for argv in target.argvs if any(a.endswith("edgekd_runner.py") for a in argv)]
    assert not any("--profile" in argv and tflite.path.name in " ".join(argv) for argv in runner_runs)
    onnx_profile = by_name[onnx.name].profile  # ONNX: the runner's own ORT profiler, as before
    assert "onnxruntime" in onnx_profile["source"] and {r["op_type"] for r in _tool_rows(onnx_profile)} >= {"MatMul"}


def test_without_the_key_tflite_keeps_the_runners_profile(models: dict[str, Path], tmp_path: Path) -> None:
    """No binary named: the runner profiles (or says why it cannot), no tool is run."""
    target = Recording("plain", workdir_parent=tmp_path / "work", sysfs=tmp_path / "sys")
    assert target.op_profiler() is None
    [result] = bench_artifacts(target, [describe_file(models["tflite"])], PROFILED)
    assert result.profile is not None and "benchmark_model" not in result.profile["source"]
    assert not any("benchmark_model" in note for note in result.profile["notes"])
    assert any("--profile" in argv for argv in target.argvs)  # the runner was asked for the profile


def test_a_missing_binary_is_refused_naming_it(models: dict[str, Path], tmp_path: Path) -> None:
    target = LocalTarget(
        "box",
        workdir_parent=tmp_path / "work",
        sysfs=tmp_path / "sys",
        benchmark_model=tmp_path / "nowhere" / "benchmark_model",
    )
    with pytest.raises(BenchError) as caught:
        bench_artifacts(target, [describe_file(models["tflite"])], PROFILED)
    missing = tmp_path / "nowhere" / "benchmark_model"
    assert f"the benchmark_model binary {missing} does not exist" in caught.value.message
    assert "set benchmark_model of targets.box" in (caught.value.hint or "")
    assert not list((tmp_path / "work").iterdir())  # the work dir was cleaned up
    check = {c.name: c for c in target.doctor()}["benchmark_model"]  # `edgekd targets doctor` says so too
    assert not check.ok and check.detail == f"{missing} does not exist" and "targets.box" in (check.fix or "")


@pytest.mark.ssh
@pytest.mark.aarch64
@pytest.mark.slow
def test_ssh_benchmark_model_profiles_tflite_on_the_pi(
    models: dict[str, Path], pi_entry: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    # `env python3` on the Pi: the user's aarch64 Python with ai-edge-litert (the stand-in's interpreter there).
    tool = write_standin(tmp_path / "benchmark_model", python="/usr/bin/env python3")
    os.chmod(tmp_path, 0o755)  # the sshd's user reads nothing here: the binary travels over the connection
    target = SshTarget.from_entry("pi5", pi_entry("edgekd-pi5", benchmark_model=str(tool)), Path("/"))
    assert target.identity()["benchmark_model"] == str(tool) and target.identity()["host_key"].startswith("SHA256:")
    [result] = bench_artifacts(
        target, [describe_file(models["tflite"])], BenchConfig(runs=3, warmup=1, repeats=1, energy=False, profile=True)
    )
    rows = _tool_rows(result.profile)
    assert _dense(rows)
    assert "benchmark_model --enable_op_profiling=true on pi5" in " ".join(result.profile["notes"])
    assert result.profile["target"] == "pi5" and result.profile["runtime"] == "tflite"
    assert target.workdir is None  # cleaned up: binary, model and runner removed with the work dir
