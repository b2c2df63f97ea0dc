"""Raspberry Pi 5 power from its PMIC: `vcgencmd pmic_read_adc`, sampled at ≤ 10 Hz, rails summed as V·I.

The PMIC (Renesas DA9091) reports a voltage and a current for each SoC-side rail (VDD_CORE, DDR, 3V3_SYS,
…) but only a voltage for EXT5V (the USB-C input): the board's input power, and so the USB ports, fan
and converter losses, are not covered. Windows are labelled coverage "SoC rails" and say so in their notes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgekd.targets.energy.sampling import PowerSampler

if TYPE_CHECKING:
    from edgekd.targets.energy import MeterSource

COMMAND = ["vcgencmd", "pmic_read_adc"]
MIN_INTERVAL_S = 0.1  # vcgencmd goes through the firmware mailbox; faster polling disturbs the benchmark
# "  VDD_CORE_A current(7)=1.11625000A" / "     EXT5V_V volt(24)=5.08530000V"
_LINE = re.compile(r"^\s*(?P<rail>\S+)_(?P<kind>[AV])\s+(?:current|volt)\(\d+\)=(?P<value>[-0-9.eE+]+)[AV]\s*$")


@dataclass(frozen=True)
class PmicReading:
    volts: dict[str, float]  # rail -> V
    amps: dict[str, float]  # rail -> A

    @property
    def watts(self) -> float:
        """Σ V·I over the rails that report both."""
        return sum(self.volts[rail] * self.amps[rail] for rail in self.volts.keys() & self.amps.keys())

    @property
    def rails_without_current(self) -> list[str]:
        return sorted(self.volts.keys() - self.amps.keys())


def parse_pmic_adc(text: str) -> PmicReading:
    """Parse the output of `vcgencmd pmic_read_adc` (lines of `<RAIL>_A current(n)=…A` / `<RAIL>_V volt(n)=…V`)."""
    volts: dict[str, float] = {}
    amps: dict[str, float] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        target = amps if match["kind"] == "A" else volts
        target[match["rail"]] = float(match["value"])
    return PmicReading(volts=volts, amps=amps)


class Pi5PmicMeter(PowerSampler):
    """EnergyMeter over `vcgencmd pmic_read_adc`; `command_output(argv) -> stdout | None` runs it on the Pi."""

    name = "pi5-pmic"
    method = "pi5-pmic"
    coverage = "SoC rails"
    kinds = ("ssh",)  # runs vcgencmd on the Pi

    @classmethod
    def from_source(cls, source: MeterSource) -> Pi5PmicMeter | None:
        return cls(source.command_output) if source.command_output is not None else None

    def __init__(
        self,
        command_output: Callable[[Sequence[str]], str | None],
        interval_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(interval_s=max(interval_s, MIN_INTERVAL_S), clock=clock)
        self.command_output = command_output
        self._flagged = False

    def read(self) -> PmicReading | None:
        text = self.command_output(COMMAND)
        if not text:
            return None
        reading = parse_pmic_adc(text)
        return reading if reading.amps else None

    def available(self) -> str | None:
        return self.probe_reason(
            self.read,
            "cannot run vcgencmd pmic_read_adc",
            "vcgencmd pmic_read_adc gave no rail currents (only a Raspberry Pi 5 has this PMIC; "
            "on a Pi 4 use an INA219/INA260 or a USB meter)",
        )

    def read_watts(self) -> float | None:
        reading = self.read()
        if reading is None:
            return None
        if not self._flagged and reading.rails_without_current:
            missing = ", ".join(reading.rails_without_current)
            self.notes.append(f"no current reading for {missing}: board input (USB-C 5 V) power is not included")
            self._flagged = True
        return reading.watts

    def start(self) -> None:
        self._flagged = False
        super().start()
