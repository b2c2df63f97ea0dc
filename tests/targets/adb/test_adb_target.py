"""AdbTarget through the real adb client against the loopback phone: both run modes, the failures a
phone produces (offline, unauthorized, gone mid-run, full), doctor and the thermal gate."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import pytest

from edgekd.artifacts import describe_file
from edgekd.bench.orchestrate import TargetLost, bench_artifacts, runner_argv, runner_path
from edgekd.config.bench import BenchConfig
from edgekd.errors import BenchError, RecipeError, TargetError
from edgekd.targets.adb.target import AdbTarget, PhoneLostError
from tests.support.adb_client import AdbClient, make_device

pytestmark = pytest.mark.adb
QUICK = {"runs": 30, "warmup": 3, "energy": False}


def _target(device, tmp_path: Path, **entry) -> AdbTarget:
    return AdbTarget.from_entry("pixel", {"kind": "adb", "serial": device.serial, **entry}, tmp_path)


@pytest.mark.covers("target:adb")
def test_runner_mode_end_to_end(phone, tflite_model: Path, tmp_path: Path) -> None:
    """The runner executes for real on the phone's "Termux python3", pinned to the X1 cores (mask c0)."""
    target = _target(phone, tmp_path)
    [result] = bench_artifacts(target, [describe_file(tflite_model)], BenchConfig(**QUICK))
    assert result.target == "pixel" and result.runtime == "litert"
    assert len(result.latencies_ns) == 30 and result.stats.p50_ns > 0
    assert result.env["kind"] == "adb" and result.env["model_sha256"] == result.artifact_sha256
    assert result.env["temps_c_before"]["BIG"] == pytest.approx(41.25)
    pinned = phone.sandbox.taskset_log()
    assert pinned and all(line.startswith("c0 /data/data/com.termux/files/usr/bin/python3 ") for line in pinned)
    assert any("--model /data/local/tmp/edgekd-" in line for line in pinned)
    assert list((phone.sandbox.root / "data" / "local" / "tmp").glob("edgekd-*")) == []  # cleaned up


def test_benchmark_model_mode_translates_and_parses(phone, tflite_model: Path, android_tools, tmp_path: Path) -> None:
    """The stand-in prints benchmark_model's documented output; the binary is pushed once (sha256 remembered)."""
    target = _target(phone, tmp_path, mode="benchmark_model", benchmark_model=str(android_tools["benchmark_model"]))
    config = BenchConfig(runs=25, warmup=4, threads=2)
    try:
        target.connect()
        model = target.push(tflite_model)
        runner = target.push(runner_path())
        docs = [
            json.loads(target.run(runner_argv(target, runner, model, "litert", config), 120).stdout) for _ in range(2)
        ]
        pushes = [c for c in phone.commands if c.startswith("(sha256sum ")]
    finally:
        target.cleanup()
    assert len(pushes) == 3  # model, runner, benchmark_model: the tool was not pushed again on the 2nd run
    for doc in docs:
        assert doc["schema"] == "edgekd.run/1" and doc["runtime"] == "tflite-benchmark_model"
        assert doc["summary"]["count"] == 25 and doc["summary"]["warmup_count"] == 4
        assert doc["summary"]["min_ms"] <= doc["summary"]["mean_ms"] <= doc["summary"]["max_ms"]
        assert doc["init_ms"] > 0 and doc["first_ms"] > 0 and doc["peak_rss_kb"] > 0
        assert doc["model_sha256"] == describe_file(tflite_model).sha256 and doc["threads"] == 2
        assert doc["env"]["affinity"] == [6, 7] and doc["env"]["temps_c"]["BIG"] == pytest.approx(41.25)
    tool_runs = [line for line in phone.sandbox.taskset_log() if "benchmark_model" in line]
    assert len(tool_runs) == 2 and all(line.startswith("c0 ") and "--num_runs=25" in line for line in tool_runs)


def test_ort_perf_test_mode_rejects_tflite_and_runs_onnx(
    phone, onnx_model: Path, tflite_model: Path, android_tools, tmp_path: Path
) -> None:
    target = _target(
        phone, tmp_path, mode="ort_perf_test", onnxruntime_perf_test=str(android_tools["onnxruntime_perf_test"])
    )
    config = BenchConfig(runs=40)
    try:
        target.connect()
        runner = target.push(runner_path())
        with pytest.raises(BenchError, match="takes .onnx models"):
            target.run(runner_argv(target, runner, target.push(tflite_model), "litert", config), 60)
        doc = json.loads(target.run(runner_argv(target, runner, target.push(onnx_model), "ort", config), 120).stdout)
    finally:
        target.cleanup()
    assert doc["summary"]["count"] == 40
    assert doc["summary"]["p50_ms"] <= doc["summary"]["p99_ms"] and doc["init_ms"] > 0


