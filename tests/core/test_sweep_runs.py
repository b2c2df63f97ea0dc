"""Sweeps that really train: digits, tiny models, SQLite with 2 worker processes, PostgreSQL with 2 workers
joining one study, a worker SIGKILLed mid-trial and the study resumed. The bench target is `local` (this
machine), one device shared by every trial: its bench windows, taken inside the device lock, must not overlap."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from edgekd.fileio import read_json
from edgekd.sweep.runner import run_sweep

pytestmark = pytest.mark.slow
SIZE_LIMIT = 9000  # bytes of onnx_int8: the width-8 students are over it, the narrower ones under

RECIPE = """
[run]
name = "digits-sweep"
[data]
source = "digits"
[teacher]
model = {{ arch = "cnn", width = 8, depth = 2 }}
train = {{ epochs = 4, lr = 1e-2 }}
[student]
model = {{ arch = "cnn", width = 4, depth = 2 }}
[distill]
train = {{ epochs = 2, lr = 1e-2 }}
baseline = false
[tflite]
enabled = false
[handoff]
enabled = false
[bench]
targets = ["local"]
warmup = 3
runs = 20
energy = false
governor = ""
[report]
history = false
html = false
markdown = false
[sweep]
n_trials = {n_trials}
out = "sweep"
heartbeat_s = 1
grace_s = 3
objectives = [{{ metric = "accuracy", artifact = "onnx_int8" }},
              {{ metric = "p50_ms", artifact = "onnx_int8", target = "local" }}]
