"""Noise control: CPU governor hold/restore, a thermal gate, cooldown, and the interleaved run order.

Core pinning is done by the runner itself (`--pin`, os.sched_setaffinity) so it works on every target.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


def run_order(items: Sequence[T], repeats: int, interleave: bool) -> Iterator[tuple[int, T]]:
    """(repeat, item) pairs: A B A B when interleaving (drift hits every item alike), else A A B B."""
    if interleave:
        for repeat in range(repeats):
            for item in items:
                yield repeat, item
    else:
        for item in items:
            for repeat in range(repeats):
                yield repeat, item


@dataclass
class GovernorControl:
    """Reads cpufreq governors under `root` and, where permitted, holds them at `performance`."""

    root: Path = Path("/sys/devices/system/cpu")
    saved: dict[Path, str] = field(default_factory=dict)

    def files(self) -> list[Path]:
        return sorted(self.root.glob("cpu[0-9]*/cpufreq/scaling_governor"))

    def read(self) -> dict[str, str]:
        """cpu name -> governor; empty where cpufreq is not exposed (VMs, containers)."""
        governors = {}
        for path in self.files():
            try:
                governors[path.parent.parent.name] = path.read_text().strip()
            except OSError:
                continue
        return governors

    def hold(self, governor: str = "performance") -> str | None:
        """Set every CPU to `governor`; returns None on success or why it was not possible."""
        files = self.files()
        if not files:
            return f"no cpufreq governors under {self.root} (virtual machine or container): left as is"
        for path in files:
            try:
                current = path.read_text().strip()
                if current != governor:
                    path.write_text(governor)
                    self.saved[path] = current
            except OSError as exc:
                self.restore()
                return f"cannot set the {governor} governor ({exc.strerror}): needs root; left as is"
        return None

    def restore(self) -> None:
        """Put back every governor `hold` changed. Safe to call twice."""
        for path, governor in list(self.saved.items()):
            try:
                path.write_text(governor)
            except OSError as exc:
                log.warning("could not restore governor %s at %s: %s", governor, path, exc)
            del self.saved[path]


def wait_for_thermal(
    read_temps: Callable[[], dict[str, float]],
    limit_c: float,
    timeout_s: float,
    *,
    poll_s: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str | None:
    """Wait until the hottest zone is below `limit_c`. Returns None, or a warning when it timed out
    or no temperature is readable (the gate cannot work then, and the result should say so)."""
    deadline = clock() + timeout_s
    while True:
        temps = read_temps()
        if not temps:
            return "thermal gate skipped: the device reports no temperatures"
        hottest = max(temps.values())
        if hottest < limit_c:
            return None
        if clock() >= deadline:
            return f"thermal gate timed out after {timeout_s:.0f} s: still {hottest:.1f} °C ≥ {limit_c:.1f} °C"
        sleep(min(poll_s, max(0.0, deadline - clock())))
