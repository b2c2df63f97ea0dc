"""Temperatures and throttling of Linux boards: `vcgencmd measure_temp`, thermal zones, `get_throttled`.

Everything here decodes text a device produced (a command's output, sysfs file contents), so the same code
reads a real Pi over SSH, an Android phone over adb and the recordings in tests/support/recordings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from edgekd.errors import TargetError

# `vcgencmd get_throttled` bits (Raspberry Pi firmware documentation): bits 0-3 are the state now,
# bits 16-19 the same conditions latched since boot.
THROTTLE_BITS: dict[int, str] = {
    0: "under-voltage",
    1: "arm frequency capped",
    2: "throttled",
    3: "soft temperature limit active",
}
SINCE_BOOT_SHIFT = 16

_MEASURE_TEMP = re.compile(r"temp=\s*(-?[0-9]+(?:\.[0-9]+)?)\s*'?C")
MAX_MILLIDEGREES = 1_000_000  # 1000 °C: no sensor on a board reads beyond
_THROTTLED = re.compile(r"throttled=(0x[0-9a-fA-F]+|[0-9]+)")


@dataclass(frozen=True)
class ThrottleState:
    """Decoded `get_throttled`: conditions active now and conditions seen since boot."""

    raw: int
    now: tuple[str, ...]
    since_boot: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.raw == 0

    def words(self) -> str:
        """One line for people: 'ok' or e.g. 'now: under-voltage, throttled; since boot: under-voltage'."""
        if self.ok:
            return "ok (never throttled or under-voltage since boot)"
        parts = []
        if self.now:
            parts.append("now: " + ", ".join(self.now))
        if self.since_boot:
            parts.append("since boot: " + ", ".join(self.since_boot))
        return "; ".join(parts) + f" ({hex(self.raw)})"

    def advice(self) -> str | None:
        """What to do about it, or None when all is well."""
        seen = set(self.now) | set(self.since_boot)
        if "under-voltage" in seen:
            return "use a supply that holds 5.1 V under load (official 27 W USB-C PSU for a Pi 5, 15 W for a Pi 4)"
        if seen:
            return "cool the board (heatsink/fan) and let it cool down before benchmarking"
        return None


def parse_measure_temp(text: str) -> float:
    """°C from `vcgencmd measure_temp` output, e.g. "temp=47.2'C"."""
    match = _MEASURE_TEMP.search(text)
    if match is None:
        raise TargetError(f"cannot read a temperature from vcgencmd output {text.strip()!r}")
    return float(match.group(1))


def decode_throttled(text: str) -> ThrottleState:
    """Decode `vcgencmd get_throttled` output ("throttled=0x50005") into words."""
    match = _THROTTLED.search(text)
    if match is None:
        raise TargetError(f"cannot read get_throttled output {text.strip()!r}")
    raw = int(match.group(1), 0)
    now = tuple(word for bit, word in THROTTLE_BITS.items() if raw & (1 << bit))
    since = tuple(word for bit, word in THROTTLE_BITS.items() if raw & (1 << (bit + SINCE_BOOT_SHIFT)))
    return ThrottleState(raw=raw, now=now, since_boot=since)


def zone_temperatures(zones: Mapping[str, Mapping[str, str | None]]) -> dict[str, float]:
    """°C per zone type from thermal zone contents {"thermal_zone0": {"type": "cpu-thermal", "temp": "47250"}}.

    sysfs reports millidegrees; zones that cannot be read (temp missing, or -ENODATA) are left out. Two zones
    of the same type are told apart by their zone name.
    """
    temps: dict[str, float] = {}
    for zone, fields in sorted(zones.items()):
        raw = fields.get("temp")
        try:
            millideg = int(str(raw).strip())
        except ValueError:
            continue
        if abs(millideg) > MAX_MILLIDEGREES:  # a garbled read; a float division would overflow on it
            continue
        label = (fields.get("type") or zone).strip()
        if label in temps:
            label = f"{label}:{zone}"
        temps[label] = millideg / 1000.0
    return temps


def sysfs_zones(root: Path) -> dict[str, dict[str, str | None]]:
    """Thermal zone contents of this machine's `root` (/sys/class/thermal), for `zone_temperatures`.

    The same shape the device probe (targets/device_probe.py) and the adb probe read on a device, so one
    decoder turns all of them into °C."""
    zones: dict[str, dict[str, str | None]] = {}
    for zone in sorted(root.glob("thermal_zone*")):
        fields: dict[str, str | None] = {}
        for name in ("type", "temp"):
            try:
                fields[name] = (zone / name).read_text().strip()
            except OSError:
                fields[name] = None
        zones[zone.name] = fields
    return zones


def soc_temperature(temps: Mapping[str, float], vcgencmd_temp: str | None = None) -> float | None:
    """The SoC temperature: vcgencmd's if given, else the cpu zone's, else the hottest zone's."""
    if vcgencmd_temp:
        try:
            return parse_measure_temp(vcgencmd_temp)
        except TargetError:
            pass
    for label, value in temps.items():
        if "cpu" in label.lower() or "soc" in label.lower():
            return value
    return max(temps.values()) if temps else None
