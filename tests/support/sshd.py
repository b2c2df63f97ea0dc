"""A real OpenSSH sshd on 127.0.0.1 for the SSH target tests: throwaway keys, absolute paths, test users.

Each `LoopbackSshd` is one daemon with its own config, host key and port. Killing it (`kill()`, SIGKILL to
its process group) drops every open session too, which is how the tests cut a connection mid-run.
Test users are real accounts (useradd) unlocked for public-key login only (`usermod -p '*'`), so the
daemon and the remote commands run exactly as on a Pi, just as another uid on this machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"  # sshd re-executes itself and insists on an absolute path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, read from /proc (children first found, grandchildren after)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])  # fields after "(comm)": state ppid ...
            parents.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    queue = [pid]
    while queue:
        for child in parents.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def keygen(path: Path, comment: str) -> Path:
    """An unencrypted ed25519 key pair at `path` / `path.pub` (made once, reused)."""
    if not path.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)
    return path


@dataclass
class TestUser:
    """An unprivileged local account reachable over the loopback sshd."""

    name: str
    home: Path
    bin_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.bin_dir = self.home / "bin"


def authorize(authorized_keys: Path, key_line: str, keep: int = 16) -> None:
    """Add a key, keeping the newest `keep`: test sessions running at the same time each add their own."""
    lines = authorized_keys.read_text().splitlines() if authorized_keys.exists() else []
    lines = [line for line in lines if line.strip() and line.strip() != key_line][-(keep - 1) :] + [key_line]
    staging = authorized_keys.with_name(f".authorized_keys.{os.getpid()}")
    staging.write_text("\n".join(lines) + "\n")
    os.replace(staging, authorized_keys)  # atomic: a concurrent login never reads half a file


def ensure_user(name: str, client_pubkey: Path, path_dirs: list[str] | None = None) -> TestUser:
    """Create (or reuse) `name`, authorize `client_pubkey`, and put ~/bin first on its PATH for ssh commands."""
    exists = subprocess.run(["id", "-u", name], capture_output=True, check=False).returncode == 0
    if not exists:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True, capture_output=True)
    subprocess.run(["usermod", "-p", "*", name], check=True, capture_output=True)  # unlocked, no password
    home = Path(os.path.expanduser(f"~{name}"))
    user = TestUser(name=name, home=home)
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    user.bin_dir.mkdir(exist_ok=True)
    authorize(ssh_dir / "authorized_keys", client_pubkey.read_text().strip())
    search = [str(user.bin_dir), *(path_dirs or []), "/usr/local/bin", "/usr/bin", "/bin"]
    (ssh_dir / "environment").write_text(f"PATH={':'.join(search)}\n")  # read with PermitUserEnvironment
    os.chmod(ssh_dir / "authorized_keys", 0o600)
    shutil.chown(home, name, name)
    for path in (ssh_dir, user.bin_dir, *ssh_dir.iterdir()):
        shutil.chown(path, name, name)
    return user


class LoopbackSshd:
    """One sshd process on 127.0.0.1:`port`, configured entirely from files under `state_dir`."""

    def __init__(
        self, state_dir: Path, host_key: Path, port: int | None = None, extra: list[str] | None = None
    ) -> None:
        self.state_dir = state_dir
        self.host_key = host_key
        self.port = port or free_port()
        self.extra = extra or []  # config lines placed first (sshd keeps the first value of an option)
        self.config = state_dir / "sshd_config"
        self.log = state_dir / "sshd.log"
        self.process: subprocess.Popen[bytes] | None = None

    def write_config(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            "\n".join(
                [
                    *self.extra,
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {self.host_key}",
                    f"PidFile {self.state_dir / 'sshd.pid'}",
                    "AuthorizedKeysFile .ssh/authorized_keys",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "PermitRootLogin no",
                    "PermitUserEnvironment yes",
                    "StrictModes yes",
                    "MaxSessions 32",
                    "MaxStartups 64",
                    "LogLevel VERBOSE",
                    "Subsystem sftp internal-sftp",
                    "",
                ]
            )
        )

    def start(self, timeout: float = 10.0) -> LoopbackSshd:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege-separation directory
        self.write_config()
        log = open(self.log, "ab")  # noqa: SIM115 - the daemon keeps it open
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.config)], stdout=log, stderr=log, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    if sock.recv(4).startswith(b"SSH-"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd did not listen on port {self.port} within {timeout} s:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL the daemon and every per-connection child (they setsid): open sessions drop at once."""
        if self.process is None:
            return
        doomed = [self.process.pid, *descendants(self.process.pid)]
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def kill_sessions(self) -> None:
        """Kill the per-connection sshd processes but keep the listener (a network drop, then recovery)."""
        if self.process is None:
            return
        for pid in descendants(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        self.kill()

    def known_hosts_line(self) -> str:
        """The line `ssh-keyscan -p PORT 127.0.0.1` would print, made from the key file itself."""
        key_type, key_data = Path(f"{self.host_key}.pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {key_type} {key_data}\n"

    def fingerprint(self) -> str:
        out = subprocess.run(["ssh-keygen", "-lf", f"{self.host_key}.pub"], capture_output=True, text=True, check=True)
        return out.stdout.split()[1]  # "256 SHA256:abc... comment (ED25519)"
