"""The EnergyMeter protocol: joules over a measured window, from whatever the device offers.

Readers (RAPL, Pi 5 PMIC, INA2xx hwmon, Android battery) live in edgekd.targets.energy and take their
source (a sysfs root, a command runner) as a parameter so that tests replay recordings of real devices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class EnergyWindow:
    joules: float
    seconds: float
    samples: int
    method: str  # "rapl", "perf", "pi5-pmic", "ina219", "android-battery", "usb-meter-csv"
    coverage: str  # what the figure covers: "package", "SoC rails", "whole board", "battery"
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def watts(self) -> float:
        return self.joules / self.seconds if self.seconds > 0 else 0.0


@runtime_checkable
class EnergyMeter(Protocol):
    name: str

    def available(self) -> str | None:
        """None when the meter can measure here, else why not (and what would make it work)."""
        ...

    def start(self) -> None: ...

    def stop(self) -> EnergyWindow: ...
