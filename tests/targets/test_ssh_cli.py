"""`edgekd targets doctor NAME` and `edgekd targets trust NAME` against the loopback Pis."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgekd.targets.ssh.target import SshTarget
from tests.support.sshd import LoopbackSshd

pytestmark = [pytest.mark.ssh, pytest.mark.aarch64]
EDGEKD = str(Path(sys.executable).parent / "edgekd")


def _inventory(path: Path, targets: dict[str, dict]) -> Path:
    lines = []
    for name, entry in targets.items():
        lines += [f"[targets.{name}]", 'kind = "ssh"'] + [
            f"{key} = {json.dumps(value)}" for key, value in entry.items()
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _edgekd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EDGEKD, *args], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, check=False
    )


def test_doctor_cli_passes_the_pi5_and_fails_the_underpowered_pi4(pi_entry, tmp_path: Path) -> None:
    inventory = _inventory(
        tmp_path / "targets.toml",
        {
            "pi5": pi_entry("edgekd-pi5", profile="rpi5", power="auto"),
            "pi4": pi_entry("edgekd-pi4", profile="rpi4"),
        },
    )
    ok = _edgekd("--json", "targets", "doctor", "pi5", "--inventory", str(inventory))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    report = json.loads(ok.stdout)
    assert report["ok"] and {c["name"] for c in report["checks"]} >= {"arch", "runtimes", "numpy", "throttling"}
    bad = _edgekd("--json", "targets", "doctor", "pi4", "--inventory", str(inventory))
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    failed = [c for c in json.loads(bad.stdout)["checks"] if not c["ok"]]
    assert [c["name"] for c in failed] == ["throttling"] and "under-voltage" in failed[0]["detail"]
    human = _edgekd("targets", "doctor", "pi4", "--inventory", str(inventory))
    assert human.returncode == 1 and "under-voltage" in human.stdout and "FAIL" in human.stdout


def test_trust_adds_the_host_key_then_connecting_works(pi_sshd: LoopbackSshd, pi_entry, tmp_path: Path) -> None:
    known_hosts = tmp_path / "fresh_known_hosts"
    entry = pi_entry("edgekd-pi5", known_hosts=str(known_hosts))
    known_hosts.unlink(missing_ok=True)
    inventory = _inventory(tmp_path / "targets.toml", {"pi5": entry})
    refused = _edgekd("--json", "targets", "doctor", "pi5", "--inventory", str(inventory))
    [reachable] = json.loads(refused.stdout)["checks"]
    assert refused.returncode == 1 and not reachable["ok"] and pi_sshd.fingerprint() in reachable["detail"]
    assert "ssh-keyscan" in reachable["fix"] and "edgekd targets trust pi5" in reachable["fix"]
    unanswered = _edgekd("targets", "trust", "pi5", "--inventory", str(inventory))  # no "y" on stdin: not added
    assert unanswered.returncode != 0 and pi_sshd.fingerprint() in unanswered.stdout
    assert not known_hosts.exists() or known_hosts.read_text() == ""
    done = _edgekd("--json", "targets", "trust", "pi5", "--inventory", str(inventory), "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["fingerprint"] == pi_sshd.fingerprint()
    assert known_hosts.read_text() == pi_sshd.known_hosts_line()
    with SshTarget.from_entry("pi5", entry, Path("/")) as target:
        assert target.run(["echo", "trusted"], timeout=30).stdout.strip() == "trusted"


@pytest.mark.slow
def test_ctrl_c_during_a_pi_bench_removes_the_remote_work_dir(pi_entry, pi_users, pi_models, tmp_path: Path) -> None:
    parent = pi_users["edgekd-pi5"].home / f"interrupt-{tmp_path.name}"  # made on the "device" by mkdir -p
    inventory = _inventory(tmp_path / "targets.toml", {"pi5": pi_entry("edgekd-pi5", workdir=str(parent))})
    argv = [
        EDGEKD,
        "bench",
        str(pi_models["fp32"]),
        "--target",
        "pi5",
        "--inventory",
        str(inventory),
        "--duration",
        "300",
        "--warmup",
        "0",
        "--no-energy",
        "--no-history",
    ]
    bench = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 180
        while not list(parent.glob("edgekd.*/.pid.2")) and time.monotonic() < deadline:  # the timed run began
            assert bench.poll() is None, bench.communicate()
            time.sleep(0.2)
        assert list(parent.glob("edgekd.*/.pid.2")), "the benchmark never started on the Pi"
        time.sleep(1.0)
        bench.send_signal(signal.SIGINT)
        _, stderr = bench.communicate(timeout=120)
    finally:
        if bench.poll() is None:
            bench.kill()
    assert bench.returncode == 130 and "Traceback" not in stderr
    assert list(parent.iterdir()) == []  # the remote work dir is gone
    deadline = time.monotonic() + 15
    while _processes_using(parent) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_using(parent) == []  # and the runner was stopped, not left running


def _processes_using(folder: Path) -> list[str]:
    """pids whose command line names a file under `folder` (this test's runner, not another session's)."""
    found = subprocess.run(["pgrep", "-f", str(folder)], capture_output=True, text=True, check=False)
    return found.stdout.split()
