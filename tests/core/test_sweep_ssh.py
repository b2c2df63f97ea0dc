"""Two sweep workers whose trials bench the SAME SSH device (a real sshd on loopback): the device lock must
keep the benchmark runs apart. The proof is taken on the device side: the device's `python` is a wrapper that
appends `start`/`end` lines (`date +%s.%N`, on the device) around every runner invocation that loads a model,
and those intervals must not interleave.

The device user's Python is this machine's CPython with the venv's packages (onnxruntime, numpy) on
PYTHONPATH, not the emulated aarch64 one: the lock is what is under test, and qemu would only make it slow.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
import sysconfig
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekd.fileio import read_json
from edgekd.sweep.runner import run_sweep
from tests.core.test_sweep_runs import RECIPE, SIZE_LIMIT, check_finished
from tests.support.sshd import LoopbackSshd, ensure_user, keygen
from tests.targets.conftest import make_entry

pytestmark = [pytest.mark.slow, pytest.mark.ssh]
DEVICE_USER = "edgekd-sweepdev"
HOST_PYTHON = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")  # same ABI as the venv

WRAPPER = """#!/bin/sh
# The device's python for this test: logs the device-side start/end of every benchmark run (a runner
# invocation with --model), then runs this machine's CPython with the venv's onnxruntime and numpy.
log="{log}"
bench=
case " $* " in *" --model "*) bench=1; echo "start $(date +%s.%N) $$" >> "$log" ;; esac
PYTHONPATH="{site}" PYTHONNOUSERSITE=1 "{python}" "$@"
status=$?
if [ -n "$bench" ]; then echo "end $(date +%s.%N) $$" >> "$log"; fi
exit $status
"""


def _tools_or_skip() -> None:
    missing = [t for t in ("/usr/sbin/sshd", "ssh-keygen", "useradd", "runuser") if shutil.which(t) is None]
    if missing or not HOST_PYTHON.exists():
        pytest.skip(f"needs {', '.join(missing) or HOST_PYTHON}")


@pytest.fixture
def device(tmp_path: Path) -> Iterator[tuple[LoopbackSshd, Path, Path]]:
    """(daemon, client key, the wrapper's log file on the device)."""
    _tools_or_skip()
    keys = tmp_path / "keys"
    keys.mkdir()
    host_key = keygen(keys / "host_ed25519", "edgekd-sweep-host")
    client_key = keygen(keys / "client_ed25519", "edgekd-sweep-client")
    user = ensure_user(DEVICE_USER, Path(f"{client_key}.pub"))
    folder = user.home / f"sweep-{uuid.uuid4().hex[:8]}"  # this test's own files on the device
    folder.mkdir()
    log = folder / "bench-runs.log"
    wrapper = folder / "python3"
    wrapper.write_text(WRAPPER.format(log=log, site=sysconfig.get_paths()["purelib"], python=HOST_PYTHON))
    wrapper.chmod(0o755)
    for path in (folder, wrapper):
        shutil.chown(path, DEVICE_USER, DEVICE_USER)
    probe = subprocess.run(
        ["runuser", "-u", DEVICE_USER, "--", str(wrapper), "-c", "import onnxruntime, numpy"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if probe.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"{DEVICE_USER} cannot import the venv's onnxruntime: {probe.stderr.strip()[-200:]}")
    daemon = LoopbackSshd(tmp_path / "sshd", host_key).start()
    try:
        yield daemon, client_key, log
    finally:
        daemon.stop()
        shutil.rmtree(folder, ignore_errors=True)  # made by this fixture


def device_intervals(log: Path) -> list[tuple[float, float]]:
    """(start, end) of every benchmark run, paired by the wrapper's pid, as the device's clock saw them."""
    starts: dict[str, float] = {}
    intervals = []
    for line in log.read_text().splitlines():
        kind, stamp, pid = line.split()
        if kind == "start":
            assert pid not in starts, f"pid {pid} started twice"
            starts[pid] = float(stamp)
        else:
            intervals.append((starts.pop(pid), float(stamp)))
    assert not starts, f"runs that never ended: {starts}"
    return sorted(intervals)


def test_two_workers_benching_one_ssh_device_never_overlap(
    device, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon, client_key, log = device
    entry = make_entry(daemon, client_key, tmp_path, DEVICE_USER, python=str(log.parent / "python3"))
    inventory = tmp_path / "targets.toml"
    inventory.write_text(
        '[targets.dev]\nkind = "ssh"\n' + "".join(f"{k} = {json.dumps(v)}\n" for k, v in entry.items())
    )
    monkeypatch.setenv("EDGEKD_TARGETS", str(inventory))  # the spawned worker inherits it
    text = (
        RECIPE.format(n_trials=4, limit=SIZE_LIMIT)
        .replace('targets = ["local"]', 'targets = ["dev"]')
        .replace('target = "local"', 'target = "dev"')
        .replace("pruning = { percentile = 25, startup_trials = 4 }", 'pruning = { kind = "none" }')
        .replace("epochs = 4, lr", "epochs = 1, lr")
        .replace("epochs = 2, lr", "epochs = 1, lr")
        .replace("runs = 20", "runs = 20\nduration_s = 1.0")  # 1 s per run: without the lock they would meet
        .replace("choices = [2, 4, 8]", "choices = [4, 8]")
    )  # width 2 may miss the int8 parity gate: no bench
    path = tmp_path / "ssh-sweep.toml"
    path.write_text(text, encoding="utf-8")

    sweep_dir = run_sweep(path, workers=2)

    results = read_json(sweep_dir / "report.json")
    counted = check_finished(results, 4, sweep_dir)
    assert all(t["state"] == "COMPLETE" for t in counted), [(t["state"], t.get("error")) for t in counted]
    assert len({t["worker"] for t in results["trials"]}) == 2, "both worker processes ran trials"
    runs = device_intervals(log)
    assert len(runs) >= 4, f"every trial benchmarks on the device: {runs}"
    for (_, end), (start, _) in itertools.pairwise(runs):
        assert end <= start, f"two benchmark runs on the device at once: {runs}"
    windows = [(w["start"], w["end"]) for t in results["trials"] for w in t["bench_windows"]]
    for start, end in runs:  # one machine, one clock: each device run lies inside a trial's locked window
        assert any(w_start <= start and end <= w_end for w_start, w_end in windows), (start, end, windows)
