"""Fixtures: the loopback adb device in a proot sandbox, driven by the real `adb` client.

Each test session gets its own adb server (ANDROID_ADB_SERVER_PORT) and HOME, killed at teardown.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:  # tests.support.* is imported as a namespace package from the repo root
    sys.path.insert(0, str(REPO))

from tests.support.adb_device import LoopbackAdbDevice, read_props  # noqa: E402
from tests.support.adb_sandbox import RECORDINGS, DeviceSandbox  # noqa: E402


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
        return subprocess.run([self.path, *args], env=self.env, capture_output=True, text=True, timeout=timeout)

    def run_with_input(self, args: list[str], data: bytes, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([self.path, *args], env=self.env, input=data, capture_output=True, timeout=timeout)

    def connect(self, device: LoopbackAdbDevice) -> None:
        result = self("connect", device.serial)
        assert "connected to" in result.stdout, result.stdout + result.stderr
        self("-s", device.serial, "wait-for-device", timeout=20)

    def kill_server(self) -> None:
        self("kill-server", timeout=10)


@pytest.fixture(scope="session")
def adb_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdbClient]:
    if shutil.which("adb") is None or shutil.which("proot") is None:
        pytest.fail("the adb tests need the adb client and proot (apt-get install adb proot)")
    client = AdbClient(tmp_path_factory.mktemp("adb-home"))
    client("start-server")
    yield client
    client.kill_server()


def make_device(root: Path, **options: Any) -> LoopbackAdbDevice:
    sandbox = DeviceSandbox(root)
    device = LoopbackAdbDevice(sandbox, props=read_props(RECORDINGS / "pixel6" / "getprop.txt"), **options)
    device.start()
    return device


@pytest.fixture
def adb_env(adb_client: AdbClient, monkeypatch: pytest.MonkeyPatch) -> AdbClient:
    """Point this process's adb invocations (AdbTarget) at the isolated server."""
    for key in ("HOME", "ANDROID_ADB_SERVER_PORT"):
        monkeypatch.setenv(key, adb_client.env[key])
    monkeypatch.delenv("ANDROID_SERIAL", raising=False)
    return adb_client


@pytest.fixture
def phone(tmp_path: Path, adb_env: AdbClient) -> Iterator[LoopbackAdbDevice]:
    """A connected loopback Pixel 6; disconnected and stopped after the test."""
    device = make_device(tmp_path / "phone")
    adb_env.connect(device)
    yield device
    adb_env("disconnect", device.serial)
    device.stop()


@pytest.fixture(scope="session")
def tflite_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.runner.bench_models import make_tflite

    return make_tflite(tmp_path_factory.mktemp("adb-models") / "dense.fp32.tflite")


@pytest.fixture(scope="session")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.runner.bench_models import make_matmul_onnx

    return make_matmul_onnx(tmp_path_factory.mktemp("adb-onnx") / "chain.onnx")


@pytest.fixture
def android_tools(tmp_path: Path) -> dict[str, Path]:
    """Stand-in benchmark_model / onnxruntime_perf_test "binaries" (see tests/support/android_tool_standin.py)."""
    from tests.support.android_tool_standin import write_standin

    folder = tmp_path / "android-tools"
    folder.mkdir()
    return {name: write_standin(folder / name) for name in ("benchmark_model", "onnxruntime_perf_test")}
