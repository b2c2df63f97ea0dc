"""The loopback device against the real adb client: shell v2, sync push/pull, AUTH, legacy shell."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.support.adb_client import AdbClient, make_device

pytestmark = pytest.mark.adb


def test_shell_v2_separates_streams_and_returns_exit_code(phone, adb_env: AdbClient) -> None:
    result = adb_env("-s", phone.serial, "shell", "echo out; echo err >&2; getprop ro.product.model; exit 7")
    assert result.returncode == 7
    assert result.stdout == "out\nPixel 6\n"
    assert result.stderr == "err\n"
    assert phone.commands[-1].endswith("exit 7")


def test_shell_stdin_is_forwarded_and_closed(phone, adb_env: AdbClient) -> None:
    result = adb_env.run_with_input(["-s", phone.serial, "shell", "wc -c"], b"x" * 100_000)
    assert result.returncode == 0 and result.stdout.strip() == b"100000"


def test_sync_push_pull_roundtrip_with_flow_control(phone, adb_env: AdbClient, tmp_path: Path) -> None:
    """1.5 MB crosses many WRTE messages each way; the device's sandbox holds it, never the host's /data."""
    blob = os.urandom(1_500_000)
    local = tmp_path / "blob.bin"
    local.write_bytes(blob)
    pushed = adb_env("-s", phone.serial, "push", str(local), "/data/local/tmp/sub/blob.bin")
    assert pushed.returncode == 0, pushed.stderr
    on_device = phone.sandbox.root / "data" / "local" / "tmp" / "sub" / "blob.bin"
    assert on_device.read_bytes() == blob
    assert not Path("/data/local/tmp/sub/blob.bin").exists()
    remote_sum = adb_env("-s", phone.serial, "shell", "sha256sum /data/local/tmp/sub/blob.bin").stdout.split()[0]
    assert remote_sum == hashlib.sha256(blob).hexdigest()
    pulled = tmp_path / "back.bin"
    assert adb_env("-s", phone.serial, "pull", "/data/local/tmp/sub/blob.bin", str(pulled)).returncode == 0
    assert pulled.read_bytes() == blob
    assert phone.wrte_sent > 1_500_000 // (256 * 1024)  # several flow-controlled writes for one pull


def test_sync_refuses_paths_outside_the_sandbox(phone, adb_env: AdbClient, tmp_path: Path) -> None:
    local = tmp_path / "x.txt"
    local.write_text("x")
    for outside in ("/system/x.txt", "/etc/x.txt"):
        result = adb_env("-s", phone.serial, "push", str(local), outside)
        assert result.returncode != 0 and "Read-only file system" in result.stdout + result.stderr
    assert not (phone.sandbox.root / "system" / "x.txt").exists() and not Path("/etc/x.txt").exists()
    missing = adb_env("-s", phone.serial, "pull", "/data/local/tmp/nope", str(tmp_path / "nope"))
    assert missing.returncode != 0 and "No such file or directory" in missing.stdout + missing.stderr


def test_rsa_auth_accepts_new_key_then_verifies_signatures(tmp_path: Path, adb_env: AdbClient) -> None:
    device = make_device(tmp_path / "auth-phone", auth=True, accept_new_keys=True)
    try:
        first = adb_env("connect", device.serial)
        assert "failed to authenticate" in first.stdout  # the key was offered, the phone "tapped Allow"
        adb_env("-s", device.serial, "wait-for-device", timeout=20)
        assert len(device.authorized_keys) == 1
        adb_env("disconnect", device.serial)
        second = adb_env("connect", device.serial)
        assert "connected to" in second.stdout  # signature checked against the stored key
        assert adb_env("-s", device.serial, "shell", "echo ok").stdout == "ok\n"
        assert len(device.authorized_keys) == 1
    finally:
        adb_env("disconnect", device.serial)
        device.stop()


def test_legacy_shell_without_shell_v2_feature(tmp_path: Path, adb_env: AdbClient) -> None:
    """A device that does not advertise shell_v2 gets `shell:`; the client cannot see exit codes then."""
    device = make_device(tmp_path / "old-phone", features=("cmd",))
    try:
        adb_env.connect(device)
        result = adb_env("-s", device.serial, "shell", "echo old; exit 3")
        assert result.stdout.replace("\r", "") == "old\n"
        assert result.returncode == 0
    finally:
        adb_env("disconnect", device.serial)
        device.stop()


def test_exec_out_is_binary_safe(phone, adb_env: AdbClient) -> None:
    """`exec:` streams raw bytes: no pty, no shell protocol framing, every byte value survives."""
    (phone.sandbox.root / "data" / "local" / "tmp" / "bytes.bin").write_bytes(bytes(range(256)) * 64)
    result = adb_env.run_with_input(["-s", phone.serial, "exec-out", "cat /data/local/tmp/bytes.bin"], b"")
    assert result.returncode == 0 and result.stdout == bytes(range(256)) * 64
    assert phone.commands[-1] == "cat /data/local/tmp/bytes.bin"
