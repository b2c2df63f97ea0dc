"""Board power from an INA219/INA226/INA260 current monitor through the Linux hwmon interface (ina2xx driver).

hwmon units: in1_input bus voltage in mV, curr1_input in mA, power1_input in µW. power1_input is the chip's
own V·I product and preferred; when it cannot be read, power is computed from bus voltage × current.
Wired on the Pi's 5 V input, the figure covers the whole board.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from edgekd.targets.energy.sampling import PowerSampler

if TYPE_CHECKING:
    from edgekd.targets.energy import MeterSource

INA_CHIPS = ("ina219", "ina220", "ina226", "ina230", "ina231", "ina260")
MAX_HWMON = 32


def _number(text: str | None) -> float | None:
    try:
        return float(str(text).strip())
    except ValueError:
        return None


class HwmonInaMeter(PowerSampler):
    """EnergyMeter over `<root>/hwmonN/{power1_input,in1_input,curr1_input}`; `read_text(path) -> str | None`."""

    name = "ina"
    method = "ina"
    kinds = ("ssh",)  # reads the board's hwmon files

    @classmethod
    def from_source(cls, source: MeterSource) -> HwmonInaMeter | None:
        if source.read_text is None:
            return None
        return cls(source.read_text, root=str(source.options.get("hwmon_root") or "/sys/class/hwmon"))

    def __init__(
        self,
        read_text: Callable[[str], str | None],
        root: str = "/sys/class/hwmon",
        interval_s: float = 0.1,
        coverage: str = "whole board",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(interval_s=interval_s, clock=clock)
        self.read_text = read_text
        self.root = root.rstrip("/")
        self.coverage = coverage
        self.device: str | None = None  # e.g. /sys/class/hwmon/hwmon2
        self.chip: str | None = None

    def find(self) -> str | None:
        """The first hwmon device whose name is an INA2xx chip."""
        for number in range(MAX_HWMON):
            path = f"{self.root}/hwmon{number}"
            name = self.read_text(f"{path}/name")
            if name is None:
                if number > 0:
                    break
                continue
            if name.strip() in INA_CHIPS:
                self.device, self.chip = path, name.strip()
                self.method = self.chip
                return path
        return None

    def available(self) -> str | None:
        reason = self.probe_reason(
            self.find,
            f"cannot read {self.root}",
            f"no INA219/INA226/INA260 under {self.root}: wire one on the 5 V input and enable it "
            "(e.g. dtoverlay=i2c-sensor,ina219 in /boot/firmware/config.txt)",
        )
        if reason is None and self.read_watts() is None:
            return f"{self.device} ({self.chip}) has neither power1_input nor in1_input + curr1_input readable"
        return reason

    def read_watts(self) -> float | None:
        if self.device is None and self.find() is None:
            return None
        microwatts = _number(self.read_text(f"{self.device}/power1_input"))
        if microwatts is not None:
            return microwatts / 1e6
        millivolts = _number(self.read_text(f"{self.device}/in1_input"))
        milliamps = _number(self.read_text(f"{self.device}/curr1_input"))
        if millivolts is None or milliamps is None:
            return None
        return millivolts * milliamps / 1e6
