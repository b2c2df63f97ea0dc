"""LocalTarget: this machine as a benchmark target.

The runner runs in a subprocess of the host's Python (or another interpreter given in the inventory);
its peak memory comes from os.wait4's ru_maxrss, which the kernel keeps for the reaped child. Files are
copied into a private work directory that cleanup() removes. The child dies with edgekd (PR_SET_PDEATHSIG),
so a killed edgekd leaves no runner spinning.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from edgekd.bench.doctor import Check
from edgekd.bench.noise import GovernorControl
from edgekd.energy_protocol import EnergyMeter
from edgekd.errors import EdgekdError, TargetError
from edgekd.fileio import sha256_file, storage_error
from edgekd.registry import suggest
from edgekd.target_protocol import BoardProfile, Completed, DeviceInfo, HostKeys, OpProfiler, TargetOptions
from edgekd.targets.energy import FirstAvailableMeter, MeterSource, build_meter, check_meter, meter_names
from edgekd.targets.thermal import sysfs_zones, zone_temperatures
from edgekd.targets.tools import BenchmarkModelProfiler, tool_check, tool_identity

RUNTIME_PACKAGES = {
    "onnxruntime": "onnxruntime",
    "ai_edge_litert": "ai-edge-litert",
    "tflite_runtime": "tflite-runtime",
}
PYTHON_PROBE = (
    "import platform, sys, numpy; print(('ok ' if sys.version_info >= (3, 9) else 'old ') + "
    "'Python ' + platform.python_version() + ', numpy ' + numpy.__version__)"
)
ENTRY_KEYS = ("kind", "python", "workdir", "energy", "benchmark_model", "description")
#: Where this machine's identity is read: systemd's machine id, else the kernel's boot id (changes per boot).
MACHINE_ID_FILES = (Path("/etc/machine-id"), Path("/proc/sys/kernel/random/boot_id"))


class LocalTarget:
    """The Target protocol for this machine. Its settings are fixed at construction."""

    kind = "local"

    def __init__(
        self,
        name: str = "local",
        *,
        python: str | None = None,
        workdir_parent: Path | None = None,
        energy_meters: Sequence[EnergyMeter] | None = None,
        sysfs: Path = Path("/sys"),
        options: TargetOptions | None = None,
        profile: BoardProfile | None = None,
        benchmark_model: Path | None = None,
    ) -> None:
        self.name = name
        self.python = python or sys.executable
        self.workdir_parent = workdir_parent
        self.sysfs = sysfs
        self.options = options or TargetOptions()
        self.profile = profile  # a board profile for this machine (tests stand a board in with it)
        self.benchmark_model = benchmark_model  # the user's TFLite benchmark_model binary, for op profiles
        source = MeterSource("local", sysfs=sysfs)
        self.meters = (
            list(energy_meters)
            if energy_meters is not None
            else [meter for meter in (build_meter(n, source) for n in meter_names("local")) if meter is not None]
        )
        self.workdir: Path | None = None
        self._profiler = BenchmarkModelProfiler(self, benchmark_model) if benchmark_model is not None else None

    @classmethod
    def from_entry(
        cls, name: str, entry: Mapping[str, Any], base: Path, options: TargetOptions | None = None
    ) -> LocalTarget:
        """Build from an inventory entry: {kind="local", python?, workdir?, energy? = ["rapl", "perf"],
        benchmark_model? = PATH (relative to targets.toml)}."""
        for key in entry:
            if key not in ENTRY_KEYS:
                close = suggest(key, ENTRY_KEYS)
                raise TargetError(
                    f"target '{name}': unknown key '{key}' for a local target",
                    hint=(f"did you mean '{close}'? " if close else "") + "keys: " + ", ".join(ENTRY_KEYS),
                )
        meters: list[EnergyMeter] | None = None
        if "energy" in entry:
            meters = []
            for meter in entry["energy"]:
                check_meter(str(meter), "local", f"target '{name}'")
                built = build_meter(str(meter), MeterSource("local"))
                if built is not None:
                    meters.append(built)
        workdir = entry.get("workdir")
        tool = entry.get("benchmark_model")
        return cls(
            name,
            python=entry.get("python"),
            workdir_parent=(base / workdir) if workdir else None,
            energy_meters=meters,
            options=options,
            benchmark_model=(base / Path(str(tool)).expanduser()) if tool else None,
        )

    # --- Target protocol ----------------------------------------------------------------------------

    def connect(self) -> None:
        if self.workdir is not None and self.workdir.is_dir():
            return
        try:
            if self.workdir_parent is not None:
                self.workdir_parent.mkdir(parents=True, exist_ok=True)
            self.workdir = Path(tempfile.mkdtemp(prefix="edgekd-local-", dir=self.workdir_parent))
        except OSError as exc:
            raise storage_error(exc, self.workdir_parent or tempfile.gettempdir()) from None

    def info(self) -> DeviceInfo:
        runtimes = {}
        for module, package in RUNTIME_PACKAGES.items():
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                runtimes[module] = importlib.metadata.version(package)
        numpy_version = None
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            numpy_version = importlib.metadata.version("numpy")
        governors = self.governor_control().read()
        return DeviceInfo(
            name=self.name,
            kind=self.kind,
            arch=platform.machine(),
            cores=os.cpu_count(),
            cpu_model=_cpu_model(),
            governor=next(iter(governors.values()), None),
            temperatures_c=zone_temperatures(sysfs_zones(self.sysfs / "class" / "thermal")),
            runtimes=runtimes if self.python == sys.executable else {},
            python=platform.python_version() if self.python == sys.executable else None,
            numpy=numpy_version if self.python == sys.executable else None,
            extra={"python_executable": self.python},
        )

    def python_argv(self) -> list[str]:
        return [self.python]

    def push(self, path: Path) -> str:
        self.connect()
        assert self.workdir is not None
        source = Path(path)
        if not source.is_file():
            raise TargetError(f"cannot push {source}: it is not a file", hint="check the path")
        expected = sha256_file(source)
        destination = self.workdir / f"{expected[:12]}-{source.name}"
        try:
            shutil.copyfile(source, destination)
        except OSError as exc:
            raise storage_error(exc, destination) from None
        if sha256_file(destination) != expected:
            raise TargetError(
                f"the copy of {source.name} in {self.workdir} does not match its sha256",
                hint="the disk may be failing or full",
            )
        return str(destination)

    def run(self, argv: Sequence[str], timeout: float) -> Completed:
        """Run argv in its own process group; reap it with os.wait4 to read its peak RSS (KiB on Linux)."""
        argv = [str(a) for a in argv]
        started = time.perf_counter()
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                process = subprocess.Popen(
                    argv,
                    stdout=out,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                    cwd=self.workdir,
                    start_new_session=True,
                    preexec_fn=die_with_parent(),  # noqa: PLW1509 - only prctl(PDEATHSIG), see die_with_parent
                )
            except OSError as exc:
                raise TargetError(
                    f"cannot start {argv[0]}: {exc.strerror or exc}", hint="check the python path of the local target"
                ) from None
            status, rusage = _reap(process, timeout)
            seconds = time.perf_counter() - started
            out.seek(0)
            err.seek(0)
            stdout = out.read().decode("utf-8", "replace")
            stderr = err.read().decode("utf-8", "replace")
        if status is None:
            raise TargetError(
                f"{Path(argv[0]).name} on {self.name} did not finish within {timeout:.0f} s (killed)",
                hint="raise timeout_s in [bench], or lower runs/duration",
            )
        peak = int(rusage.ru_maxrss // 1024 if sys.platform == "darwin" else rusage.ru_maxrss)
        return Completed(argv, os.waitstatus_to_exitcode(status), stdout, stderr, seconds, peak_rss_kb=peak)

    def pull(self, remote: str, local: Path) -> None:
        try:
            Path(local).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(remote, local)
        except FileNotFoundError:
            raise TargetError(f"{remote} does not exist on {self.name}") from None
        except OSError as exc:
            raise storage_error(exc, local) from None

    def energy(self) -> EnergyMeter | None:
        return FirstAvailableMeter(self.meters)

    def cleanup(self) -> None:
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def identity(self) -> dict[str, str]:
        """This machine (its machine id, else boot id, and CPU model) and the interpreter and work dir used."""
        machine = ""
        for path in MACHINE_ID_FILES:
            with contextlib.suppress(OSError):
                machine = f"{path}:{path.read_text().strip()}"
                break
        identity = {
            "kind": self.kind,
            "machine_id": machine,
            "cpu_model": _cpu_model() or "",
            "python": self.python,
            "workdir": str(self.workdir_parent or ""),
        }
        return {**identity, **tool_identity(self.benchmark_model)}

    def governor_control(self) -> GovernorControl:
        return GovernorControl(self.sysfs / "devices" / "system" / "cpu")

    def board_profile(self) -> BoardProfile | None:
        return self.profile

    def host_keys(self) -> HostKeys | None:
        return None  # no SSH here

    def op_profiler(self) -> OpProfiler | None:
        return self._profiler

    def doctor(self) -> list[Check]:
        """What works for benchmarking here, and how to fix what does not."""
        from edgekd.bench.orchestrate import parse_runner_output, runner_path

        checks = []
        probe = self.run([self.python, "-c", PYTHON_PROBE], 60)
        python_ok = probe.returncode == 0 and probe.stdout.startswith("ok")
        checks.append(
            Check(
                "python + numpy",
                python_ok,
                f"{self.python}: " + (probe.stdout.strip()[3:] or probe.stderr.strip()[-200:]),
                None if python_ok else f"install numpy for {self.python} (Python >= 3.9)",
            )
        )
        for runtime, package in (("ort", "onnxruntime"), ("litert", "ai-edge-litert")):
            completed = self.run([self.python, str(runner_path()), "--baseline", "--runtime", runtime], 120)
            try:
                document = parse_runner_output(completed, self.name)
                version = document["versions"]["runtime"]
                detail = f"{document['runtime']} {version}: {document['peak_rss_kb']} KiB peak RSS loaded"
                checks.append(Check(f"runtime {runtime}", True, detail))
            except EdgekdError as exc:
                checks.append(Check(f"runtime {runtime}", False, exc.message[:300], f"pip install {package}"))
        governors = self.governor_control().read()
        checks.append(
            Check(
                "cpufreq governor",
                bool(governors),
                ", ".join(sorted(set(governors.values()))) or "not exposed (VM or container)",
                None if governors else "frequency is not controllable here; results may drift",
            )
        )
        temps = zone_temperatures(sysfs_zones(self.sysfs / "class" / "thermal"))
        checks.append(
            Check(
                "thermal zones",
                bool(temps),
                ", ".join(f"{k}={v:.0f}°C" for k, v in temps.items()) or "none readable",
                None if temps else "the thermal gate cannot work here",
            )
        )
        meter = self.energy()
        reason = meter.available() if meter else "no meter"
        checks.append(
            Check(
                "energy",
                reason is None,
                reason or f"{meter.name if meter else ''} available",
                None
                if reason is None
                else "energy needs RAPL on bare-metal Intel/AMD Linux or perf "
                "power events; results say energy_unavailable with this reason",
            )
        )
        try:
            os.sched_getaffinity(0)
            checks.append(Check("core pinning", True, f"cores {sorted(os.sched_getaffinity(0))}"))
        except (AttributeError, OSError) as exc:
            checks.append(Check("core pinning", False, str(exc), "pinning needs Linux sched_setaffinity"))
        self.cleanup()
        return checks + tool_check(self.name, self.benchmark_model)


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that makes the child get SIGKILL when edgekd dies (even by SIGKILL, which runs no
    cleanup): its own session keeps it out of Ctrl-C's process group, so nothing else would stop it.

    The signal follows the thread that started the child; run() blocks that thread until the child is
    reaped, so it never fires early. Linux only (prctl); elsewhere None, and a device's own timeout applies."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: the child only makes the call
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # edgekd died between fork and prctl: nobody is left to wait for us
            os._exit(1)

    return arm


def _reap(process: subprocess.Popen[bytes], timeout: float) -> tuple[int | None, Any]:
    """Wait for `process` with os.wait4 in a helper thread (no polling, so the host stays quiet while
    the runner measures); on timeout or Ctrl-C kill its process group and reap it. Status None = timed out."""
    box: dict[str, Any] = {}

    def wait() -> None:
        _, box["status"], box["rusage"] = os.wait4(process.pid, 0)

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    try:
        waiter.join(timeout)
    except KeyboardInterrupt:
        _kill_group(process)
        waiter.join()
        process.returncode = -signal.SIGKILL
        raise
    timed_out = waiter.is_alive()
    if timed_out:
        _kill_group(process)
        waiter.join()
    process.returncode = os.waitstatus_to_exitcode(box["status"])  # reaped here: keep Popen from waiting again
    return (None if timed_out else box["status"]), box["rusage"]


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.processor() or None
