"""A Raspberry Pi (or any Linux board) over SSH, implementing the Target protocol.

Transport: asyncssh. It is pure Python (no C extension to build for a user's laptop or CI), reads
~/.ssh/config (HostName, Port, User, IdentityFile, UserKnownHostsFile, ProxyJump) and known_hosts the way
OpenSSH does, and multiplexes channels on one connection, so the power sampler can run `vcgencmd` while a
benchmark runs and a fleet of Pis is driven concurrently. paramiko would need one thread per channel
and has no ~/.ssh/config Match/ProxyJump support. The synchronous Target API runs each target's
coroutines on its own event-loop thread.

Safety: host keys are verified (an unknown key is refused with its fingerprint and the command to trust
it, a changed key loudly with the old and new fingerprints: targets/ssh/hostkeys.py); every remote command is built with shlex.quote; the session's files live in one `mktemp -d`
directory that cleanup() removes, also after a failure or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import os
import shlex
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from edgekd.errors import TargetError
from edgekd.fileio import atomic_write_bytes, sha256_file
from edgekd.target_protocol import BoardProfile, Completed, DeviceInfo, OpProfiler, TargetOptions, TrustChange
from edgekd.targets.ssh.entry import SshEntry, load_profile, parse_entry
from edgekd.targets.ssh.errors import connect_error, disk_full, is_disk_full, is_final, lost_connection
from edgekd.targets.ssh.hostkeys import entry_identity, known_hosts_option, recording_client, trust_key
from edgekd.targets.ssh.hostkeys import refusal as host_key_refusal
from edgekd.targets.ssh.loop import EventLoopThread
from edgekd.targets.tools import BenchmarkModelProfiler

if TYPE_CHECKING:
    import asyncssh

    from edgekd.bench.doctor import Check
    from edgekd.energy_protocol import EnergyMeter
    from edgekd.targets.ssh.entry import PiProfile
    from edgekd.targets.ssh.governor import RemoteGovernorControl

log = logging.getLogger(__name__)
PROBE_SOURCE = Path(__file__).parent.parent / "device_probe.py"
TIMEOUT_EXIT = 124  # coreutils `timeout` exit status when it had to stop the command


class SshTarget:
    """One device over SSH. Not connected until connect(); cleanup() closes and removes remote files."""

    kind = "ssh"

    def __init__(self, name: str, entry: SshEntry, options: TargetOptions | None = None) -> None:
        self.name = name
        self.entry = entry
        self.options = options or TargetOptions()
        self.profile: PiProfile | None = load_profile(entry.profile) if entry.profile else None
        self.workdir: str | None = None  # the remote `mktemp -d` directory of this session
        self.leftover: str | None = None  # a work dir cleanup() could not remove (connection gone)
        self._loop: EventLoopThread | None = None
        self._conn: asyncssh.SSHClientConnection | None = None
        self._pushed: dict[str, str] = {}  # sha256 -> remote path
        self._run_counter = 0
        self._lock = threading.Lock()
        self.last_trust: TrustChange | None = None  # what the last trust() changed in known_hosts
        tool = entry.benchmark_model
        self._profiler = BenchmarkModelProfiler(self, tool) if tool is not None else None

    @classmethod
    def from_entry(
        cls, name: str, entry: Mapping[str, Any], base: Path, options: TargetOptions | None = None
    ) -> SshTarget:
        """Build from a targets.toml entry (without `kind`); relative paths are relative to `base`."""
        return cls(name, parse_entry(name, dict(entry), base), options)

    def identity(self) -> dict[str, str]:
        """The entry's fields that decide where runs happen and the host key edgekd's known_hosts pins for
        the host (what the connection verifies), read without connecting (targets/ssh/hostkeys.py)."""
        return entry_identity(self.entry)

    def board_profile(self) -> BoardProfile | None:
        if self.profile is None:
            return None
        return BoardProfile(self.profile.name, self.profile.default_threads, tuple(self.profile.pin_cores))

    def host_keys(self) -> SshTarget:
        return self

    def op_profiler(self) -> OpProfiler | None:
        return self._profiler

    # --- connection ------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        user = f"{self.entry.user}@" if self.entry.user else ""
        port = f":{self.entry.port}" if self.entry.port else ""
        return f"{user}{self.entry.host}{port}"

    def connect(self) -> None:
        """Open the connection (retrying with backoff) and create the remote work dir."""
        if self._conn is not None:
            return
        if self._loop is None:
            self._loop = EventLoopThread(self.name)
        budget = (self.entry.connect_timeout + 5) * (self.entry.retries + 1) + 2 ** (self.entry.retries + 1)
        self._conn = self._loop.call(self._connect_with_retries(), timeout=budget)
        if self.workdir is None:
            self.workdir = self._make_workdir()

    async def _connect_with_retries(self) -> asyncssh.SSHClientConnection:
        import asyncssh

        self._check_key_file()
        last: BaseException | None = None
        for attempt in range(self.entry.retries + 1):
            client = recording_client()
            try:
                return await asyncssh.connect(
                    self.entry.host, client_factory=lambda client=client: client, **self._connect_options()
                )
            except asyncssh.HostKeyNotVerifiable:
                raise host_key_refusal(self, client.offered) from None
            except (asyncssh.PermissionDenied, asyncssh.KeyImportError) as exc:
                raise connect_error(self, exc, attempts=attempt + 1, final=True) from None
            except (TimeoutError, OSError, asyncssh.Error) as exc:
                if is_final(exc):  # a local key file or a name that does not resolve: retrying cannot help
                    raise connect_error(self, exc, attempts=attempt + 1, final=True) from None
                last = exc
                log.info("ssh %s: attempt %d failed: %s", self.name, attempt + 1, exc)
                if attempt < self.entry.retries:
                    await asyncio.sleep(0.5 * 2**attempt)  # 0.5 s, 1 s, 2 s, ...
        raise connect_error(self, last, attempts=self.entry.retries + 1, final=False)

    def _check_key_file(self) -> None:
        """A `key` that is not a readable file is a configuration mistake: say so before any network traffic."""
        key = self.entry.key
        if key is None:
            return
        if not key.exists():
            raise TargetError(
                f"{self.name}: the private key file {key} does not exist",
                hint=f"set `key` of targets.{self.name} in targets.toml to your private key "
                f"(e.g. ~/.ssh/id_ed25519), or make one: ssh-keygen -t ed25519 -f {key}",
            )
        if not key.is_file() or not os.access(key, os.R_OK):
            raise TargetError(
                f"{self.name}: the private key {key} is not a readable file",
                hint=f"check its permissions (ls -l {key}) or set `key` of targets.{self.name}",
            )

    def _connect_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"connect_timeout": self.entry.connect_timeout}
        if self.entry.port is not None:
            options["port"] = self.entry.port
        if self.entry.user is not None:
            options["username"] = self.entry.user
        if self.entry.key is not None:
            options["client_keys"] = [str(self.entry.key)]
        if self.entry.known_hosts is not None:  # absent: asyncssh reads ~/.ssh/config and ~/.ssh/known_hosts
            options["known_hosts"] = known_hosts_option(self.entry)
        return options

    def fetch_host_key(self) -> tuple[str, str]:
        """(known_hosts line, SHA256 fingerprint) of the key the device presents now. Not authenticated:
        show the fingerprint to the user, who compares it with the one printed on the device."""
        import asyncssh

        async def fetch() -> asyncssh.SSHKey | None:
            if self.entry.port:
                return await asyncssh.get_server_host_key(self.entry.host, port=self.entry.port)
            return await asyncssh.get_server_host_key(self.entry.host)

        loop = self._loop or EventLoopThread(self.name)
        try:
            key = loop.call(fetch(), timeout=self.entry.connect_timeout + 5)
        except (TimeoutError, OSError, concurrent.futures.TimeoutError, asyncssh.Error) as exc:
            raise connect_error(self, exc, attempts=1, final=False) from None
        finally:
            if loop is not self._loop:
                loop.close()
        if key is None:
            raise TargetError(f"{self.name}: {self.address} presented no host key")
        pattern = f"[{self.entry.host}]:{self.entry.port}" if self.entry.port not in (None, 22) else self.entry.host
        key_type, key_data = key.export_public_key("openssh").decode().split()[:2]
        return f"{pattern} {key_type} {key_data}", key.get_fingerprint("sha256")

    def trust_host_key(self, known_hosts_line: str, replace: bool = False) -> TrustChange:
        """Add a line from fetch_host_key() to the target's known_hosts; what changed. A different key
        already there for this host is refused unless `replace`, which removes it."""
        return trust_key(self, known_hosts_line, replace)

    def trust(self, known_hosts_line: str, replace: bool = False) -> Path:
        """trust_host_key(), returning the known_hosts file (`last_trust` keeps what changed)."""
        self.last_trust = self.trust_host_key(known_hosts_line, replace)
        return self.last_trust.path

    def _make_workdir(self) -> str:
        parent = self._path_expr(self.entry.workdir)
        done = self._run_shell(f"mkdir -p {parent} && mktemp -d {parent}/edgekd.XXXXXXXX", timeout=30, what="mktemp")
        if done.returncode != 0:
            if is_disk_full(done.stderr):
                raise disk_full(self, self.entry.workdir, "creating the work dir", None)
            raise TargetError(
                f"{self.name}: cannot create a work dir under {self.entry.workdir}: {done.stderr.strip()}",
                hint=f"set `workdir` of targets.{self.name} in targets.toml to a writable directory",
            )
        return done.stdout.strip()

    @staticmethod
    def _path_expr(path: str) -> str:
        """A shell word for `path`: quoted, except a leading ~/ which becomes "$HOME"/."""
        if path == "~":
            return '"$HOME"'
        if path.startswith("~/"):
            return '"$HOME"/' + shlex.quote(path[2:])
        return shlex.quote(path)

    # --- commands --------------------------------------------------------------------------------

    def _run_shell(self, command: str, timeout: float, what: str, stdin: bytes | None = None) -> Completed:
        """Run a shell command line on the device; a lost connection becomes TargetError."""
        start = time.monotonic()
        result = self._exec(command, timeout, what, stdin)
        stdout, stderr = _text(result.stdout), _text(result.stderr)
        returncode = result.exit_status if result.exit_status is not None else -1
        return Completed(
            argv=[command], returncode=returncode, stdout=stdout, stderr=stderr, seconds=time.monotonic() - start
        )

    def _exec(
        self, command: str, timeout: float, what: str, stdin: bytes | None = None
    ) -> asyncssh.SSHCompletedProcess:
        """The raw (bytes) result of a shell command line; transport failures become TargetError."""
        if self._conn is None or self._loop is None:
            if self._loop is not None and self.workdir is not None:  # we were connected and lost it
                raise lost_connection(self, what, "the connection was already lost")
            self.connect()
        assert self._conn is not None and self._loop is not None  # for the type checker; set by connect()
        try:
            result = self._loop.call(self._run_async(command, stdin), timeout=timeout + 15)
        except concurrent.futures.TimeoutError:
            raise TargetError(f"{self.name}: {what} did not finish within {timeout:.0f} s") from None
        except concurrent.futures.CancelledError:
            raise TargetError(f"{self.name}: {what} was stopped: the target was cleaned up meanwhile") from None
        except TargetError:
            raise
        except Exception as exc:  # noqa: BLE001 - asyncssh/OS errors mean the connection is gone
            self._drop_connection()
            raise lost_connection(self, what, str(exc) or type(exc).__name__) from None
        if result.exit_status is None and result.exit_signal is None:
            self._drop_connection()
            raise lost_connection(self, what, "the channel closed without an exit status")
        return result

    async def _run_async(self, command: str, stdin: bytes | None) -> asyncssh.SSHCompletedProcess:
        assert self._conn is not None
        return await self._conn.run(command, input=stdin, encoding=None, check=False)

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.loop.call_soon_threadsafe(conn.abort)

    def _require_workdir(self) -> str:
        if self.workdir is None:
            self.connect()
        assert self.workdir is not None
        return self.workdir

    def run(self, argv: Sequence[str], timeout: float) -> Completed:
        """Run argv in the work dir; stopped by coreutils `timeout` on the device if it takes too long."""
        workdir = self._require_workdir()
        with self._lock:
            self._run_counter += 1
            pid_file = f"{workdir}/.pid.{self._run_counter}"
        words = " ".join(shlex.quote(str(arg)) for arg in argv)
        # The pid file lets cleanup() stop a command that is still running after Ctrl-C on the host.
        command = (
            f"cd {shlex.quote(workdir)} && echo $$ > {shlex.quote(pid_file)} && "
            f"exec timeout --kill-after=5 {max(1, math.ceil(timeout))} {words}"  # 0 would mean "no limit"
        )
        done = self._run_shell(command, timeout=timeout + 5, what=f"running {argv[0] if argv else 'a command'}")
        done.argv = [str(arg) for arg in argv]
        if done.returncode == TIMEOUT_EXIT and done.seconds >= timeout:
            raise TargetError(
                f"{self.name}: {' '.join(done.argv)[:120]} was stopped after {timeout:.0f} s",
                hint="raise bench.timeout_s in the recipe, or run fewer iterations",
            )
        if done.returncode != 0 and is_disk_full(done.stderr):
            raise disk_full(self, workdir, f"running {argv[0]}", None)
        return done

    def python_argv(self) -> list[str]:
        return shlex.split(self.entry.python)

    # --- files -----------------------------------------------------------------------------------

    def push(self, path: Path) -> str:
        """Copy `path` into the work dir and check its sha256 there; identical files are sent once."""
        workdir = self._require_workdir()
        path = Path(path)
        digest = sha256_file(path)
        if digest in self._pushed:
            return self._pushed[digest]
        remote = f"{workdir}/{len(self._pushed)}-{path.name}"
        quoted = shlex.quote(remote)
        # sha256sum reads stdin: for a name with a backslash or newline, GNU sha256sum escapes it and prefixes its line with one
        done = self._run_shell(
            f"cat > {quoted} && sha256sum < {quoted}", timeout=600, what=f"copying {path.name}", stdin=path.read_bytes()
        )
        if done.returncode != 0:
            if is_disk_full(done.stderr):
                raise disk_full(self, workdir, f"copying {path.name}", path.stat().st_size)
            raise TargetError(f"{self.name}: cannot copy {path.name} to {remote}: {done.stderr.strip()}")
        remote_digest = done.stdout.split()[0] if done.stdout.split() else ""
        if remote_digest != digest:
            raise TargetError(
                f"{self.name}: {path.name} arrived corrupted (sha256 {remote_digest[:12] or '?'} on the device, "
                f"{digest[:12]} here)",
                hint="check the device's storage (dmesg for I/O errors) and retry",
            )
        self._pushed[digest] = remote
        return remote

    def pull(self, remote: str, local: Path) -> None:
        result = self._exec(f"cat {shlex.quote(remote)}", timeout=600, what=f"fetching {remote}")
        if result.exit_status != 0:
            raise TargetError(f"{self.name}: cannot read {remote}: {_text(result.stderr).strip()}")
        data = result.stdout or b""
        atomic_write_bytes(local, data if isinstance(data, bytes) else data.encode())

    def read_text(self, path: str) -> str | None:
        """Contents of a small device file (sysfs), or None if it cannot be read. For meters and thermal."""
        done = self._run_shell(f"cat {shlex.quote(path)}", timeout=30, what=f"reading {path}")
        return done.stdout if done.returncode == 0 else None

    def command_output(self, argv: Sequence[str]) -> str | None:
        """stdout of a device command outside the work dir (vcgencmd), or None if it failed."""
        done = self._run_shell(" ".join(shlex.quote(a) for a in argv), timeout=30, what=f"running {argv[0]}")
        return done.stdout if done.returncode == 0 else None

    # --- what the device is ----------------------------------------------------------------------

    def probe(self) -> dict[str, Any]:
        """The device probe's JSON (targets/device_probe.py run with the target's python)."""
        import json

        workdir = self._require_workdir()
        argv = [*self.python_argv(), "-c", PROBE_SOURCE.read_text(encoding="utf-8"), workdir]
        done = self._run_shell(" ".join(shlex.quote(a) for a in argv), timeout=120, what="probing the device")
        if done.returncode != 0:
            raise TargetError(
                f"{self.name}: `{self.entry.python}` does not run on the device: {done.stderr.strip()[-300:]}",
                hint=f"install Python 3.9+ (sudo apt install python3) or set `python` of targets.{self.name}",
            )
        try:
            probe: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
            return probe
        except (ValueError, IndexError):
            raise TargetError(f"{self.name}: the device probe printed no JSON: {done.stdout[-200:]!r}") from None

    def info(self) -> DeviceInfo:
        from edgekd.targets.ssh.health import device_info

        return device_info(self, self.probe())

    def doctor(self) -> list[Check]:
        from edgekd.targets.ssh.health import doctor_checks

        return doctor_checks(self)

    def governor_control(self) -> RemoteGovernorControl:
        """Holds the cpufreq governor during a benchmark (the orchestrator calls hold/restore)."""
        from edgekd.targets.ssh.governor import RemoteGovernorControl

        return RemoteGovernorControl(self, root=self.entry.cpufreq_root, sudo=self.entry.sudo)

    def energy(self) -> EnergyMeter | None:
        from edgekd.targets.ssh.health import energy_meter

        return energy_meter(self)

    # --- cleanup ---------------------------------------------------------------------------------

    def cleanup(self) -> None:
        """Stop our commands still running, remove the work dir, close. Safe to call twice."""
        workdir, self.workdir = self.workdir, None
        try:
            if workdir is not None and self._conn is not None:
                quoted = shlex.quote(workdir)
                stop = f'for f in {quoted}/.pid.*; do [ -f "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null; done; '
                try:
                    self._run_shell(stop + f"rm -rf -- {quoted}", timeout=30, what="removing the work dir")
                except TargetError as exc:
                    workdir_left = workdir
                    self.leftover = workdir_left
                    log.warning("%s: could not remove %s (%s); remove it by hand", self.name, workdir_left, exc.message)
            elif workdir is not None:
                self.leftover = workdir
                log.warning("%s: connection lost; the remote dir %s is left behind", self.name, workdir)
        finally:
            self._pushed.clear()
            self._drop_connection()
            if self._loop is not None:
                self._loop.close()
                self._loop = None

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def _text(data: bytes | str | None) -> str:
    """A command's output as text (asyncssh gives bytes with encoding=None)."""
    if not data:
        return ""
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data
