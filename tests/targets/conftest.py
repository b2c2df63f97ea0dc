"""Fixtures for the SSH target: a real sshd on loopback and two emulated Raspberry Pis behind it.

- `pi_sshd`: one OpenSSH daemon for the session (tests/support/sshd.py).
- users `edgekd-pi5` (ai-edge-litert + numpy 2) and `edgekd-pi4` (tflite-runtime 2.14 + numpy < 2): their
  `python3` is aarch64 CPython under qemu-aarch64 with the real aarch64 wheels (tests/support/aarch64.py).
- `pi_entry(user, **overrides)`: a targets.toml entry (dict) for one of them, host key trusted.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.aarch64 import aarch64_root, install_python_wrapper
from tests.support.sshd import LoopbackSshd, TestUser, ensure_user, keygen

PI_USERS = {"edgekd-pi5": "litert", "edgekd-pi4": "tflite"}
RECORDINGS = Path(__file__).resolve().parents[1] / "support" / "recordings" / "pi"
# What each user's stand-in `vcgencmd` replays: subcommand -> recording (real firmware output formats), or
# (idle, busy) recordings: "busy" while an edgekd runner runs on the same SSH connection (so test sessions
# running at the same time as the same user do not see each other's load).
VCGENCMD_REPLAY: dict[str, dict[str, str | tuple[str, str]]] = {
    "edgekd-pi5": {
        "measure_temp": "pi5_measure_temp.txt",
        "get_throttled": "pi5_get_throttled.txt",
        "pmic_read_adc": ("pi5_pmic_read_adc_idle.txt", "pi5_pmic_read_adc_load.txt"),
    },
    "edgekd-pi4": {
        "measure_temp": "pi5_measure_temp.txt",
        "get_throttled": "pi4_get_throttled_undervoltage_now.txt",
        "pmic_read_adc": "pi4_pmic_read_adc.txt",
    },
}


# The per-connection sshd process above this script: every command of one SSH connection runs below it.
CONNECTION_PID = """connection_pid() {
  pid=$PPID
  while [ "$pid" -gt 1 ] && [ "$(ps -o comm= -p "$pid")" != sshd ]; do pid=$(ps -o ppid= -p "$pid" | tr -d ' '); done
  echo "$pid"
}
"""


def install_vcgencmd(user: TestUser, replay: dict[str, str | tuple[str, str]]) -> None:
    """A `vcgencmd` in the user's ~/bin that prints recorded firmware outputs (copied into the home)."""
    store = user.home / ".vcgencmd"
    store.mkdir(exist_ok=True)
    cases = []
    for command, recording in replay.items():
        if isinstance(recording, tuple):
            idle, busy = recording
            shutil.copyfile(RECORDINGS / idle, store / f"{command}.idle.txt")
            shutil.copyfile(RECORDINGS / busy, store / f"{command}.busy.txt")
            cases.append(
                f'  {command}) if pgrep -P "$(connection_pid)" -f edgekd_runner >/dev/null; '
                f'then cat "$HOME/.vcgencmd/{command}.busy.txt"; '
                f'else cat "$HOME/.vcgencmd/{command}.idle.txt"; fi ;;'
            )
        else:
            shutil.copyfile(RECORDINGS / recording, store / f"{command}.txt")
            cases.append(f'  {command}) cat "$HOME/.vcgencmd/{command}.txt" ;;')
    script = user.bin_dir / "vcgencmd"
    script.write_text(
        "#!/bin/sh\n# stands in for the Pi firmware's vcgencmd: replays recorded outputs\n"
        + CONNECTION_PID
        + 'case "$1" in\n'
        + "\n".join(cases)
        + "\n"
        "  *) echo 'error=1 error_msg=\"Command not registered\"' ;;\nesac\n"
    )
    script.chmod(0o755)
    for path in (store, script, *store.iterdir()):
        shutil.chown(path, user.name, user.name)


def _require_tools() -> None:
    missing = [tool for tool in ("/usr/sbin/sshd", "ssh-keygen", "qemu-aarch64") if shutil.which(tool) is None]
    if missing:  # a hard error, not a skip: CI must install them (.ci/run does)
        raise RuntimeError(f"missing {', '.join(missing)}: apt-get install openssh-server qemu-user")


@pytest.fixture(scope="session")
def ssh_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    _require_tools()
    folder = tmp_path_factory.mktemp("ssh-keys")
    return {
        "host": keygen(folder / "ssh_host_ed25519_key", "edgekd-test-host"),
        "client": keygen(folder / "client_ed25519", "edgekd-test-client"),
    }


@pytest.fixture(scope="session")
def pi_root() -> Path:
    _require_tools()
    return aarch64_root()


@pytest.fixture(scope="session")
def pi_users(ssh_keys: dict[str, Path], pi_root: Path) -> dict[str, TestUser]:
    users = {}
    for name, flavour in PI_USERS.items():
        user = ensure_user(name, Path(f"{ssh_keys['client']}.pub"))
        install_python_wrapper(user.bin_dir, pi_root, flavour, owner=name)
        install_vcgencmd(user, VCGENCMD_REPLAY[name])
        users[name] = user
    return users


@pytest.fixture(scope="session")
def pi_sshd(
    ssh_keys: dict[str, Path], pi_users: dict[str, TestUser], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LoopbackSshd]:
    daemon = LoopbackSshd(tmp_path_factory.mktemp("sshd"), ssh_keys["host"]).start()
    yield daemon
    daemon.stop()


@pytest.fixture
def fault_sshd(ssh_keys: dict[str, Path], pi_users: dict[str, TestUser], tmp_path: Path) -> Iterator[LoopbackSshd]:
    """A daemon of this test's own, to kill and restart without disturbing the others."""
    daemon = LoopbackSshd(tmp_path / "sshd", ssh_keys["host"]).start()
    yield daemon
    daemon.stop()


@pytest.fixture(scope="session")
def pi_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """fp32 and full-int8 TFLite models (made by TensorFlow once per session) and an inputs .npz."""
    import numpy as np

    from tests.support.bench_models import make_tflite

    folder = tmp_path_factory.mktemp("pi-models")
    models = {precision: make_tflite(folder / f"dense.{precision}.tflite", precision) for precision in ("fp32", "int8")}
    inputs = folder / "inputs.npz"
    np.savez(inputs, x=np.random.default_rng(7).standard_normal((1, 16)).astype(np.float32))
    return {**models, "inputs": inputs}


def make_entry(daemon: LoopbackSshd, client_key: Path, folder: Path, user: str, **overrides: Any) -> dict[str, Any]:
    known_hosts = folder / f"known_hosts-{daemon.port}"
    known_hosts.write_text(daemon.known_hosts_line())
    entry: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": daemon.port,
        "user": user,
        "key": str(client_key),
        "known_hosts": str(known_hosts),
        "connect_timeout": 5.0,
        "retries": 1,
        "power": "none",
    }
    entry.update(overrides)
    return entry


@pytest.fixture
def pi_entry(pi_sshd: LoopbackSshd, ssh_keys: dict[str, Path], tmp_path: Path) -> Callable[..., dict[str, Any]]:
    def build(user: str = "edgekd-pi5", **overrides: Any) -> dict[str, Any]:
        return make_entry(pi_sshd, ssh_keys["client"], tmp_path, user, **overrides)

    return build
