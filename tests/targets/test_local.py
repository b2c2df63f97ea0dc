"""LocalTarget: push with sha256, subprocess runs with wait4 peak RSS, timeouts, inventory entries, doctor."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from edgekd.bench.doctor import Check
from edgekd.errors import TargetError
from edgekd.fileio import sha256_file
from edgekd.target_protocol import Target
from edgekd.targets.local import LocalTarget


@pytest.fixture
def target(tmp_path: Path) -> LocalTarget:
    local = LocalTarget(workdir_parent=tmp_path / "work")
    yield local
    local.cleanup()


def test_implements_the_target_protocol(target: LocalTarget) -> None:
    assert isinstance(target, Target)
    info = target.info()
    assert info.kind == "local" and info.arch and info.cores and "onnxruntime" in info.runtimes


def test_push_copies_into_the_workdir_and_cleanup_removes_it(target: LocalTarget, tmp_path: Path) -> None:
    source = tmp_path / "model.onnx"
    source.write_bytes(os.urandom(4096))
    remote = Path(target.push(source))
    assert remote.parent == target.workdir and sha256_file(remote) == sha256_file(source)
    target.cleanup()
    assert not remote.exists()
    target.cleanup()  # twice is fine


def test_push_of_a_missing_file_is_a_target_error(target: LocalTarget, tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="not a file"):
        target.push(tmp_path / "missing.onnx")


@pytest.mark.covers("target:local")
def test_run_reports_output_status_and_peak_rss_from_wait4(target: LocalTarget) -> None:
    small = target.run([sys.executable, "-c", "print('hi'); import sys; sys.stderr.write('err'); sys.exit(3)"], 60)
    assert (small.returncode, small.stdout.strip(), small.stderr) == (3, "hi", "err")
    big = target.run([sys.executable, "-c", "b = bytearray(200 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])"], 60)
    assert big.returncode == 0
    assert small.peak_rss_kb is not None and big.peak_rss_kb is not None
    assert big.peak_rss_kb > 200 * 1024  # the child's high-water mark, in KiB
    # (not asserted: small < 200 MiB, since Linux carries the parent's high-water mark into the child)


def test_timeout_kills_the_whole_process_group(target: LocalTarget, tmp_path: Path) -> None:
    marker = tmp_path / "grandchild.pid"
    script = (
        "import subprocess, sys, time;"
        " p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        f" open({str(marker)!r}, 'w').write(str(p.pid)); time.sleep(60)"
    )
    started = time.monotonic()
    with pytest.raises(TargetError, match="did not finish within 2 s"):
        target.run([sys.executable, "-c", script], 2)
    assert time.monotonic() - started < 30
    grandchild = int(marker.read_text())
    for _ in range(100):  # the grandchild was killed with the group (reaped by init shortly after)
        try:
            os.kill(grandchild, 0)
            with open(f"/proc/{grandchild}/stat") as stat:
                if stat.read().split()[2] == "Z":
                    break
        except (ProcessLookupError, FileNotFoundError):
            break
        time.sleep(0.05)
    else:
        pytest.fail("the grandchild survived the timeout")


def test_a_missing_interpreter_is_a_target_error(tmp_path: Path) -> None:
    local = LocalTarget(python=str(tmp_path / "python9"))
    with pytest.raises(TargetError, match="cannot start"):
        local.run(local.python_argv() + ["-c", "pass"], 10)


def test_from_entry_validates_keys_and_meters(tmp_path: Path) -> None:
    entry = {"python": sys.executable, "workdir": "w", "energy": ["perf"]}
    local = LocalTarget.from_entry("bench-box", entry, tmp_path)
    assert local.name == "bench-box" and local.workdir_parent == tmp_path / "w"
    assert [m.name for m in local.meters] == ["perf"]
    with pytest.raises(TargetError, match="unknown key 'pyhton'") as caught:
        LocalTarget.from_entry("x", {"pyhton": "python3"}, tmp_path)
    assert "did you mean 'python'" in (caught.value.hint or "")
    with pytest.raises(TargetError, match="energy meter 'pi5-pmic' does not work on local targets"):
        LocalTarget.from_entry("x", {"energy": ["pi5-pmic"]}, tmp_path)


def test_energy_explains_why_it_is_unavailable_here(tmp_path: Path) -> None:
    local = LocalTarget(sysfs=tmp_path / "sys")  # a sysfs without powercap, as on this VM
    meter = local.energy()
    assert meter is not None
    reason = meter.available()
    if reason is not None:
        assert reason.startswith("rapl: no RAPL powercap interface") and "perf:" in reason


def test_doctor_reports_checks(target: LocalTarget) -> None:
    checks = target.doctor()
    assert all(isinstance(c, Check) for c in checks)
    by_name = {c.name: c for c in checks}
    assert by_name["python + numpy"].ok and by_name["runtime ort"].ok and by_name["runtime litert"].ok
    energy = by_name["energy"]
    assert energy.ok or (energy.fix and "RAPL" in energy.detail)
    assert target.workdir is None  # doctor leaves nothing behind
