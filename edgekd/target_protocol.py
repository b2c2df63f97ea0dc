"""The Target protocol: what every device backend (local, SSH, adb) implements.

Benchmark orchestration is written once against this protocol. Remote paths are strings; local ones Paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
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


@runtime_checkable
class Target(Protocol):
    name: str

    def connect(self) -> None: ...

    def info(self) -> DeviceInfo: ...

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
