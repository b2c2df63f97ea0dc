"""Android battery power: `current_now` x `voltage_now` from /sys/class/power_supply, sampled over a window.

Phones disagree on units and sign. Pixels report µA and µV with current negative while discharging
(BatteryManager's convention); Samsung and others report mA, some positive while discharging. Units are
inferred from magnitude (a phone draws 20 mA-6 A; a Li-ion cell sits at 3.0-4.5 V) and the sign from
the discharging state; both are recorded in the window's notes. On USB/AC power the battery current is
net of the charger, not what the phone uses: the meter refuses then, unless `allow_charging` (the window
is flagged). Idle power is subtracted by the orchestrator (edgekd.bench.energy_accounting).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from edgekd.targets.energy.sampling import PowerSampler

if TYPE_CHECKING:
    from edgekd.targets.energy import MeterSource

BATTERY_FILES = ("battery/current_now", "battery/voltage_now", "battery/status")
SUPPLY_FILES = ("usb/online", "ac/online", "wireless/online", "dc/online")
#: Reads the power_supply files above (paths relative to /sys/class/power_supply) -> {path: text}.
SupplyReader = Callable[[], Mapping[str, str | None]]


def sysfs_reader(root: Path) -> SupplyReader:
    """Read a power_supply tree on this machine (a recording of a real phone, in tests)."""

    def read() -> dict[str, str | None]:
        values: dict[str, str | None] = {}
        for name in (*BATTERY_FILES, *SUPPLY_FILES):
            try:
                values[name] = (root / name).read_text().strip()
            except OSError:
                values[name] = None
        return values

    return read


def _finite(text: str | None) -> float | None:
    """A sysfs number, or None for text that is not a finite number."""
    try:
        value = float(str(text).strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def current_scale(raw_current: float) -> tuple[float, str]:
    """(factor to amperes, unit name) from the magnitude of one current_now reading."""
    return (1e-6, "µA") if abs(raw_current) >= 20_000 else (1e-3, "mA")


def voltage_scale(raw_voltage: float) -> tuple[float, str]:
    """(factor to volts, unit name): a cell reads 3.0-4.5 V, i.e. ~4e6 µV or ~4e3 mV."""
    if raw_voltage >= 100_000:
        return 1e-6, "µV"
    if raw_voltage >= 1_000:
        return 1e-3, "mV"
    return 1.0, "V"


def powered_by(values: Mapping[str, str | None]) -> list[str]:
    """External supplies that are online ("usb", "ac", ...)."""
    return [name.split("/")[0] for name in SUPPLY_FILES if (values.get(name) or "").strip() == "1"]


class AndroidBatteryMeter(PowerSampler):
    """Whole-phone power drawn from the battery, sampled every `interval_s` through `read`."""

    name = "android-battery"
    method = "android-battery"
    coverage = "battery (whole phone: SoC, memory, display, radios)"
    kinds = ("adb",)  # reads the phone's power_supply files

    @classmethod
    def from_source(cls, source: MeterSource) -> AndroidBatteryMeter | None:
        """`options`: read (a SupplyReader over the phone's shell), allow_charging, interval_s."""
        read = source.options.get("read")
        if read is None:
            return None
        return cls(
            read,
            allow_charging=bool(source.options.get("allow_charging")),
            interval_s=float(source.options.get("interval_s", 0.25)),
        )

    def __init__(
        self,
        read: SupplyReader,
        *,
        allow_charging: bool = False,
        interval_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(interval_s=interval_s, clock=clock)
        self.read = read
        self.allow_charging = allow_charging
        self.units: dict[str, str] = {}
        self._factors: tuple[float, float, float] | None = None  # amps, volts, sign
        self.charging = False

    def available(self) -> str | None:
        try:
            values = self.read()
        except Exception as exc:  # noqa: BLE001 - the transport's failure is the reason
            return f"cannot read /sys/class/power_supply: {exc}"
        if values.get("battery/current_now") is None or values.get("battery/voltage_now") is None:
            return "this phone exposes no battery current_now/voltage_now in /sys/class/power_supply/battery"
        for name in ("battery/current_now", "battery/voltage_now"):
            if _finite(values[name]) is None:
                return f"/sys/class/power_supply/{name} reads {str(values[name]).strip()[:40]!r}, not a number"
        supplies = powered_by(values)
        status = (values.get("battery/status") or "").strip()
        self.charging = bool(supplies) or status in ("Charging", "Full")
        if self.charging and not self.allow_charging:
            source = "/".join(supplies).upper() or "a charger"
            return (
                f"the phone is on {source} power (battery status: {status or 'unknown'}); its battery current "
                "is net of the charger, not what the phone uses. Unplug it and connect over Wi-Fi "
                "(`adb tcpip 5555` / wireless debugging), or pass --allow-charging to measure anyway (flagged)"
            )
        self._calibrate(values)
        return None

    def _calibrate(self, values: Mapping[str, str | None]) -> None:
        current = float(values["battery/current_now"] or 0)
        voltage = float(values["battery/voltage_now"] or 0)
        amps, current_unit = current_scale(current)
        volts, voltage_unit = voltage_scale(voltage)
        status = (values.get("battery/status") or "").strip()
        # Power drawn from the battery is positive. A negative reading means BatteryManager's convention
        # (negative = discharging); a positive one while discharging, the opposite. A positive reading
        # while charging cannot tell them apart: BatteryManager's convention is assumed and said so.
        sign = -1.0 if current < 0 or status != "Discharging" else 1.0
        self._factors = (amps, volts, sign)
        self.units = {
            "current": current_unit,
            "voltage": voltage_unit,
            "sign": ("negative while discharging" if sign < 0 else "positive while discharging")
            + (" (assumed)" if current >= 0 and status != "Discharging" else ""),
        }

    def start(self) -> None:
        if self._factors is None:
            reason = self.available()
            if reason is not None:
                raise RuntimeError(reason)
        super().start()
        self.notes.append(
            f"current_now in {self.units['current']} ({self.units['sign']}), voltage_now in {self.units['voltage']}"
        )
        if self.charging:
            self.notes.append(
                "measured while charging (--allow-charging): battery current is net of the charger's input, "
                "so this is not the phone's consumption"
            )

    def read_watts(self) -> float | None:
        values = self.read()
        current, voltage = _finite(values.get("battery/current_now")), _finite(values.get("battery/voltage_now"))
        if current is None or voltage is None:
            return None
        assert self._factors is not None  # set by available()/start()
        amps, volts, sign = self._factors
        return sign * current * amps * voltage * volts
