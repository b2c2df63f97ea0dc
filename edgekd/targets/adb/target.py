"""Android phones through the real `adb` client: the Target protocol, two run modes, doctor.

```toml
[targets.pixel]
kind = "adb"
serial = "1A211FDF6001V7"     # or "192.168.1.20:5555"; None: $ANDROID_SERIAL, else the one phone attached
mode = "runner"               # "runner" (edgekd_runner.py on the phone's python3, e.g. Termux)
                              # "benchmark_model" / "ort_perf_test" (the binaries below, pushed once)
python = "/data/data/com.termux/files/usr/bin/python3"   # see below
benchmark_model = "tools/android_aarch64_benchmark_model"   # in runner mode: TFLite per-op profiles (--profile)
onnxruntime_perf_test = "tools/onnxruntime_perf_test"
big_cores = "c0"              # taskset mask override; default: the cluster with the highest max clock
allow_charging = false        # measure energy on USB/AC power (results flagged)
```

Every device command is one `adb -s SERIAL shell` with a shlex-quoted command line; runs are pinned to
the big cores with `taskset`. In the binary modes `run()` translates the runner's command line into the
tool's and returns its output parsed into an "edgekd.run/1" document, so orchestration is the same.

Runner mode needs a python3 with numpy and ai_edge_litert/tflite_runtime/onnxruntime that adb's `shell` user
may execute. Termux's prefix is private to the Termux app: on an unrooted phone copy a self-contained
python3 under /data/local/tmp and point `python` at it, or on a rooted one write `python = "su 0 /data/data/
com.termux/files/usr/bin/python3"`. `edgekd targets doctor` checks that the interpreter starts.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekd.errors import TargetError
from edgekd.fileio import sha256_file
from edgekd.target_protocol import BoardProfile, Completed, DeviceInfo, HostKeys, OpProfiler, TargetOptions
from edgekd.targets.adb.entry import AdbEntry, entry_identity, parse_entry
from edgekd.targets.adb.modes import NativeRun, translate_runner_argv
from edgekd.targets.adb.probe import ABI_ARCH, PROBE_SCRIPT, PhoneState, cpu_mask, mask_cores, parse_probe
from edgekd.targets.tools import BenchmarkModelProfiler

if TYPE_CHECKING:
    from edgekd.bench.doctor import Check
    from edgekd.bench.noise import GovernorControl
    from edgekd.energy_protocol import EnergyMeter

log = logging.getLogger(__name__)

EXIT_SENTINEL = "__EDGEKD_EXIT__="
LOST = (
    "error: closed",
    "device offline",
    "no devices/emulators found",
    "not found",
    "connection reset",
    "protocol fault",
    "device still authorizing",
)
LOST_REASONS = (
    "device offline",
    "no devices/emulators found",
    "protocol fault",
    "device still authorizing",
    "connection reset",
)  # adb client messages, matched only on lines adb itself printed


class PhoneLostError(TargetError):
    """The phone went away mid-session. `finished` holds the runs that completed before, so nothing is lost."""

    def __init__(self, message: str, *, hint: str | None = None, finished: list[Completed] | None = None) -> None:
        super().__init__(message, hint=hint)
        self.finished = finished or []


class AdbTarget:
    """One phone. Keeps the remote work dir, the sha256 of what was pushed, and every finished run."""

    kind = "adb"

    def __init__(self, name: str, entry: AdbEntry, options: TargetOptions | None = None) -> None:
        self.name = name
        self.entry = entry
        self.options = options or TargetOptions()
        self.serial: str | None = entry.serial or os.environ.get("ANDROID_SERIAL") or None
        self.workdir: str | None = None
        self.pushed: dict[str, str] = {}  # sha256 -> remote path (binaries and models are pushed once)
        self.finished: list[Completed] = []  # runs that completed, kept when the phone goes away later
        self.state: PhoneState | None = None
        self._runs = 0  # numbers the pid files of run() in the work dir
        tool = entry.benchmark_model if entry.mode == "runner" else None  # tool modes profile inside run()
        self._profiler = BenchmarkModelProfiler(self, tool) if tool is not None else None

    @classmethod
    def from_entry(
        cls, name: str, entry: Mapping[str, Any], base: Path, options: TargetOptions | None = None
    ) -> AdbTarget:
        return cls(name, parse_entry(name, dict(entry), base), options)

    @property
    def allow_charging(self) -> bool:
        """Battery energy on USB/AC power: allowed by the entry, or for this run (`--allow-charging`)."""
        return self.entry.allow_charging or self.options.allow_charging

    def identity(self) -> dict[str, str]:
        """The serial (the entry's, else $ANDROID_SERIAL; "" means the one phone attached, known only once
        connected), its transport (usb, or tcp for HOST:PORT) and the entry's run settings."""
        return entry_identity(self.entry, self.entry.serial or os.environ.get("ANDROID_SERIAL") or "")

    def governor_control(self) -> GovernorControl | None:
        return None  # Android's governors need root: read only (info() reports them)

    def board_profile(self) -> BoardProfile | None:
        return None  # big cores are found per phone (taskset), not from a profile

    def host_keys(self) -> HostKeys | None:
        return None

    def op_profiler(self) -> OpProfiler | None:
        """Runner mode with a benchmark_model binary named: TFLite per-op rows from it (tool modes profile
        inside run(); without the binary the runner profiles)."""
        return self._profiler

    # -- the adb client
    def _adb_path(self) -> str:
        path = shutil.which(self.entry.adb_path)
        if path is None:
            raise TargetError(
                f"adb client not found ('{self.entry.adb_path}')",
                hint="install Android platform-tools (Debian: apt-get install adb) or set adb_path in targets.toml",
            )
        return path

    def _adb(self, *args: str, timeout: float = 60.0, serial: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [self._adb_path(), *(("-s", self.serial) if serial and self.serial else ()), *args]
        log.debug("adb: %s", shlex.join(argv[1:])[:300])
        try:
            return subprocess.run(  # the exit status is judged by the caller (adb's own or the sentinel's)
                argv,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                errors="replace",
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise TargetError(
                f"{self.name}: `adb {' '.join(args[:2])}` did not finish within {timeout:.0f} s",
                hint="is the phone still connected and unlocked? (`adb devices`)",
            ) from None

    def _state_error(self, state: str, detail: str = "") -> TargetError:
        who = f"{self.name} ({self.serial})"
        if "unauthorized" in state:
            return TargetError(
                f"{who} has not authorized this computer",
                hint="unlock the phone and accept the 'Allow USB debugging?' prompt, then retry",
            )
        if "offline" in state:
            return TargetError(
                f"{who} is offline: adb sees it but it does not answer",
                hint="unlock the phone, replug the cable (or `adb reconnect offline`) and retry",
            )
        return TargetError(
            f"{who} is not connected{': ' + detail if detail else ''}",
            hint="check `adb devices`; for Wi-Fi debugging run `adb connect HOST:PORT` first",
        )

    def _shell(self, command: str, timeout: float = 60.0, label: str | None = None) -> subprocess.CompletedProcess[str]:
        """One device command; a transport failure (phone gone) becomes TargetError naming `label` (or the command).

        The command runs in a subshell followed by an exit-status sentinel on stderr: the sentinel carries
        the exit code on phones without shell_v2 (legacy `shell:` loses it), and its absence means the
        stream ended early — a phone that went away mid-command, whatever adb's own exit status says.
        """
        result = self._adb("shell", f"({command}\n); echo {EXIT_SENTINEL}$? >&2", timeout=timeout)
        for stream in ("stderr", "stdout"):  # legacy shell merges stderr into stdout
            text = getattr(result, stream)
            head, found, tail = text.rpartition(EXIT_SENTINEL)
            if found:
                code, _, rest = tail.partition("\n")
                setattr(result, stream, head + rest.lstrip("\r\n") if rest.strip() else head)
                result.returncode = int(code.strip()) if code.strip().isdigit() else result.returncode
                return result
        raise self._lost(label or command, result.stderr)

    def _lost(self, command: str, stderr: str) -> PhoneLostError:
        """The phone went away: the reason is adb's own message, never a line the command printed (a
        runtime's log such as "INFO: Created TensorFlow Lite XNNPACK delegate" is the device's stderr)."""
        state = self._adb("get-state", timeout=10) if self.serial else None
        seen = " ".join((state.stdout + state.stderr).split()[:8]) if state else ""
        adb_says = [
            line.strip()
            for line in stderr.splitlines()
            if line.strip().startswith(("error:", "adb:")) or any(m in line for m in LOST_REASONS)
        ]
        reason = adb_says[-1] if adb_says else "the shell stream ended without an exit status"
        return PhoneLostError(
            f"lost the connection to {self.name} ({self.serial}) while running `{command[:80]}`: {reason}",
            hint="check the cable / Wi-Fi and `adb devices`, then rerun" + (f" (adb now says: {seen})" if seen else ""),
            finished=list(self.finished),
        )

    # -- Target protocol
    def connect(self) -> None:
        if self.serial is None:
            self.serial = self._discover()
        state = self._adb("get-state", timeout=15)
        unknown = "not found" in state.stderr
        if unknown and re.fullmatch(r"[\w.-]+:\d+", self.serial):
            self._adb("connect", self.serial, serial=False, timeout=20)  # a Wi-Fi phone not yet connected
            state = self._adb("get-state", timeout=15)
        if state.stdout.strip() != "device":
            raise self._state_error(state.stdout + state.stderr, state.stderr.strip())
        if self.workdir is None:
            made = self._shell(f"mktemp -d {shlex.quote(self.entry.workdir.rstrip('/') + '/edgekd-XXXXXX')}")
            if made.returncode != 0 or not made.stdout.strip().startswith("/"):
                raise TargetError(
                    f"cannot create a work directory under {self.entry.workdir} on {self.name}: "
                    f"{(made.stderr or made.stdout).strip()}",
                    hint="set workdir in targets.toml to a writable directory (/data/local/tmp)",
                )
            self.workdir = made.stdout.strip()

    def _discover(self) -> str:
        listing = self._adb("devices", serial=False, timeout=20)
        rows = [line.split("\t") for line in listing.stdout.splitlines()[1:] if "\t" in line]
        ready = [serial for serial, state in rows if state == "device"]
        if len(ready) == 1:
            return ready[0]
        if not rows:
            raise TargetError(
                "no Android device is attached",
                hint="plug the phone in with USB debugging on, or `adb connect HOST:PORT`",
            )
        if not ready:
            self.serial = rows[0][0]
            raise self._state_error(rows[0][1])
        raise TargetError(
            f"{len(ready)} Android devices are attached ({', '.join(ready)})",
            hint=f"set serial in targets.toml [targets.{self.name}] or ANDROID_SERIAL",
        )

    def probe(self) -> PhoneState:
        result = self._shell(PROBE_SCRIPT, timeout=60)
        self.state = parse_probe(result.stdout)
        return self.state

    def big_cores(self, state: PhoneState | None = None) -> list[int]:
        if self.entry.big_cores:
            return mask_cores(self.entry.big_cores)
        return (state or self.state or self.probe()).big_cores()

    def info(self) -> DeviceInfo:
        state = self.probe()
        big = self.big_cores(state)
        governors = {c.policy: c.governor for c in state.clusters}
        return DeviceInfo(
            name=self.name,
            kind="adb",
            arch=ABI_ARCH.get(state.abi or "", state.abi),
            cores=state.cores,
            cpu_model=state.props.get("ro.soc.model") or state.props.get("ro.board.platform"),
            governor=next((c.governor for c in state.clusters if big and big[0] in c.cpus), None),
            temperatures_c=state.temperatures_c,
            extra={
                "abi": state.abi,
                "sdk": state.sdk,
                "model": state.model,
                "serial": self.serial,
                "big_cores": big,
                "big_core_mask": cpu_mask(big) if big else None,
                "governors": governors,
                "thermal_status": state.thermal_status_name(),
                "on_power": state.on_power(),
                "battery_level": state.battery.get("level"),
                "mode": self.entry.mode,
                "fingerprint": state.props.get("ro.build.fingerprint"),
            },
        )

    def python_argv(self) -> list[str]:
        """`python` from targets.toml, split like a shell would: "su 0 /data/.../python3" works on a rooted phone."""
        return shlex.split(self.entry.python)

    def _require_workdir(self) -> str:
        if self.workdir is None:
            self.connect()
        assert self.workdir is not None
        return self.workdir

    def push(self, path: Path) -> str:
        workdir = self._require_workdir()
        digest = sha256_file(path)
        if digest in self.pushed:
            return self.pushed[digest]
        taken = set(self.pushed.values())
        remote = f"{workdir}/{path.name}"
        if remote in taken:
            remote = f"{workdir}/{digest[:12]}-{path.name}"
        size = path.stat().st_size
        free_kb = (self.state or self.probe()).free_kb
        if free_kb is not None and size > free_kb * 1024:
            raise self._no_space(path, size, free_kb * 1024)
        result = self._adb("push", str(path), remote, timeout=max(60.0, size / 1e6))
        if result.returncode != 0:
            text = (result.stderr + result.stdout).strip()
            if "No space left" in text:
                raise self._no_space(path, size, None)
            if any(marker in text for marker in LOST):
                raise self._lost(f"push {path.name}", text)
            raise TargetError(
                f"adb push of {path.name} to {self.name} failed: {text}",
                hint=f"check that {workdir} is writable (`adb shell ls -ld {workdir}`)",
            )
        # Hash stdin: sha256sum escapes its output line for a name with a backslash or newline.
        check = self._shell(f"sha256sum < {shlex.quote(remote)}")
        remote_digest = check.stdout.split()[0] if check.stdout.split() else ""
        if remote_digest != digest:
            raise TargetError(
                f"{path.name} arrived corrupted on {self.name} (sha256 {remote_digest[:12] or '?'}… ≠ {digest[:12]}…)",
                hint="retry; if it repeats, try another cable or port",
            )
        self.pushed[digest] = remote
        if self.state is not None and self.state.free_kb is not None:
            self.state.free_kb -= size // 1024
        return remote

    def _no_space(self, path: Path, size: int, free: int | None) -> TargetError:
        where = self.entry.workdir
        have = f"only {free / 1e6:.1f} MB free" if free is not None else "no space left"
        return TargetError(
            f"{self.name}: {where} has {have}; {path.name} needs {size / 1e6:.1f} MB",
            hint=f"free space on the phone (Settings > Storage, or `adb shell rm` old files in {where}) and retry",
        )

    def run(self, argv: Sequence[str], timeout: float) -> Completed:
        workdir = self._require_workdir()
        native = translate_runner_argv(self, list(argv)) if self.entry.mode != "runner" else None
        device_argv = native.argv if native else list(argv)
        big = [] if "--pin" in argv else self.big_cores()  # the user's --pin (runner affinity) wins
        pin = ["taskset", cpu_mask(big)] if big else []
        self._runs += 1
        pid_file = shlex.quote(f"{workdir}/.pid.{self._runs}")
        # `sh -c` so that $$ is the pid the tool/runner execs into: cleanup() stops it if the host is
        # interrupted (adbd leaves a command without a terminal running when the host side goes away).
        inner = f"echo $$ > {pid_file} && exec " + shlex.join([*pin, *device_argv])
        command = f"cd {shlex.quote(workdir)} && sh -c {shlex.quote(inner)}"
        started = time.perf_counter()
        result = self._shell(command, timeout=timeout, label=shlex.join(device_argv))
        seconds = time.perf_counter() - started
        stdout = result.stdout
        if native is not None:
            profile_text = self._profiled_run(native, pin, timeout) if result.returncode == 0 else None
            stdout = native.document(result.stdout + result.stderr, result.returncode, profile_text)
        completed = Completed(list(argv), result.returncode, stdout, result.stderr, seconds)
        if result.returncode == 0:
            self.finished.append(completed)
        return completed

    def _profiled_run(self, native: NativeRun, pin: list[str], timeout: float) -> str | None:
        """The tool's second, op-profiled run (NativeRun.profile_argv), after the timed one; its output, or
        None when there is none to make or it failed (the document then says the profile is unavailable)."""
        if not native.profile_argv:
            return None
        workdir = self._require_workdir()
        self._runs += 1
        pid_file = shlex.quote(f"{workdir}/.pid.{self._runs}")
        inner = f"echo $$ > {pid_file} && exec " + shlex.join([*pin, *native.profile_argv])
        result = self._shell(
            f"cd {shlex.quote(workdir)} && sh -c {shlex.quote(inner)}",
            timeout=timeout,
            label=shlex.join(native.profile_argv),
        )
        return result.stdout + result.stderr if result.returncode == 0 else None

    def pull(self, remote: str, local: Path) -> None:
        result = self._adb("pull", remote, str(local), timeout=600)
        if result.returncode != 0:
            raise TargetError(f"adb pull {remote} from {self.name} failed: {(result.stderr or result.stdout).strip()}")

    def energy(self) -> EnergyMeter | None:
        from edgekd.targets.energy import MeterSource, build_meter
        from edgekd.targets.energy.android_battery import BATTERY_FILES, SUPPLY_FILES

        names = [*BATTERY_FILES, *SUPPLY_FILES]
        # One process per sample: `grep -H .` prints "battery/current_now:-412500" for each readable file.
        script = "cd /sys/class/power_supply && grep -H . " + " ".join(names) + " 2>/dev/null; true"

        def read() -> dict[str, str | None]:
            lines = self._shell(script, timeout=15).stdout.splitlines()
            values = dict(line.split(":", 1) for line in lines if ":" in line)
            return {name: (values.get(name) or "").strip() or None for name in names}

        options = {"read": read, "allow_charging": self.allow_charging, "interval_s": self.entry.energy_interval_s}
        return build_meter("android-battery", MeterSource("adb", options=options))

    def cleanup(self) -> None:
        if self.workdir is None:
            return
        workdir, self.workdir = self.workdir, None
        self.pushed.clear()
        quoted = shlex.quote(workdir)
        # Stop what still runs from our pid files first (a Ctrl-C on the host does not reach the phone).
        stop = f'for f in {quoted}/.pid.*; do [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null; done; '
        result = self._adb("shell", stop + f"rm -rf {quoted}", timeout=60)
        if result.returncode != 0:
            raise TargetError(
                f"could not remove {workdir} from {self.name}: {(result.stderr or result.stdout).strip()}",
                hint=f"remove it by hand: adb -s {self.serial} shell rm -rf {workdir}",
            )

    def doctor(self) -> list[Check]:
        from edgekd.targets.adb.doctor import doctor_checks

        return doctor_checks(self)
