"""The runner killed on the device mid-run (OOM killer, a user's `kill -9`): one clear TargetError naming the
target and the exit status, and the target's unique work directory removed all the same.

The device is this machine (the real LocalTarget and runner); a watcher thread SIGKILLs the runner process
once it is measuring, exactly as the kernel's OOM killer would.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from edgekd.artifacts import create_artifact
from edgekd.bench.orchestrate import bench_artifacts
from edgekd.config.bench import BenchConfig
from edgekd.errors import TargetError
from edgekd.targets.local import LocalTarget

REPO = Path(__file__).resolve().parents[2]
from tests.support.bench_models import make_matmul_onnx


def measuring_runner(workdir_parent: Path) -> int | None:
    """pid of a runner started in a work dir under `workdir_parent` that is timing runs (not the RSS baseline)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        measuring = "--runs" not in argv or argv[argv.index("--runs") + 1] != "0"
        if (
            any("edgekd_runner" in a for a in argv)
            and cwd.startswith(str(workdir_parent))
            and "--model" in argv
            and measuring
        ):
            return int(entry.name)
    return None


def kill_when_measuring(workdir_parent: Path, killed: list[int], stop: threading.Event) -> None:
    while not stop.is_set():
        pid = measuring_runner(workdir_parent)
        if pid is not None:
            time.sleep(0.3)  # let it get into the timed loop
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.02)


def test_runner_killed_on_the_device_is_a_target_error_and_the_workdir_goes(tmp_path: Path) -> None:
    model = make_matmul_onnx(tmp_path / "slow.onnx", layers=8, size=128)
    artifact = create_artifact(model, name="slow", format="onnx", precision="fp32", producer="test")
    parent = tmp_path / "device"
    target = LocalTarget(workdir_parent=parent, sysfs=tmp_path / "sys")
    killed: list[int] = []
    stop = threading.Event()
    watcher = threading.Thread(target=kill_when_measuring, args=(parent, killed, stop), daemon=True)
    watcher.start()
    config = BenchConfig(runs=1, duration_s=120.0, warmup=1, energy=False, governor=None, timeout_s=200)
    try:
        with pytest.raises(TargetError) as caught:
            bench_artifacts(target, [artifact], config)
    finally:
        stop.set()
        watcher.join(timeout=5)
    assert killed, "the watcher never saw the runner"
    assert "the runner on local was killed by signal 9 (SIGKILL) without a result" in caught.value.message
    assert target.workdir is None
    assert list(parent.iterdir()) == []  # the unique edgekd-local-* dir was removed


def _alive(pid: int) -> bool:
    """Running and not a zombie (a dead child waits in state Z until its new parent reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_edgekd_killed_takes_its_local_runner_with_it(tmp_path: Path) -> None:
    """SIGKILL to edgekd runs no cleanup; the runner (in its own session, out of Ctrl-C's reach) must not be
    left spinning at 100 % CPU: it gets SIGKILL from the kernel when its parent dies (PR_SET_PDEATHSIG)."""
    import subprocess

    model = make_matmul_onnx(tmp_path / "slow.onnx", layers=2, size=64)
    parent = tmp_path / "device"
    inventory = tmp_path / "targets.toml"
    inventory.write_text(f'[targets.here]\nkind = "local"\nworkdir = "{parent}"\n')
    edgekd = Path(sys.executable).with_name("edgekd")
    env = dict(os.environ, EDGEKD_HISTORY=str(tmp_path / "history.sqlite"))
    process = subprocess.Popen(
        [
            str(edgekd),
            "bench",
            str(model),
            "--target",
            "here",
            "--inventory",
            str(inventory),
            "--duration",
            "300",
            "--warmup",
            "0",
            "--no-energy",
            "--no-history",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    runner = None
    try:
        deadline = time.monotonic() + 120
        while runner is None and time.monotonic() < deadline and process.poll() is None:
            runner = measuring_runner(parent)
            time.sleep(0.05)
        assert runner is not None, "the runner never started measuring"
        process.kill()
        process.wait(timeout=30)
        deadline = time.monotonic() + 30
        while _alive(runner) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(runner), "the runner outlived edgekd"
    finally:
        if process.poll() is None:
            process.kill()
        if runner is not None and _alive(runner):
            os.kill(runner, signal.SIGKILL)