def test_disconnect_mid_run_raises_target_error_and_keeps_finished_runs(
    phone, onnx_model: Path, tmp_path: Path
) -> None:
    """The cable is pulled when the second timed run starts: the first run's output survives in the error."""
    target = _target(phone, tmp_path)
    config = BenchConfig(runs=10, warmup=1, repeats=2, energy=False)
    phone.drop_on = None
    seen: list[str] = []

    def pull_cable_on_second_run(done: int, _total: int, status: str) -> None:
        seen.append(status)
        phone.drop_on = "--runs 10"

    with pytest.raises(TargetLost) as caught:
        bench_artifacts(target, [describe_file(onnx_model)], config, progress=pull_cable_on_second_run)
    assert seen == ["chain run 1/2"]
    assert "lost the connection to pixel" in caught.value.message
    assert isinstance(caught.value, TargetError) and isinstance(caught.value.cause, PhoneLostError)
    assert any('"latencies_ns"' in run.stdout for run in caught.value.cause.finished)
    [kept] = caught.value.results  # the first repeat, as a result the caller can record
    assert len(kept.latencies_ns) == 10 and "incomplete: pixel was lost after 1 of 2 repeat(s)" in kept.warnings


def test_offline_device_at_start(tmp_path: Path, adb_env: AdbClient) -> None:
    """adb knows the phone but it never completes the handshake (locked screen, stuck adbd)."""
    device = make_device(tmp_path / "stuck", handshake="silent")
    try:
        with contextlib.suppress(Exception):  # the client waits ~10 s for a device that never answers
            adb_env("connect", device.serial, timeout=2)
        with pytest.raises(TargetError) as caught:
            _target(device, tmp_path).connect()
        assert "is offline" in caught.value.message and "replug" in (caught.value.hint or "")
    finally:
        adb_env("disconnect", device.serial)
        device.stop()


def test_unauthorized_and_unknown_devices(tmp_path: Path, adb_env: AdbClient) -> None:
    device = make_device(tmp_path / "locked", auth=True, accept_new_keys=False)
    try:
        adb_env("connect", device.serial)
        with pytest.raises(TargetError) as caught:
            _target(device, tmp_path).connect()
        assert "has not authorized this computer" in caught.value.message
        assert "Allow USB debugging" in (caught.value.hint or "")
    finally:
        adb_env("disconnect", device.serial)
        device.stop()
    with pytest.raises(TargetError, match="not connected"):
        AdbTarget.from_entry("ghost", {"serial": "R58M123ABC"}, tmp_path).connect()


@pytest.mark.parametrize("df_works", [True, False], ids=["df-says-full", "push-fails-enospc"])
def test_no_space_left(phone, onnx_model: Path, tmp_path: Path, df_works: bool) -> None:
    phone.sandbox.set_capacity_kb(115_249_236, 115_249_236 - 4)  # 4 KiB free
    if not df_works:  # df prints nothing usable: the push itself hits ENOSPC on the phone
        (phone.sandbox.root / "system" / "bin" / "df").write_text("#!/bin/sh\necho 'df: /data: Permission denied'\n")
    target = _target(phone, tmp_path)
    try:
        with pytest.raises(TargetError) as caught:
            target.push(onnx_model)
    finally:
        target.cleanup()
    message = caught.value.message
    assert "/data/local/tmp has" in message and "chain.onnx needs" in message
    assert ("only 0.0 MB free" if df_works else "no space left") in message
    assert "free space on the phone" in (caught.value.hint or "")


def test_doctor_reports_phone_state_and_flags_charging(phone, tmp_path: Path) -> None:
    phone.sandbox.set_power_source(usb=True)
    target = _target(phone, tmp_path, big_cores="0x30")
    try:
        checks = {check.name: check for check in target.doctor()}
    finally:
        target.cleanup()
    assert checks["ABI"].detail == "arm64-v8a" and checks["SDK level"].ok
    assert checks["model"].detail.startswith("Google Pixel 6")
    assert checks["free space in /data/local/tmp"].ok
    assert checks["battery"].ok and "78%, on USB power: energy will be refused" in checks["battery"].detail
    assert "adb tcpip" in (checks["battery"].fix or "")
    assert checks["thermal status"].ok and "BIG 41.2" in checks["thermal status"].detail
    assert [name for name in checks if name.startswith("governor")] == [
        "governor policy0",
        "governor policy4",
        "governor policy6",
    ]
    assert "sched_pixel" in checks["governor policy6"].detail
    assert checks["big cores"].detail.startswith("mask 30 = cpus [4, 5] (from targets.toml)")
    assert checks["python (runner mode)"].ok


