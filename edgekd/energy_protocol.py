"""The EnergyMeter protocol: joules over a measured window, from whatever the device offers.

Readers (RAPL, Pi 5 PMIC, INA2xx hwmon, Android battery) live in edgekd.targets.energy and take their
source (a sysfs root, a command runner) as a parameter so that tests replay recordings of real devices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class EnergyWindow:
    """Energy measured between start() and stop(), and what it covers."""

    joules: float
    seconds: float
    samples: int
    method: str  # "rapl", "perf", "pi5-pmic", "ina219", "android-battery", "usb-meter-csv"
    coverage: str  # what the figure covers: "package", "SoC rails", "whole board", "battery"
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def watts(self) -> float:
        """Mean power over the window (0 for an empty window)."""
        return self.joules / self.seconds if self.seconds > 0 else 0.0


@runtime_checkable
class EnergyMeter(Protocol):
    """Joules over a window."""

    @property
    def name(self) -> str:
        """The meter's key in edgekd.registry.ENERGY_METERS (a class attribute, or a chooser's choice)."""
        ...

    def available(self) -> str | None:
        """None when the meter can measure here, else why not (and what would make it work)."""
        ...

    def start(self) -> None: ...

    def stop(self) -> EnergyWindow: ...

    def close(self) -> None:
        """Release what the meter holds (a sampler thread, a perf process) after an interrupted window.
        Called once the benchmark ends, also after a failure; a meter holding nothing does nothing."""
        ...