constraints = [{{ metric = "size_bytes", artifact = "onnx_int8", max = {limit} }}]
pruning = {{ percentile = 25, startup_trials = 4 }}
[sweep.space]
"student.model.width" = {{ choices = [2, 4, 8] }}
"student.model.depth" = {{ choices = [1, 2] }}
"distill.losses.0.temperature" = {{ low = 1.0, high = 8.0, log = true }}
"quantize.per_channel" = {{ choices = [true, false] }}
"""


def recipe(tmp_path: Path, n_trials: int) -> Path:
    path = tmp_path / "digits-sweep.toml"
    path.write_text(RECIPE.format(n_trials=n_trials, limit=SIZE_LIMIT), encoding="utf-8")
    return path


def sweep_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "edgekd.sweep", *args]


def check_bench_windows_do_not_interleave(results: dict[str, Any]) -> int:
    windows = sorted((w["start"], w["end"]) for t in results["trials"] for w in t["bench_windows"])
    for (_, end), (start, _) in itertools.pairwise(windows):
        assert end <= start, f"two trials benchmarked on 'local' at once: {windows}"
    return len(windows)


def check_finished(results: dict[str, Any], n_trials: int, sweep_dir: Path) -> list[dict[str, Any]]:
    """Every counted trial completed or was pruned, once, in a run directory of its own."""
    counted = [t for t in results["trials"] if t["state"] in ("COMPLETE", "PRUNED")]
    assert len(counted) == n_trials, results["counts"]
    run_dirs = [t["run_dir"] for t in results["trials"]]
    assert len(set(run_dirs)) == len(run_dirs), "a run directory was used by two trials"
    numbers = [t["number"] for t in results["trials"]]
    assert sorted(numbers) == list(range(len(numbers))), "a trial number is missing or repeated"
    for trial in counted:
        assert Path(trial["run_dir"]).parent == sweep_dir / "trials"
        assert (Path(trial["run_dir"]) / ".edgekd" / "stages" / "distill.json").exists()
    return counted


def check_teacher_trained_once(results: dict[str, Any], sweep_dir: Path) -> None:
    shared_key = read_json(sweep_dir / "shared" / ".edgekd" / "stages" / "teacher.json")["key"]
    for trial in results["trials"]:
        if trial["state"] == "COMPLETE":
            assert {"data", "teacher"} <= set(trial["cache_hits"]), trial
            assert read_json(Path(trial["run_dir"]) / ".edgekd" / "stages" / "teacher.json")["key"] == shared_key


def test_sqlite_sweep_with_two_workers(tmp_path: Path) -> None:
    path = recipe(tmp_path, n_trials=8)
    sweep_dir = run_sweep(path, workers=2)
    assert sweep_dir == tmp_path / "sweep"
    results = read_json(sweep_dir / "report.json")
    assert results["schema"] == "edgekd.sweep/1"
    check_finished(results, 8, sweep_dir)
    assert "fail" not in results["counts"], results["counts"]
    assert len({t["worker"] for t in results["trials"]}) == 2, "both worker processes ran trials"
    check_teacher_trained_once(results, sweep_dir)
    assert check_bench_windows_do_not_interleave(results) >= 2
    best = results["recommended"]
    assert best is not None, "no feasible trial: the size limit was meant to admit the narrow students"
    row = next(t for t in results["trials"] if t["number"] == best["number"])
    assert row["feasible"] and row["pareto"]
    assert row["figures"]["size_bytes(onnx_int8)"] <= SIZE_LIMIT
    assert (sweep_dir / "report.html").read_text().count("data:image/png;base64,") == 1


def test_postgres_two_workers_join_one_study(tmp_path: Path) -> None:
    from tests.support.postgres import local_postgres

    try:
        server_cm = local_postgres()
        server = server_cm.__enter__()
    except LookupError as exc:
        pytest.skip(str(exc))
    try:
        import optuna

        path = recipe(tmp_path, n_trials=4)
        first = subprocess.Popen(sweep_cli(str(path), "--storage", server.url))
        deadline = time.time() + 120
        while not optuna.get_all_study_summaries(server.url) and time.time() < deadline:
            time.sleep(0.5)  # the first process creates the study; the second joins it
        second = subprocess.Popen(sweep_cli(str(path), "--storage", server.url, "--worker"))
        assert first.wait(timeout=900) == 0
        assert second.wait(timeout=300) == 0
        results = read_json(tmp_path / "sweep" / "report.json")
        assert results["storage"] == server.url  # no password in this URL to redact
        check_finished(results, 4, tmp_path / "sweep")
        workers = {t["worker"] for t in results["trials"]}
        assert len(workers) == 2, f"both processes should have run trials: {workers}"
        check_bench_windows_do_not_interleave(results)
    finally:
        server_cm.__exit__(None, None, None)


def _study_trials(sqlite: Path) -> list[Any]:
    import optuna

    if not sqlite.exists():
        return []
    try:
        return optuna.load_study(study_name="digits-sweep", storage=f"sqlite:///{sqlite}").get_trials()
    except KeyError:
        return []


def test_worker_killed_mid_trial_fails_that_trial_and_resume_finishes(tmp_path: Path) -> None:
    path = recipe(tmp_path, n_trials=2)
    sqlite = tmp_path / "sweep" / "study.sqlite3"
    worker = subprocess.Popen(sweep_cli(str(path)), start_new_session=True)
    try:
        deadline, victim = time.time() + 300, None
        while time.time() < deadline and victim is None:
            running = [t for t in _study_trials(sqlite) if t.state.name == "RUNNING"]
            if running and (time.time() - running[0].datetime_start.timestamp()) > 3:  # mid-trial, beating
                victim = running[0].number
            time.sleep(0.5)
        assert victim is not None, "no trial started"
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    time.sleep(4)  # grace_s = 3: the victim's heartbeat is now stale
    run_sweep(path, resume=True)
    results = read_json(tmp_path / "sweep" / "report.json")
    states = {t["number"]: t["state"] for t in results["trials"]}
    assert states[victim] == "FAIL", states
    check_finished(results, 2, tmp_path / "sweep")
    import optuna

    retried = [t for t in _study_trials(sqlite)
               if optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == victim]  # fmt: skip
    assert len(retried) == 1 and retried[0].state.name in ("COMPLETE", "PRUNED")
    victim_params = next(t for t in results["trials"] if t["number"] == victim)["params"]
    assert json.dumps(retried[0].user_attrs["values"], sort_keys=True) == json.dumps(victim_params, sort_keys=True)


def test_a_device_that_drops_fails_its_bench_step_which_is_retried_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.sshd import free_port

    inventory = tmp_path / "targets.toml"  # an SSH device whose port nothing listens on: it is gone
    inventory.write_text(f'[targets.gone]\nkind = "ssh"\nhost = "127.0.0.1"\nport = {free_port()}\nuser = "pi"\n')
    monkeypatch.setenv("EDGEKD_TARGETS", str(inventory))
    text = RECIPE.format(n_trials=1, limit=SIZE_LIMIT).replace('targets = ["local"]', 'targets = ["gone"]')
    path = tmp_path / "r.toml"
    path.write_text(text.replace('target = "local"', 'target = "gone"'), encoding="utf-8")
    run_sweep(path)  # the sweep itself finishes: one trial, failed for a reason of its own
    (trial,) = read_json(tmp_path / "sweep" / "report.json")["trials"]
    assert trial["state"] == "FAIL" and trial["error"]["type"] == "TargetError", trial["error"]
    assert [w["attempt"] for w in trial["bench_windows"]] == [1, 2]
    assert all(w["targets"] == ["gone"] and w["error"] for w in trial["bench_windows"])
    assert trial["cache_hits"] == ["calibrate", "data", "teacher"], "a failed trial still shows its cache hits"
