"""Package energy through `perf stat -a -e power/energy-pkg/` (the RAPL PMU), the fallback to sysfs.

`perf stat -x,` runs system-wide until SIGINT and prints a CSV line `<joules>,Joules,power/energy-pkg/,...`
on stderr. The perf command is a parameter so tests can replay recorded output with a stand-in script.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from edgekd.energy_protocol import EnergyWindow

if TYPE_CHECKING:
    from edgekd.targets.energy import MeterSource

PERF_EVENT = "power/energy-pkg/"


def parse_perf_joules(stderr: str, event: str = PERF_EVENT) -> float | None:
    """Joules from `perf stat -x,` output, or None when the event did not count."""
    for line in stderr.splitlines():
        fields = line.strip().split(",")
        if len(fields) >= 3 and fields[2] == event:
            try:
                return float(fields[0])
            except ValueError:  # "<not counted>" / "<not supported>"
                return None
    return None


def explain_perf_failure(stderr: str, event: str = PERF_EVENT) -> str:
    if "Cannot find PMU" in stderr or "not supported" in stderr or "event syntax error" in stderr:
        return (
            f"perf has no {event} event here: the kernel exposes no RAPL 'power' PMU "
            "(virtual machine, or a CPU without RAPL)"
        )
    if "perf_event_paranoid" in stderr or "Permission" in stderr or "Access to performance monitoring" in stderr:
        return (
            "perf may not count system-wide energy for this user: run as root or "
            "`sudo sysctl kernel.perf_event_paranoid=0`"
        )
    first = next((line.strip() for line in stderr.splitlines() if line.strip()), "no output")
    return f"perf could not count {event}: {first}"


class PerfEnergyMeter:
    """System-wide package energy from a `perf stat` process started at start() and stopped at stop()."""

    name = "perf"
    kinds = ("local",)  # runs perf on this machine

    def __init__(
        self,
        perf_argv: Sequence[str] = ("perf",),
        *,
        event: str = PERF_EVENT,
        clock: Callable[[], float] = time.monotonic,
        settle_s: float = 0.2,
    ) -> None:
        self.perf_argv = list(perf_argv)
        self.settle_s = settle_s
        self.event = event
        self.clock = clock
        self._process: subprocess.Popen[str] | None = None
        self._t0 = 0.0

    @classmethod
    def from_source(cls, source: MeterSource) -> PerfEnergyMeter:
        return cls()

    def _stat_argv(self) -> list[str]:
        return [*self.perf_argv, "stat", "-a", "-x", ",", "-e", self.event]

    def available(self) -> str | None:
        try:
            probe = subprocess.run(
                [*self._stat_argv(), "--", "true"], capture_output=True, text=True, timeout=20, check=False
            )
        except FileNotFoundError:
            return f"{self.perf_argv[0]} is not installed (Debian: apt install linux-perf)"
        except subprocess.TimeoutExpired:
            return "perf did not answer within 20 s"
        if probe.returncode != 0 or parse_perf_joules(probe.stderr, self.event) is None:
            return explain_perf_failure(probe.stderr, self.event)
        return None

    def start(self) -> None:
        self._t0 = self.clock()  # before the settle: the window's seconds cover what perf may count
        self._process = subprocess.Popen(
            self._stat_argv(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
        )
        # perf prints nothing when it starts counting; a SIGINT before its handler is set would lose the
        # window, so give it a moment (inside the window, where idle subtraction and the reference run cancel it).
        time.sleep(self.settle_s)

    def stop(self) -> EnergyWindow:
        if self._process is None:
            raise RuntimeError("PerfEnergyMeter.stop() called before start()")
        process, self._process = self._process, None
        seconds = self.clock() - self._t0
        process.send_signal(signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        joules = parse_perf_joules(stderr, self.event)
        if joules is None:
            raise RuntimeError(explain_perf_failure(stderr, self.event))
        return EnergyWindow(joules=joules, seconds=seconds, samples=1, method="perf", coverage="package")

    def close(self) -> None:
        """Stop a perf process left running by an interrupted window."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None
