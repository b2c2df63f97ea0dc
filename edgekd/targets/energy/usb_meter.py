"""Energy from an external USB power meter's log (FNIRSI FNB48/FNB58, UM34C, …), aligned by timestamps.

A USB meter between the supply and the Pi sees the whole board. Its logger writes a table with a header:
comma- or whitespace-separated, a time column (Unix seconds, or ISO 8601 local time) and voltage/current
(or power) columns whose names carry their unit (voltage_V, current_A, Current(mA), power_W, ...).
The meter's clock may differ from the host's: `clock_offset_s` is meter time minus host time.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from edgekd.energy_protocol import EnergyWindow
from edgekd.errors import BenchError
from edgekd.targets.energy.sampling import trapezoid_joules

if TYPE_CHECKING:
    from edgekd.targets.energy import MeterSource


def _column(header: list[str], *keys: str) -> int | None:
    for index, name in enumerate(header):
        lowered = name.lower()
        if any(key in lowered for key in keys):
            return index
    return None


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return datetime.fromisoformat(text).timestamp()


def _scale(name: str) -> float:
    """1e-3 for a milli-unit column (Current(mA), power_mW), else 1."""
    lowered = name.lower().replace("(", "_").replace(")", "").replace("[", "_").replace("]", "")
    return 1e-3 if lowered.endswith(("_ma", "_mw", "_mv", " ma", " mw", " mv")) else 1.0


def read_power_log(path: Path) -> list[tuple[float, float]]:
    """(unix seconds, watts) rows of a USB meter log, in time order."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise BenchError(f"cannot read the USB meter log {path}: {exc.strerror}") from None
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise BenchError(f"the USB meter log {path} is empty")
    rows = list(csv.reader(lines)) if "," in lines[0] else [line.split() for line in lines]
    header = [name.strip() for name in rows[0]]
    time_col = _column(header, "timestamp", "time", "unix")
    power_col = _column(header, "power", "watt")
    volt_col = _column(header, "voltage", "volt")
    curr_col = _column(header, "current", "curr", "amps")  # not "amp": it is in "timestamp"
    if time_col is None or (power_col is None and (volt_col is None or curr_col is None)):
        raise BenchError(
            f"{path}: cannot find time and power (or voltage and current) columns in header {header}",
            hint="the log needs a header such as: timestamp,voltage_V,current_A",
        )
    samples = []
    for row in rows[1:]:
        try:
            when = _seconds(row[time_col].strip())
            if power_col is not None:
                watts = float(row[power_col]) * _scale(header[power_col])
            else:
                assert volt_col is not None and curr_col is not None  # checked above, for the type checker
                watts = (
                    float(row[volt_col]) * _scale(header[volt_col]) * float(row[curr_col]) * _scale(header[curr_col])
                )
        except (ValueError, IndexError):
            continue  # a torn last line or a repeated header
        samples.append((when, watts))
    return sorted(samples)


def window_from_log(path: Path, start: float, end: float, clock_offset_s: float = 0.0) -> EnergyWindow:
    """Energy between host times `start` and `end` (Unix seconds) from the meter log."""
    lo, hi = start + clock_offset_s, end + clock_offset_s
    inside = [(t, w) for t, w in read_power_log(path) if lo <= t <= hi]
    if len(inside) < 2:
        raise BenchError(
            f"{path}: fewer than two meter samples between {lo:.1f} and {hi:.1f} (meter clock)",
            hint="was the meter logging during the run? set the clock offset if the meter's clock differs",
        )
    notes = (
        f"aligned by timestamps, meter clock offset {clock_offset_s:+.3f} s",
        f"covers {inside[-1][0] - inside[0][0]:.2f} s of the {hi - lo:.2f} s window",
    )
    return EnergyWindow(
        joules=trapezoid_joules(inside),
        seconds=inside[-1][0] - inside[0][0],
        samples=len(inside),
        method="usb-meter-csv",
        coverage="whole board",
        notes=notes,
    )


class UsbMeterCsvMeter:
    """EnergyMeter reading a USB meter's log file after each window (the logger writes it meanwhile)."""

    name = "usb-meter-csv"
    kinds = ("ssh",)  # the log of a meter between the board's supply and the board

    @classmethod
    def from_source(cls, source: MeterSource) -> UsbMeterCsvMeter | None:
        """None without `usb_meter_csv` in the entry: there is no log to read."""
        path = source.options.get("usb_meter_csv")
        return cls(Path(path)) if path is not None else None

    def __init__(self, path: Path, clock_offset_s: float = 0.0, wall: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock_offset_s = clock_offset_s
        self.wall = wall
        self._start: float | None = None

    def close(self) -> None:
        """Nothing to release: the log is read at stop()."""
        self._start = None

    def available(self) -> str | None:
        if not self.path.is_file():
            return f"no USB meter log at {self.path}: start the meter's logger writing there before benchmarking"
        return None

    def start(self) -> None:
        self._start = self.wall()

    def stop(self) -> EnergyWindow:
        if self._start is None:
            raise BenchError("usb-meter-csv: stop() without start()")
        start, self._start = self._start, None
        return window_from_log(self.path, start, self.wall(), self.clock_offset_s)
