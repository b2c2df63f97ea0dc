"""Fixtures: the loopback adb device in a proot sandbox, driven by the real `adb` client.

Each test session gets its own adb server (ANDROID_ADB_SERVER_PORT) and HOME, killed at teardown.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

from tests.support.adb_client import AdbClient, make_device
from tests.support.adb_device import LoopbackAdbDevice


@pytest.fixture(scope="session")
def adb_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdbClient]:
    if shutil.which("adb") is None or shutil.which("proot") is None:
        pytest.fail("the adb tests need the adb client and proot (apt-get install adb proot)")
    client = AdbClient(tmp_path_factory.mktemp("adb-home"))
    client("start-server")
    yield client
    client.kill_server()


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
    from tests.support.bench_models import make_tflite

    return make_tflite(tmp_path_factory.mktemp("adb-models") / "dense.fp32.tflite")


@pytest.fixture(scope="session")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.bench_models import make_matmul_onnx

    return make_matmul_onnx(tmp_path_factory.mktemp("adb-onnx") / "chain.onnx")


@pytest.fixture
def android_tools(tmp_path: Path) -> dict[str, Path]:
    """Stand-in benchmark_model / onnxruntime_perf_test "binaries" (see tests/support/android_tool_standin.py)."""
    from tests.support.android_tool_standin import write_standin

    folder = tmp_path / "android-tools"
    folder.mkdir()
    return {name: write_standin(folder / name) for name in ("benchmark_model", "onnxruntime_perf_test")}
