"""The adb target through the whole bench core: tool modes give results from the tools' summaries,
--allow-charging reaches the battery meter and flags the result, the phone's details reach `env`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgekd.artifacts import describe_file
from edgekd.bench.orchestrate import bench_artifacts
from edgekd.bench.target_settings import target_options
from edgekd.config.bench import BenchConfig
from edgekd.errors import BenchError, UsageError
from edgekd.target_protocol import TargetOptions
from edgekd.targets.adb.target import AdbTarget

pytestmark = pytest.mark.adb


def _target(device, tmp_path: Path, options: TargetOptions | None = None, **entry) -> AdbTarget:
    return AdbTarget.from_entry("pixel", {"kind": "adb", "serial": device.serial, **entry}, tmp_path, options)


def test_benchmark_model_mode_gives_a_result_from_the_summary(
    phone, tflite_model: Path, android_tools, tmp_path: Path
) -> None:
    """Two repeats of benchmark_model: counts add up, median from the tool, p90/p99 honestly absent."""
    target = _target(phone, tmp_path, mode="benchmark_model", benchmark_model=str(android_tools["benchmark_model"]))
    config = BenchConfig(runs=25, warmup=2, repeats=2, energy=False)
    [result] = bench_artifacts(target, [describe_file(tflite_model)], config)
    summary = result.summary()
    assert result.latencies_ns == [] and result.stats.source == "tool-summary" and summary["runs"] == 50
    assert summary["p50_ms"] is not None and summary["p90_ms"] is None and summary["p99_ms"] is None
    assert summary["min_ms"] <= summary["mean_ms"] <= summary["max_ms"] and summary["std_ms"] is not None
    assert summary["iqr_ms"] is None and summary["ci95_median_ms"] is None
    assert summary["init_ms"] > 0 and summary["first_ms"] > 0 and summary["peak_rss_kb"] > 0
    assert any("does not report p90/p99" in w for w in result.warnings)
    assert any("median of each repeat's" in w for w in result.warnings)
    assert result.env["stats_source"] == "tool-summary" and len(result.env["tool_summaries"]) == 2
    assert result.env["tool_summaries"][0]["warmup_count"] == 2
    assert len(result.repeat_medians_ms) == 2
    # The phone's details reach the result: SDK, big-core mask, thermal status before and after.
    assert result.env["sdk"] is not None and result.env["big_core_mask"] == "c0"
    assert result.env["thermal_status_before"] and result.env["thermal_status_after"]
    assert result.env["device_details"]["abi"] == "arm64-v8a" and result.env["charging"] is False


def test_ort_perf_test_mode_keeps_the_tool_percentiles(phone, onnx_model: Path, android_tools, tmp_path: Path) -> None:
    target = _target(
        phone, tmp_path, mode="ort_perf_test", onnxruntime_perf_test=str(android_tools["onnxruntime_perf_test"])
    )
    [result] = bench_artifacts(target, [describe_file(onnx_model)], BenchConfig(runs=20, warmup=1, energy=False))
    summary = result.summary()
    document = result.env["tool_summaries"][0]
    assert summary["runs"] == 20 and summary["p50_ms"] == pytest.approx(document["p50_ms"])
    assert summary["p90_ms"] == pytest.approx(document["p90_ms"]) and summary["p99_ms"] == pytest.approx(
        document["p99_ms"]
    )
    assert summary["p50_ms"] <= summary["p90_ms"] <= summary["p99_ms"]
    assert not any("does not report" in w for w in result.warnings)
    assert any("no per-run samples" in w for w in result.warnings)


@pytest.mark.parametrize("allowed", [False, True])
def test_allow_charging_reaches_the_battery_meter_and_flags_the_result(
    phone, onnx_model: Path, tmp_path: Path, allowed: bool
) -> None:
    phone.sandbox.set_power_source(usb=True)
    config = BenchConfig(runs=20, warmup=1, energy=True, energy_idle_s=0.3, allow_charging=allowed)
    target = _target(phone, tmp_path, target_options(config), energy_interval_s=0.05)  # settings at construction
    [result] = bench_artifacts(target, [describe_file(onnx_model)], config)
    assert result.env["charging"] is True and result.env["device_details"]["on_power"] == ["USB"]
    assert result.env["thermal_status_before"] and result.env["thermal_status_after"]  # runner mode: read after too
    assert any("measured while charging" in w for w in result.warnings)
    if allowed:
        assert result.energy is not None and result.energy_unavailable is None
        assert any("net current" in w for w in result.warnings)
    else:
        assert result.energy is None and "--allow-charging" in (result.energy_unavailable or "")


def test_a_bench_allowing_charging_refuses_a_target_made_without_it(phone, onnx_model: Path, tmp_path: Path) -> None:
    """allow_charging is a construction setting of the target: a config allowing it with a target made
    without it is refused (nothing is patched onto the target), before the phone is touched."""
    config = BenchConfig(runs=5, warmup=1, energy=True, allow_charging=True)
    target = _target(phone, tmp_path)
    with pytest.raises(UsageError, match="target 'pixel' was made without it"):
        bench_artifacts(target, [describe_file(onnx_model)], config)
    assert target.allow_charging is False and target.workdir is None


def _cli(argv: list[str], adb_env) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **{k: adb_env.env[k] for k in ("HOME", "ANDROID_ADB_SERVER_PORT")},
        "EDGEKD_HISTORY": str(Path(adb_env.env["HOME"]) / "history.sqlite"),
    }
    edgekd = Path(sys.executable).parent / "edgekd"
    return subprocess.run([str(edgekd), *argv], env=env, capture_output=True, text=True, timeout=300, check=False)


def test_cli_bench_in_tool_mode_json(phone, adb_env, onnx_model: Path, android_tools, tmp_path: Path) -> None:
    """`edgekd bench --json` on a phone in ort_perf_test mode: the same keys as local, figures from the tool."""
    inventory = tmp_path / "targets.toml"
    inventory.write_text(
        f'[targets.pixel]\nkind = "adb"\nserial = "{phone.serial}"\nmode = "ort_perf_test"\n'
        f'onnxruntime_perf_test = "{android_tools["onnxruntime_perf_test"]}"\n'
    )
    phone.sandbox.set_power_source(usb=True)
    common = [str(onnx_model), "--inventory", str(inventory), "--runs", "20", "--warmup", "1", "--no-energy", "--json"]
    done = _cli(["bench", *common, "--target", "pixel", "--allow-charging"], adb_env)
    assert done.returncode == 0, done.stdout + done.stderr
    local = _cli(["bench", *common, "--target", "local", "--no-history"], adb_env)
    assert local.returncode == 0, local.stderr
    [row], [local_row] = json.loads(done.stdout)["results"], json.loads(local.stdout)["results"]
    assert row.keys() == local_row.keys() and row["latencies_ns"] == []
    assert row["runs"] == 20 and 0 < row["p50_ms"] <= row["p99_ms"] and row["runtime"] == "onnxruntime_perf_test"
    assert row["env"]["stats_source"] == "tool-summary" and local_row["env"]["stats_source"] == "samples"
    assert any("no per-run samples" in w for w in row["warnings"])
    assert row["env"]["charging"] is True and row["env"]["settings"]["allow_charging"] is True
    assert any("measured while charging" in w for w in row["warnings"])
    human = _cli(["bench", *common[:-1], "--target", "pixel", "--no-history"], adb_env)  # the table, not JSON
    assert human.returncode == 0 and "Traceback" not in human.stderr and "(mean " in human.stdout, human.stdout
    assert "no per-run samples" in human.stdout
    # The history keeps it, and `bench compare` falls back to CI overlap / the summary without crashing.
    compared = _cli(["bench", "compare", "latest", "latest", "--json"], adb_env)
    assert compared.returncode == 0, compared.stderr
    assert json.loads(compared.stdout)["rows"][0]["verdict"] == "unchanged"


def test_shape_is_refused_in_tool_mode_not_ignored(phone, tflite_model: Path, android_tools, tmp_path: Path) -> None:
    target = _target(phone, tmp_path, mode="benchmark_model", benchmark_model=str(android_tools["benchmark_model"]))
    with pytest.raises(BenchError) as caught:
        bench_artifacts(
            target, [describe_file(tflite_model)], BenchConfig(runs=5, warmup=1, energy=False), shapes={"x": [1, 16]}
        )
    assert (
        "pixel runs benchmark_model, which edgekd cannot give an input shape (--shape x=1,16)" in caught.value.message
    )
    assert "mode = 'runner'" in (caught.value.hint or "")


def test_benchmark_model_mode_profile_end_to_end(phone, tflite_model: Path, android_tools, tmp_path: Path) -> None:
    """`[bench] profile = true` in benchmark_model mode: after the first repeat's timed run, a second run with
    --enable_op_profiling=true; its op-profiling tables (the tool's format) become the result's per-op profile.
    The timed figures are the unprofiled runs' only (2 repeats x 20)."""
    from edgekd.profile.placement import accelerator_fallback
    from edgekd.profile.schema import SCHEMA, OpProfile

    target = _target(phone, tmp_path, mode="benchmark_model", benchmark_model=str(android_tools["benchmark_model"]))
    config = BenchConfig(runs=20, warmup=2, repeats=2, energy=False, profile=True)
    [result] = bench_artifacts(target, [describe_file(tflite_model)], config)
    assert result.summary()["runs"] == 40 and len(result.env["tool_summaries"]) == 2
    assert result.profile is not None and result.profile["schema"] == SCHEMA
    profile = OpProfile.from_dict(result.profile)
    assert profile.source == "benchmark_model --enable_op_profiling" and profile.target == "pixel"
    assert profile.model == tflite_model.name and profile.runtime == "tflite" and profile.runs == 20
    assert [(row.op_type, row.provider) for row in profile.rows] == [("Fully Connected (NC, F32) GEMM", "XNNPACK")] * 2
    assert profile.requested == ["XNNPACK"] and profile.median_ms and profile.profiled_median_ms
    assert accelerator_fallback(profile) == []  # fully delegated: no fallback verdict
    assert result.to_dict()["profile"] == result.profile


def test_runner_mode_profiles_tflite_with_the_named_benchmark_model(
    phone, tflite_model: Path, android_tools, tmp_path: Path
) -> None:
    """Runner mode (the timed runs are the runner's) with benchmark_model named: its op profiling gives the rows."""
    target = _target(phone, tmp_path, benchmark_model=str(android_tools["benchmark_model"]))
    [result] = bench_artifacts(
        target, [describe_file(tflite_model)], BenchConfig(runs=5, warmup=1, energy=False, profile=True)
    )
    assert result.env["stats_source"] == "samples" and len(result.latencies_ns) == 5  # the runner's samples
    assert result.profile["source"] == "benchmark_model --enable_op_profiling" and result.profile["target"] == "pixel"
    assert [row["provider"] for row in result.profile["rows"]] == ["XNNPACK"] * 2
    assert any("benchmark_model --enable_op_profiling=true on pixel" in note for note in result.profile["notes"])


def test_benchmark_model_mode_profile_without_xnnpack_is_all_cpu(
    phone, tflite_model: Path, android_tools, tmp_path: Path
) -> None:
    target = _target(phone, tmp_path, mode="benchmark_model", benchmark_model=str(android_tools["benchmark_model"]))
    config = BenchConfig(runs=5, warmup=1, energy=False, profile=True, xnnpack=False)
    [result] = bench_artifacts(target, [describe_file(tflite_model)], config)
    rows = result.profile["rows"]
    assert [(row["op_type"], row["provider"]) for row in rows] == [("FULLY_CONNECTED", "CPU")] * 2
    assert result.profile["requested"] == []


def test_ort_perf_test_mode_profile_says_why_it_is_unavailable(
    phone, onnx_model: Path, android_tools, tmp_path: Path
) -> None:
    target = _target(
        phone, tmp_path, mode="ort_perf_test", onnxruntime_perf_test=str(android_tools["onnxruntime_perf_test"])
    )
    [result] = bench_artifacts(
        target, [describe_file(onnx_model)], BenchConfig(runs=5, warmup=1, energy=False, profile=True)
    )
    assert (
        result.profile["rows"] == []
        and "onnxruntime_perf_test mode collects no per-op profile" in (result.profile["profile_unavailable"])
    )


def test_min_runs_is_refused_in_ort_perf_test_mode_and_is_both_floors_for_benchmark_model(
    phone, onnx_model: Path, tflite_model: Path, android_tools, tmp_path: Path
) -> None:
    """`--mlperf` (min_runs + duration_s): onnxruntime_perf_test runs for a duration or a count, never both, so it
    is refused; benchmark_model's --num_runs and --min_secs are both floors, so it runs at least that many."""
    config = BenchConfig(warmup=1, energy=False, duration_s=0.05, min_runs=30)
    ort = _target(
        phone, tmp_path / "ort", mode="ort_perf_test", onnxruntime_perf_test=str(android_tools["onnxruntime_perf_test"])
    )
    with pytest.raises(BenchError) as caught:
        bench_artifacts(ort, [describe_file(onnx_model)], config)
    assert caught.value.message == (
        f"{onnx_model.name}: pixel runs onnxruntime_perf_test, which runs for a duration "
        "or a count, not both (--min-runs 30 with --duration)"
    )
    assert caught.value.hint == "use mode = 'runner' or 'benchmark_model' on this phone for --mlperf / min_runs"
    tool = _target(
        phone, tmp_path / "bm", mode="benchmark_model", benchmark_model=str(android_tools["benchmark_model"])
    )
    [result] = bench_artifacts(tool, [describe_file(tflite_model)], config)
    assert result.summary()["runs"] >= 30
