"""The Target protocol: what every device backend (local, SSH, adb) implements, capabilities included.

Benchmark orchestration, `edgekd targets doctor/trust` and the bench cache key are written once against
this protocol: no caller asks a target with getattr/hasattr what it can do. Optional capabilities are
explicit methods that return None where a target lacks them (`governor_control()`, `board_profile()`,
`host_keys()`, `op_profiler()`). A target's settings are fixed at construction (`TargetOptions`, its
inventory entry); what changes afterwards is only session state (the connection, the remote work dir).
Remote paths are strings; local ones Paths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from edgekd.bench.doctor import Check
    from edgekd.energy_protocol import EnergyMeter


@dataclass
class DeviceInfo:
    """What a device is and has. Unknown values stay None rather than being guessed."""

    name: str
    kind: str  # local | ssh | adb
    arch: str | None = None  # uname -m: x86_64, aarch64, armv7l
    cores: int | None = None
    cpu_model: str | None = None
    governor: str | None = None
    temperatures_c: dict[str, float] = field(default_factory=dict)
    runtimes: dict[str, str] = field(default_factory=dict)  # import name -> version
    python: str | None = None
    numpy: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Completed:
    """A finished command on a device."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_kb: int | None = None  # from wait4 where the transport can see it


@dataclass(frozen=True)
class TargetOptions:
    """Settings a run gives a target at construction (never patched on later).

    `allow_charging`: measure battery energy on USB/AC power (results flagged); `edgekd bench
    --allow-charging` or `[bench] allow_charging = true`. An inventory entry may also allow it itself."""

    allow_charging: bool = False


@dataclass(frozen=True)
class BoardProfile:
    """How to run on a board family (targets/profiles/NAME.toml): its default threads and pinned cores."""

    name: str
    default_threads: int
    pin_cores: tuple[int, ...] = ()


@dataclass(frozen=True)
class TrustChange:
    """What trusting a host key did to known_hosts: the file, the fingerprints removed, whether it was added."""

    path: Path
    removed: tuple[str, ...] = ()
    added: bool = False


class GovernorControl(Protocol):
    """Holds the cpufreq governor during a benchmark and puts the old one back."""

    def hold(self, governor: str = "performance") -> str | None:
        """Set `governor`; None when done, else a note saying why it could not be (the run goes on)."""
        ...

    def restore(self) -> None: ...


class HostKeys(Protocol):
    """An SSH target's host key: fetch what the device presents, trust it in edgekd's known_hosts."""

    def fetch_host_key(self) -> tuple[str, str]:
        """(known_hosts line, SHA256 fingerprint) of the key the device presents now (not authenticated)."""
        ...

    def trust_host_key(self, known_hosts_line: str, replace: bool = False) -> TrustChange: ...


class OpProfiler(Protocol):
    """A per-op profiler the target runs itself for some formats (benchmark_model for TFLite over SSH/local)."""

    def handles(self, model_format: str) -> bool:
        """Whether this profiler profiles artifacts of `model_format` ("tflite", "onnx", ...)."""
        ...

    def profile(self, remote_model: str, runner_argv: Sequence[str], timeout: float) -> dict[str, Any]:
        """Profile the pushed model with the options of the runner command line `runner_argv`.

        Returns the profile part of a runner document: {"profile": OpProfile dict} or
        {"profile_unavailable": reason}. A device that went away raises TargetError."""
        ...


@runtime_checkable
class Target(Protocol):
    """A device to benchmark on. Not connected until connect(); cleanup() removes what it made there."""

    name: str
    kind: str  # "local" | "ssh" | "adb": the inventory kind (registry.TARGET_KINDS)
    options: TargetOptions

    @classmethod
    def from_entry(
        cls, name: str, entry: Mapping[str, Any], base: Path, options: TargetOptions | None = None
    ) -> Target:
        """Build from an inventory entry (without `kind`); relative paths are relative to `base`."""
        ...

    def connect(self) -> None: ...

    def info(self) -> DeviceInfo: ...

    def identity(self) -> dict[str, str]:
        """Where a run happens, computed without connecting: the resolved entry's fields that decide it and
        the device's identity (SSH: the pinned host-key fingerprint; adb: the serial; local: the machine id
        and CPU model). Part of the bench cache key: pointing a name at another device changes it."""
        ...

    def python_argv(self) -> list[str]:
        """How to start Python on the device (for the runner), e.g. ["python3"]."""
        ...

    def push(self, path: Path) -> str:
        """Copy a file into the device's work dir; verify its sha256 there; return the remote path."""
        ...

    def run(self, argv: Sequence[str], timeout: float) -> Completed: ...

    def pull(self, remote: str, local: Path) -> None: ...

    def energy(self) -> EnergyMeter | None: ...

    def cleanup(self) -> None:
        """Remove everything this target created on the device. Safe to call twice."""
        ...

    def doctor(self) -> list[Check]:
        """Preflight checks for `edgekd targets doctor`: one Check per thing a benchmark needs."""
        ...

    def governor_control(self) -> GovernorControl | None:
        """The cpufreq governor control, or None where the target cannot set it."""
        ...

    def board_profile(self) -> BoardProfile | None:
        """The board profile (threads, pinning) the entry names, or None."""
        ...

    def host_keys(self) -> HostKeys | None:
        """Host-key access (SSH targets), or None."""
        ...

    def op_profiler(self) -> OpProfiler | None:
        """A profiler the target runs itself (the inventory's benchmark_model), or None: the runner's own."""
        ...
