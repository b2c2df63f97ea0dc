"""Host-key trust against real sshd daemons: unknown vs changed keys, `targets trust [--replace]`, a missing
per-target known_hosts file, a missing private key file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekd.errors import TargetError
from edgekd.targets.ssh.target import SshTarget
from tests.support.sshd import LoopbackSshd, free_port, keygen
from tests.targets.conftest import make_entry

pytestmark = pytest.mark.ssh
EDGEKD = str(Path(sys.executable).with_name("edgekd"))


def _target(entry: dict, name: str = "pi") -> SshTarget:
    return SshTarget.from_entry(name, entry, Path("/"))


def _fingerprint(public_key: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(public_key)], capture_output=True, text=True, check=True)
    return out.stdout.split()[1]


def _edgekd(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HOME=str(home), COLUMNS="80", EDGEKD_HISTORY=str(home / "history.sqlite"))
    return subprocess.run(
        [EDGEKD, *args], check=False, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, env=env
    )


@pytest.fixture
def reinstalled(ssh_keys: dict[str, Path], pi_users, tmp_path: Path) -> Iterator[dict]:
    """One address (127.0.0.1:PORT) served first by a daemon with the old host key, then (the device was
    reinstalled) by one with a new key; `serve(which)` switches between them."""
    old_key = keygen(tmp_path / "old_host_key", "old-install")
    port = free_port()
    daemons = {
        "old": LoopbackSshd(tmp_path / "sshd-old", old_key, port=port),
        "new": LoopbackSshd(tmp_path / "sshd-new", ssh_keys["host"], port=port),
    }

    def serve(which: str) -> LoopbackSshd:
        for daemon in daemons.values():
            daemon.stop()
        for _ in range(50):  # the port is free again once the killed listener is gone
            try:
                return daemons[which].start()
            except RuntimeError:
                time.sleep(0.1)
        raise RuntimeError(f"port {port} stayed busy")

    yield {"serve": serve, "daemons": daemons, "old": Path(f"{old_key}.pub"), "new": Path(f"{ssh_keys['host']}.pub")}
    for daemon in daemons.values():
        daemon.stop()


def test_changed_key_is_loud_and_distinct_and_trust_replace_removes_the_old_key(
    reinstalled: dict, ssh_keys: dict[str, Path], tmp_path: Path
) -> None:
    old_fp, new_fp = _fingerprint(reinstalled["old"]), _fingerprint(reinstalled["new"])
    old_daemon = reinstalled["serve"]("old")
    entry = make_entry(old_daemon, ssh_keys["client"], tmp_path, "edgekd-pi5")  # known_hosts: the old key
    known_hosts = Path(entry["known_hosts"])
    with _target(entry) as target:
        assert target.run(["echo", "hi"], timeout=30).stdout.strip() == "hi"

    reinstalled["serve"]("new")  # same host and port, another host key
    target = _target(entry)
    with pytest.raises(TargetError) as caught:
        target.connect()
    target.cleanup()
    message, hint = caught.value.message, caught.value.hint or ""
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in message and "not in known_hosts" not in message
    assert f"has key {old_fp}, the device now offers {new_fp}" in message
    assert f"ssh-keygen -f {known_hosts} -R '[127.0.0.1]:{old_daemon.port}'" in hint
    assert "edgekd targets trust pi --replace" in hint

    inventory = tmp_path / "targets.toml"
    lines = [f"{key} = {json.dumps(value)}" for key, value in entry.items()]
    inventory.write_text('[targets.pi]\nkind = "ssh"\n' + "\n".join(lines) + "\n")
    before = known_hosts.read_text()
    doctor = _edgekd("--json", "targets", "doctor", "pi", "--inventory", str(inventory), home=tmp_path)
    [reachable] = json.loads(doctor.stdout)["checks"]
    assert doctor.returncode == 1 and "HAS CHANGED" in reachable["detail"] and new_fp in reachable["detail"]

    refused = _edgekd("targets", "trust", "pi", "--inventory", str(inventory), "--yes", home=tmp_path)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"already has a different host key for [127.0.0.1]:{old_daemon.port} ({old_fp})" in refused.stderr
    assert "edgekd targets trust pi --replace" in refused.stderr and "Traceback" not in refused.stderr
    assert known_hosts.read_text() == before  # nothing added next to the old key

    replaced = _edgekd(
        "--json", "targets", "trust", "pi", "--inventory", str(inventory), "--yes", "--replace", home=tmp_path
    )
    assert replaced.returncode == 0, replaced.stdout + replaced.stderr
    assert json.loads(replaced.stdout)["removed"] == [old_fp]
    key_type, key_data = reinstalled["new"].read_text().split()[:2]
    assert known_hosts.read_text() == f"[127.0.0.1]:{old_daemon.port} {key_type} {key_data}\n"  # only the new key
    with _target(entry) as target:
        assert target.run(["echo", "new"], timeout=30).stdout.strip() == "new"

    reinstalled["serve"]("old")  # the old key is no longer trusted
    target = _target(entry)
    with pytest.raises(TargetError, match="REMOTE HOST IDENTIFICATION HAS CHANGED") as caught:
        target.connect()
    target.cleanup()
    assert f"has key {new_fp}, the device now offers {old_fp}" in caught.value.message


def test_a_missing_per_target_known_hosts_trusts_nothing(
    pi_sshd: LoopbackSshd, pi_entry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """~/.ssh/known_hosts trusts the device, but the target names its own file, which does not exist."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text(pi_sshd.known_hosts_line())
    monkeypatch.setenv("HOME", str(home))
    missing = tmp_path / "no_such_known_hosts"
    target = _target(pi_entry(known_hosts=str(missing)))
    with pytest.raises(TargetError) as caught:
        target.connect()
    target.cleanup()
    assert f"the host key is not in known_hosts ({missing})" in caught.value.message
    assert pi_sshd.fingerprint() in caught.value.message


def test_a_missing_private_key_file_is_named_and_not_retried(
    pi_entry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "keys" / "id_missing"
    target = _target(pi_entry(key=str(missing), retries=3, connect_timeout=2.0))
    caplog.set_level("INFO", logger="edgekd.targets.ssh.target")
    with pytest.raises(TargetError) as caught:
        target.connect()
    target.cleanup()
    assert caught.value.message == f"pi: the private key file {missing} does not exist"
    assert "cannot reach" not in caught.value.message and "sshd" not in (caught.value.hint or "")
    assert "set `key` of targets.pi" in (caught.value.hint or "")
    assert not [r for r in caplog.records if "attempt" in r.getMessage()]  # not retried


def test_doctor_prints_the_fingerprint_whole_in_80_columns(pi_sshd: LoopbackSshd, pi_entry, tmp_path: Path) -> None:
    """In a pipe (80 columns) the table folds long words: the fingerprint and the fix are also printed
    whole, one line each, so they can be compared and copied."""
    entry = pi_entry(known_hosts=str(tmp_path / "empty_known_hosts"))
    inventory = tmp_path / "targets.toml"
    inventory.write_text('[targets.pi]\nkind = "ssh"\n' + "\n".join(f"{k} = {json.dumps(v)}" for k, v in entry.items()))
    done = _edgekd("targets", "doctor", "pi", "--inventory", str(inventory), home=tmp_path)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert any(line.startswith("FAIL reachable: ") and pi_sshd.fingerprint() in line for line in lines), done.stdout
    assert any(line.startswith("  fix: ") and f"ssh-keyscan -p {pi_sshd.port} 127.0.0.1 >> " in line for line in lines)
