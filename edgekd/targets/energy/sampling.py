"""A background sampler of instantaneous power, integrated into joules: the shared core of the Pi meters.

A meter that can only read "watts now" (the Pi 5 PMIC, an INA2xx over hwmon) subclasses `PowerSampler`
and implements `read_watts()`. Samples are taken on a thread at a fixed interval and integrated with the
trapezoid rule over the window, so an uneven sampling rate does not bias the figure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from itertools import pairwise

from edgekd.energy_protocol import EnergyWindow
from edgekd.errors import BenchError


def trapezoid_joules(samples: list[tuple[float, float]]) -> float:
    """∫ P dt over (seconds, watts) samples in time order."""
    return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in pairwise(samples))


class PowerSampler:
    """Samples `read_watts()` every `interval_s` between start() and stop()."""

    name = "power"
    method = "power"
    coverage = "unknown"

    def __init__(self, interval_s: float = 0.1, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self.samples: list[tuple[float, float]] = []
        self.notes: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: Exception | None = None

    def read_watts(self) -> float | None:
        """Power now in W, or None for a reading that failed (skipped, counted in the notes)."""
        raise NotImplementedError

    @staticmethod
    def probe_reason(probe: Callable[[], object], failed: str, absent: str) -> str | None:
        """Why a meter read through a transport (sysfs over SSH, a command) is unavailable: the probe raised
        (`failed: the error`) or found nothing (`absent`); None when it found something."""
        try:
            found = probe()
        except Exception as exc:  # noqa: BLE001 - a transport failure is "unavailable: why"
            return f"{failed}: {exc}"
        return absent if found is None else None

    def start(self) -> None:
        self.samples = []
        self.notes = []
        self._error = None
        self._stop.clear()
        self._sample()  # one reading at the very start so the window begins at start()
        self._thread = threading.Thread(target=self._loop, name=f"edgekd-{self.name}-sampler", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        watts = self.read_watts()
        if watts is not None:
            self.samples.append((self.clock(), watts))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._sample()
            except Exception as exc:  # noqa: BLE001 - reported by stop(), not lost on the thread
                self._error = exc
                return

    def close(self) -> None:
        """Stop a sampler thread left running by an interrupted window."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=max(5.0, self.interval_s * 5))
            self._thread = None

    def stop(self) -> EnergyWindow:
        if self._thread is None:
            raise BenchError(f"{self.name}: stop() without start()")
        self._stop.set()
        self._thread.join(timeout=max(5.0, self.interval_s * 5))
        self._thread = None
        if self._error is None:
            self._sample()  # and one at the very end
        if self._error is not None:
            raise BenchError(f"{self.name}: power sampling failed: {self._error}")
        if len(self.samples) < 2:
            raise BenchError(
                f"{self.name}: fewer than two power readings in the window",
                hint="run longer (bench.duration_s) so the meter can sample at least twice",
            )
        seconds = self.samples[-1][0] - self.samples[0][0]
        return EnergyWindow(
            joules=trapezoid_joules(self.samples),
            seconds=seconds,
            samples=len(self.samples),
            method=self.method,
            coverage=self.coverage,
            notes=tuple(self.notes),
        )
