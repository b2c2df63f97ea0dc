"""Intel/AMD RAPL energy through the Linux powercap sysfs interface.

Each package zone (`intel-rapl:N`, also used by AMD since Linux 5.8) has `energy_uj`, a counter in µJ
that wraps at `max_energy_range_uj`. Since Linux 5.10 (CVE-2020-8694, "Platypus") `energy_uj` is readable
only by root. The sysfs root is a parameter so tests replay recorded trees.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from edgekd.energy_protocol import EnergyWindow

if TYPE_CHECKING:
    from edgekd.targets.energy import MeterSource

POWERCAP_ROOT = Path("/sys/class/powercap")
# Top-level package zones only: "intel-rapl:0", not the subzones "intel-rapl:0:1" (core/uncore/dram),
# which are already inside the package figure, and not "intel-rapl-mmio:0", which duplicates package 0.
_PACKAGE_ZONE = re.compile(r"^(intel|amd)-rapl:\d+$")
# "psys" (platform) covers the whole SoC and overlaps the packages: summing it would double-count.
_OVERLAPPING_ZONES = {"psys"}


class RaplMeter:
    """Package energy summed over all RAPL package zones under `root`."""

    name = "rapl"
    kinds = ("local",)  # reads this machine's sysfs

    def __init__(self, root: Path = POWERCAP_ROOT, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.root = Path(root)
        self.clock = clock
        self._start: dict[Path, int] | None = None
        self._t0 = 0.0

    @classmethod
    def from_source(cls, source: MeterSource) -> RaplMeter:
        return cls(source.sysfs / "class" / "powercap")

    def close(self) -> None:
        """Nothing to release: the counters are read at start() and stop()."""

    def zones(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        zones = []
        for zone in sorted(self.root.iterdir()):
            if (
                _PACKAGE_ZONE.match(zone.name)
                and (zone / "energy_uj").exists()
                and self._read_text(zone / "name") not in _OVERLAPPING_ZONES
            ):
                zones.append(zone)
        return zones

    def available(self) -> str | None:
        if not self.root.is_dir():
            return (
                f"no RAPL powercap interface at {self.root}: needs an Intel or AMD CPU on bare metal with the "
                "intel_rapl_common driver loaded (virtual machines and containers rarely expose it)"
            )
        zones = self.zones()
        if not zones:
            return f"{self.root} has no RAPL package zones (intel-rapl:N with energy_uj)"
        try:
            for zone in zones:
                self._read_int(zone / "energy_uj")
                self._read_int(zone / "max_energy_range_uj")
        except PermissionError:
            return (
                f"{zones[0] / 'energy_uj'} is readable only by root (Linux >= 5.10, CVE-2020-8694): run as root, "
                f"or `sudo chmod o+r {self.root}/intel-rapl:*/energy_uj` (reset at boot; a udev rule keeps it)"
            )
        except (OSError, ValueError) as exc:
            return f"cannot read RAPL counters under {self.root}: {exc}"
        return None

    def start(self) -> None:
        self._start = {zone: self._read_int(zone / "energy_uj") for zone in self.zones()}
        self._t0 = self.clock()

    def stop(self) -> EnergyWindow:
        if self._start is None:
            raise RuntimeError("RaplMeter.stop() called before start()")
        seconds = self.clock() - self._t0
        total_uj = 0
        notes: list[str] = []
        for zone, before in self._start.items():
            after = self._read_int(zone / "energy_uj")
            delta, wrapped = counter_delta(before, after, self._read_int(zone / "max_energy_range_uj"))
            if wrapped:
                notes.append(f"{zone.name} energy counter wrapped during the window (corrected)")
            total_uj += delta
        self._start = None
        return EnergyWindow(
            joules=total_uj / 1e6,
            seconds=seconds,
            samples=2,
            method="rapl",
            coverage="package",
            notes=tuple(notes),
        )

    def _read_text(self, path: Path) -> str | None:
        try:
            return path.read_text().strip()
        except OSError:
            return None

    def _read_int(self, path: Path) -> int:
        return int(path.read_text().strip())


def counter_delta(before: int, after: int, max_range: int) -> tuple[int, bool]:
    """µJ consumed between two readings of a counter that wraps to 0 after `max_range`; (delta, wrapped).

    One wrap is detectable (after < before); a window longer than a full wrap period (max_range / power,
    about an hour at 70 W on a 262 kJ range) cannot be told apart and must be avoided by the caller."""
    if after >= before:
        return after - before, False
    return max_range - before + after, True
