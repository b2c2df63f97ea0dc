"""`edgekd bench MODEL --target NAME` against the loopback phone gives the same result format as local."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.adb


def _bench(model: Path, target: str, inventory: Path, env: dict[str, str]) -> dict:
    edgekd = Path(sys.executable).parent / "edgekd"
    argv = [
        str(edgekd),
        "bench",
        str(model),
        "--target",
        target,
        "--inventory",
        str(inventory),
        "--runs",
        "20",
        "--warmup",
        "2",
        "--no-energy",
        "--no-history",
        "--json",
    ]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_cli_bench_on_phone_matches_local_format(phone, adb_env, onnx_model: Path, tmp_path: Path) -> None:
    inventory = tmp_path / "targets.toml"
    inventory.write_text(f'[targets.pixel]\nkind = "adb"\nserial = "{phone.serial}"\n')
    env = {**os.environ, **{k: adb_env.env[k] for k in ("HOME", "ANDROID_ADB_SERVER_PORT")}}
    on_phone = _bench(onnx_model, "pixel", inventory, env)
    local = _bench(onnx_model, "local", inventory, env)
    assert on_phone.keys() == local.keys() and on_phone["schema"] == local["schema"] == "edgekd.bench/1"
    [phone_row], [local_row] = on_phone["results"], local["results"]
    assert phone_row.keys() == local_row.keys()
    assert phone_row["env"].keys() >= local_row["env"].keys() - {"rapl", "perf"}
    assert phone_row["target"] == "pixel" and phone_row["env"]["kind"] == "adb"
    assert len(phone_row["latencies_ns"]) == 20 and phone_row["p50_ms"] > 0
    assert phone_row["artifact_sha256"] == local_row["artifact_sha256"]
    assert phone_row["energy_unavailable"] and phone_row["env"]["governor"] == "sched_pixel"


def _runner_pids(marker: str) -> list[int]:
    """Host pids of runner processes whose command line holds `marker` (the phone's processes are this
    machine's, under proot)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state != "Z" and any("edgekd_runner" in a for a in argv) and marker in argv and "proot" not in argv[0]:
                found.append(int(entry.name))
    return found


def test_ctrl_c_during_a_phone_bench_stops_the_runner_on_the_phone(
    phone, adb_env, onnx_model: Path, tmp_path: Path
) -> None:
    """A phone keeps a command running when the host's shell goes away: Ctrl-C must stop it there."""
    import signal
    import time

    phone.orphan_on_close = True
    inventory = tmp_path / "targets.toml"
    inventory.write_text(f'[targets.pixel]\nkind = "adb"\nserial = "{phone.serial}"\n')
    env = {**os.environ, **{k: adb_env.env[k] for k in ("HOME", "ANDROID_ADB_SERVER_PORT")}}
    edgekd = Path(sys.executable).parent / "edgekd"
    marker = "297.5"  # --duration: this test's runner, not another test's
    process = subprocess.Popen(
        [
            str(edgekd),
            "bench",
            str(onnx_model),
            "--target",
            "pixel",
            "--inventory",
            str(inventory),
            "--duration",
            marker,
            "--warmup",
            "0",
            "--no-energy",
            "--no-history",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not _runner_pids(marker) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
        assert _runner_pids(marker), "the runner never started on the phone"
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 130, stderr
        deadline = time.monotonic() + 30
        while _runner_pids(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _runner_pids(marker) == [], "the runner kept running on the phone"
        assert list((phone.sandbox.root / "data" / "local" / "tmp").glob("edgekd-*")) == []
    finally:
        if process.poll() is None:
            process.kill()
        for pid in _runner_pids(marker):
            os.kill(pid, signal.SIGKILL)


def test_a_phone_lost_mid_bench_keeps_and_records_the_finished_repeats(
    phone, adb_env, onnx_model: Path, tmp_path: Path
) -> None:
    """The cable is pulled as the second repeat starts: the first repeat's result is printed, written to
    --out and recorded in the history, and the error says so (it used to say so while keeping nothing)."""
    phone.drop_on, phone.drop_skip = "--runs 10", 1
    inventory = tmp_path / "targets.toml"
    inventory.write_text(f'[targets.pixel]\nkind = "adb"\nserial = "{phone.serial}"\n')
    history = tmp_path / "history.sqlite"
    env = {
        **os.environ,
        **{k: adb_env.env[k] for k in ("HOME", "ANDROID_ADB_SERVER_PORT")},
        "EDGEKD_HISTORY": str(history),
    }
    edgekd = Path(sys.executable).parent / "edgekd"
    out = tmp_path / "results.json"
    done = subprocess.run(
        [
            str(edgekd),
            "--json",
            "bench",
            str(onnx_model),
            "--target",
            "pixel",
            "--inventory",
            str(inventory),
            "--runs",
            "10",
            "--warmup",
            "1",
            "--repeats",
            "2",
            "--no-energy",
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stdout + done.stderr
    report = json.loads(done.stdout)
    [row] = report["results"]
    assert len(row["latencies_ns"]) == 10 and "incomplete: pixel was lost after 1 of 2 repeat(s)" in row["warnings"]
    assert "lost the connection to pixel" in done.stderr
    assert f"the 1 result(s) of runs that finished were kept (history run {report['run_id']}, {out})" in done.stderr
    assert json.loads(out.read_text())["results"][0]["latencies_ns"] == row["latencies_ns"]
    shown = subprocess.run(
        [str(edgekd), "--json", "bench", "history", report["run_id"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0 and [r["target"] for r in json.loads(shown.stdout)["results"]] == ["pixel"]


def test_a_lost_phone_is_not_explained_by_a_runtime_log_line(
    phone, adb_env, tflite_model: Path, tmp_path: Path
) -> None:
    """LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on the phone's stderr before
    the cable is pulled: the reason given is the lost stream, not that log line."""
    import threading
    import time

    from edgekd.artifacts import describe_file
    from edgekd.bench.orchestrate import TargetLost, bench_artifacts
    from edgekd.config.bench import BenchConfig
    from edgekd.errors import TargetError
    from edgekd.targets.adb.target import AdbTarget

    target = AdbTarget.from_entry("pixel", {"kind": "adb", "serial": phone.serial}, tmp_path)
    marker = "61.5"

    def pull_the_cable() -> None:
        deadline = time.monotonic() + 120
        while not _runner_pids(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)  # the interpreter is made (and has logged) before the timed loop
        phone.cut_cable()

    puller = threading.Thread(target=pull_the_cable, daemon=True)
    puller.start()
    with pytest.raises(TargetError) as caught:
        bench_artifacts(target, [describe_file(tflite_model)], BenchConfig(duration_s=61.5, warmup=0, energy=False))
    puller.join(timeout=10)
    for pid in _runner_pids(marker):
        os.kill(pid, 9)
    assert not isinstance(caught.value, TargetLost)  # nothing had finished: nothing is claimed to be kept
    message = caught.value.message
    assert "lost the connection to pixel" in message and "INFO" not in message and "XNNPACK" not in message
    assert message.endswith(": the shell stream ended without an exit status") or ": error:" in message
    assert "kept" not in message
