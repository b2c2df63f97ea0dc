"""The real adb client, isolated (own server port and HOME), and a loopback Pixel 6 to point it at."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

from tests.support.adb_device import LoopbackAdbDevice, read_props
from tests.support.adb_sandbox import RECORDINGS, DeviceSandbox


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AdbClient:
    """The real adb client with an isolated server port and HOME."""

    def __init__(self, home: Path) -> None:
        self.path = shutil.which("adb") or "adb"
        self.home = home
        self.env = {**os.environ, "HOME": str(home), "ANDROID_ADB_SERVER_PORT": str(_free_port())}
        self.env.pop("ANDROID_SERIAL", None)

    def __call__(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.path, *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def run_with_input(self, args: list[str], data: bytes, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [self.path, *args], env=self.env, input=data, capture_output=True, timeout=timeout, check=False
        )

    def connect(self, device: LoopbackAdbDevice) -> None:
        result = self("connect", device.serial)
        if "connected to" not in result.stdout:
            raise RuntimeError(f"adb connect {device.serial} failed: {result.stdout}{result.stderr}")
        self("-s", device.serial, "wait-for-device", timeout=20)

    def kill_server(self) -> None:
        self("kill-server", timeout=10)


def make_device(root: Path, **options: Any) -> LoopbackAdbDevice:
    """A started loopback phone (Pixel 6 recording) with its sandbox under `root`."""
    device = LoopbackAdbDevice(DeviceSandbox(root), props=read_props(RECORDINGS / "pixel6" / "getprop.txt"), **options)
    device.start()
    return device
