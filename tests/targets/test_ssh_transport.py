"""SshTarget against a real OpenSSH sshd on 127.0.0.1: files, commands, host keys, faults, cleanup."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from edgekd.errors import RecipeError, TargetError
from edgekd.fileio import sha256_file
from edgekd.targets.ssh.target import SshTarget
from tests.support.sshd import LoopbackSshd, free_port
from tests.targets.conftest import make_entry

pytestmark = pytest.mark.ssh


def _target(entry: dict, name: str = "pi") -> SshTarget:
    return SshTarget.from_entry(name, entry, Path("/"))


def test_push_run_pull_and_cleanup(pi_entry, tmp_path: Path) -> None:
    payload = tmp_path / "model weights $(touch pwned).bin"  # spaces and shell syntax must stay a file name
    payload.write_bytes(bytes(range(256)) * 1000)
    target = _target(pi_entry("edgekd-pi5"))
    target.connect()
    workdir = target.workdir
    assert workdir is not None and workdir.startswith("/tmp/edgekd.")
    try:
        remote = target.push(payload)
        assert target.push(payload) == remote  # same content is sent once
        done = target.run(["sha256sum", remote], timeout=30)
        assert done.returncode == 0 and done.stdout.split()[0] == sha256_file(payload)
        back = tmp_path / "back.bin"
        target.pull(remote, back)
        assert back.read_bytes() == payload.read_bytes()
        failed = target.run(["sh", "-c", "echo oops >&2; exit 7"], timeout=30)
        assert (failed.returncode, failed.stderr.strip()) == (7, "oops")
        assert not (Path(workdir) / "pwned").exists() and not Path("/tmp/pwned").exists()
        assert Path(workdir).is_dir()  # the "device" is this machine: its files are visible here
    finally:
        target.cleanup()
    assert not Path(workdir).exists()
    target.cleanup()  # twice is fine


def test_unknown_host_key_is_refused_with_fingerprint(pi_sshd: LoopbackSshd, pi_entry, tmp_path: Path) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    target = _target(pi_entry(known_hosts=str(empty)))
    with pytest.raises(TargetError) as caught:
        target.connect()
    target.cleanup()
    text = str(caught.value)
    assert "not in known_hosts" in text
    assert pi_sshd.fingerprint() in text
    assert f"ssh-keyscan -p {pi_sshd.port} 127.0.0.1 >> {empty}" in text


def test_changed_host_key_is_refused(pi_sshd: LoopbackSshd, pi_entry, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    key_type, key_data = Path(f"{other}.pub").read_text().split()[:2]
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"[127.0.0.1]:{pi_sshd.port} {key_type} {key_data}\n")
    target = _target(pi_entry(known_hosts=str(wrong)))
    with pytest.raises(TargetError, match="refusing") as caught:
        target.connect()
    target.cleanup()
    assert pi_sshd.fingerprint() in str(caught.value)


def test_unreachable_host_retries_then_fails(pi_entry) -> None:
    target = _target(pi_entry(port=free_port(), retries=1, connect_timeout=2.0))
    with pytest.raises(TargetError, match=r"after 2 attempt\(s\)") as caught:
        target.connect()
    target.cleanup()
    assert caught.value.hint and "sshd" in caught.value.hint


def test_wrong_key_is_a_login_refusal(pi_entry, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    target = _target(pi_entry(key=str(stranger), retries=3))
    started = time.monotonic()
    with pytest.raises(TargetError, match="refused the login"):
        target.connect()
    target.cleanup()
    assert time.monotonic() - started < 20  # a refusal is not retried with backoff


def test_entry_is_validated() -> None:
    with pytest.raises(RecipeError, match="hots"):
        SshTarget.from_entry("pi", {"host": "pi.local", "hots": 1}, Path("/"))
    with pytest.raises(TargetError, match="did you mean 'rpi5'"):
        SshTarget.from_entry("pi", {"host": "pi.local", "profile": "rpi55"}, Path("/"))
    target = SshTarget.from_entry("pi", {"host": "pi.local", "key": "keys/id", "profile": "rpi4"}, Path("/inv"))
    assert target.entry.key == Path("/inv/keys/id") and target.profile and target.profile.cores == 4


def test_remote_disk_full_is_a_clear_error(pi_entry, pi_users, tmp_path: Path) -> None:
    """The work dir on a 64 KiB tmpfs (root mounts it; CI runs as root) and a 256 KiB model to push."""
    small = pi_users["edgekd-pi5"].home / f"small-fs-{tmp_path.name}"
    small.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0777", "tmpfs", str(small)], check=True)
    try:
        big = tmp_path / "model.tflite"
        big.write_bytes(b"\0" * 256 * 1024)
        target = _target(pi_entry(workdir=str(small)))
        target.connect()
        try:
            with pytest.raises(TargetError, match="disk is full") as caught:
                target.push(big)
            assert str(small) in str(caught.value) and "df -h" in (caught.value.hint or "")
        finally:
            target.cleanup()
        assert list(small.iterdir()) == []  # the half-written file went with the work dir
    finally:
        subprocess.run(["umount", str(small)], check=True)
        small.rmdir()


def test_sshd_killed_mid_run_then_rerun_works(fault_sshd: LoopbackSshd, ssh_keys, tmp_path: Path) -> None:
    entry = make_entry(fault_sshd, ssh_keys["client"], tmp_path, "edgekd-pi5", retries=0, connect_timeout=3.0)
    target = _target(entry)
    target.connect()
    first = target.run(["echo", "before"], timeout=30)  # a result finished before the drop
    errors: list[BaseException] = []

    def long_run() -> None:
        try:
            target.run(["sleep", "60"], timeout=120)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    worker = threading.Thread(target=long_run)
    worker.start()
    time.sleep(1.0)
    fault_sshd.kill()
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], TargetError)
    assert "lost the SSH connection" in str(errors[0])
    assert first.stdout.strip() == "before"
    with pytest.raises(TargetError):
        target.run(["true"], timeout=10)
    target.cleanup()  # cannot reach the device: records what is left behind instead of raising
    assert target.leftover is not None

    restarted = LoopbackSshd(fault_sshd.state_dir, fault_sshd.host_key, port=fault_sshd.port).start()
    rerun = _target(entry)
    try:
        rerun.connect()
        assert rerun.run(["echo", "after"], timeout=30).stdout.strip() == "after"
    finally:
        rerun.cleanup()
        restarted.stop()


def test_cleanup_stops_a_running_command(pi_entry) -> None:
    """What happens on Ctrl-C: the orchestrator's `finally: target.cleanup()` while a command runs."""
    target = _target(pi_entry())
    target.connect()
    workdir = Path(target.workdir or "")
    outcome: list[object] = []
    worker = threading.Thread(target=lambda: outcome.append(_run_catching(target, ["sleep", "300"])))
    worker.start()
    deadline = time.monotonic() + 10
    while not list(workdir.glob(".pid.*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    pid = int(next(workdir.glob(".pid.*")).read_text())
    target.cleanup()
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert not workdir.exists()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists()  # the remote command was stopped, not left running


def _run_catching(target: SshTarget, argv: list[str]) -> object:
    try:
        return target.run(argv, timeout=600)
    except TargetError as exc:
        return exc


def test_ssh_config_host_alias_is_honoured(
    pi_sshd: LoopbackSshd, ssh_keys, pi_users, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """targets.toml says only `host = "mypi"`; HostName, Port, User, IdentityFile and known_hosts come from ~/."""
    ssh_dir = tmp_path / "home" / ".ssh"
    ssh_dir.mkdir(parents=True)
    (ssh_dir / "known_hosts").write_text(pi_sshd.known_hosts_line())
    (ssh_dir / "config").write_text(
        f"Host mypi\n  HostName 127.0.0.1\n  Port {pi_sshd.port}\n  User edgekd-pi5\n  IdentityFile {ssh_keys['client']}\n"
    )
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with SshTarget.from_entry("pi", {"host": "mypi"}, tmp_path) as target:
        assert target.run(["id", "-un"], timeout=30).stdout.strip() == "edgekd-pi5"


def test_governor_is_held_at_performance_and_restored(pi_entry, pi_users, tmp_path: Path) -> None:
    """A cpufreq tree the test user may write (a Pi's needs sudo); then one it may not: reported, not fatal."""
    user = pi_users["edgekd-pi5"]
    tree = user.home / f"cpufreq-{tmp_path.name}"
    files = [tree / f"cpu{n}" / "cpufreq" / "scaling_governor" for n in range(4)]
    for path in files:
        path.parent.mkdir(parents=True)
        path.write_text("ondemand\n")
    subprocess.run(["chown", "-R", f"{user.name}:{user.name}", str(tree)], check=True)
    target = _target(pi_entry(sudo="", cpufreq_root=str(tree)))
    try:
        control = target.governor_control()
        assert control.hold("performance") is None
        assert [path.read_text().strip() for path in files] == ["performance"] * 4
        control.restore()
        assert [path.read_text().strip() for path in files] == ["ondemand"] * 4
        subprocess.run(["chown", "-R", "root:root", str(tree)], check=True)
        refused = target.governor_control().hold("performance")
        assert refused is not None and "Permission denied" in refused and "sudo tee" in refused
        assert [path.read_text().strip() for path in files] == ["ondemand"] * 4
        missing = _target(pi_entry(cpufreq_root="/nonexistent")).governor_control()
        assert "no cpufreq governors" in (missing.hold("performance") or "")
        missing.target.cleanup()
    finally:
        target.cleanup()
        shutil.rmtree(tree)