def test_thermal_gate_uses_phone_temperatures(phone, onnx_model: Path, tmp_path: Path) -> None:
    (phone.sandbox.root / "sys" / "thermal" / "thermal_zone0" / "temp").write_text("96000\n")  # BIG at 96 °C
    config = BenchConfig(runs=10, warmup=1, energy=False, thermal_limit_c=80.0, thermal_timeout_s=0.5)
    [result] = bench_artifacts(_target(phone, tmp_path), [describe_file(onnx_model)], config)
    assert any("thermal gate timed out" in w and "96.0 °C" in w for w in result.warnings)


def test_inventory_entry_is_validated(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="needs benchmark_model"):
        AdbTarget.from_entry("p", {"kind": "adb", "mode": "benchmark_model"}, tmp_path)
    with pytest.raises(RecipeError, match="not a CPU mask"):
        AdbTarget.from_entry("p", {"kind": "adb", "big_cores": "big"}, tmp_path)
    with pytest.raises(RecipeError, match="seriall"):
        AdbTarget.from_entry("p", {"kind": "adb", "seriall": "x"}, tmp_path)
    entry = AdbTarget.from_entry("p", {"mode": "benchmark_model", "benchmark_model": "tools/bm"}, tmp_path).entry
    assert entry.benchmark_model == tmp_path / "tools" / "bm"


def test_discovery_and_exit_codes_on_a_phone_without_shell_v2(
    tmp_path: Path, adb_env: AdbClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No serial: the one attached phone is used. Legacy `shell:` loses exit codes; the sentinel keeps them."""
    device = make_device(tmp_path / "old-phone", features=("cmd",))
    try:
        adb_env.connect(device)
        target = AdbTarget.from_entry("old", {}, tmp_path)
        target.connect()
        assert target.serial == device.serial
        failed = target.run(["sh", "-c", "echo partial; echo oops >&2; exit 4"], 30)
        assert failed.returncode == 4 and failed.stdout.replace("\r", "").startswith("partial\n")
        assert "__EDGEKD_EXIT__" not in failed.stdout + failed.stderr
        target.cleanup()
        monkeypatch.setenv("ANDROID_SERIAL", device.serial)
        assert AdbTarget.from_entry("old", {}, tmp_path).serial == device.serial
    finally:
        adb_env("disconnect", device.serial)
        device.stop()


def test_doctor_explains_a_python_the_shell_user_cannot_run(phone, tmp_path: Path) -> None:
    target = _target(phone, tmp_path, python="/data/local/tmp/no-such/python3")
    try:
        check = {c.name: c for c in target.doctor()}["python (runner mode)"]
    finally:
        target.cleanup()
    assert not check.ok and "not found" in check.detail.lower()
    assert "Termux's is private" in (check.fix or "") and "benchmark_model" in (check.fix or "")


NOT_INSTALLED = 'raise ModuleNotFoundError("No module named {name!r}", name={name!r})\n'


def test_doctor_fails_a_phone_without_a_runtime_and_passes_one_without_thermalservice(phone, tmp_path: Path) -> None:
    """Doctor checks what bench needs: a phone whose python has numpy but no inference runtime fails
    (bench would stop at "runtime not installed"); an Android 9 phone without thermalservice is "unknown"."""
    fakes = tmp_path / "no-runtimes"
    for name in ("ai_edge_litert", "tflite_runtime", "onnxruntime"):
        (fakes / name).mkdir(parents=True)
        (fakes / name / "__init__.py").write_text(NOT_INSTALLED.format(name=name))
    python3 = phone.sandbox.root / "data" / "data" / "com.termux" / "files" / "usr" / "bin" / "python3"
    python3.write_text(f'#!/bin/sh\nPYTHONPATH={fakes} exec {sys.executable} "$@"\n')
    (phone.sandbox.root / "system" / "etc" / "dumpsys_thermalservice.txt").unlink()
    target = _target(phone, tmp_path)
    try:
        checks = {check.name: check for check in target.doctor()}
    finally:
        target.cleanup()
    runtime = checks["inference runtime (runner mode)"]
    assert not runtime.ok and "ai-edge-litert: runtime litert is not installed on this device" in runtime.detail
    assert "onnxruntime: runtime ort is not installed" in runtime.detail
    assert "pip install ai-edge-litert" in (runtime.fix or "")
    thermal = checks["thermal status"]
    assert thermal.ok and thermal.detail.startswith("unknown (`dumpsys thermalservice` reports no status")
    assert checks["python (runner mode)"].ok


def test_doctor_names_the_runtimes_a_phone_has(phone, tmp_path: Path) -> None:
    target = _target(phone, tmp_path)
    try:
        runtime = {check.name: check for check in target.doctor()}["inference runtime (runner mode)"]
    finally:
        target.cleanup()
    assert runtime.ok and "ai-edge-litert 2." in runtime.detail and "onnxruntime 1." in runtime.detail
