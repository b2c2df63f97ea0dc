"""Energy readers (RAPL, perf, Pi 5 PMIC, INA2xx hwmon, USB meter log, Android battery), built by name.

Meter names live in one place, edgekd.registry.ENERGY_METERS. Each meter class says which target kinds it
measures on (`kinds`) and builds itself from a `MeterSource` (`from_source`): what the target gives it to
read through. Targets validate their inventory's meter names and build meters with `meter_names` and
`build_meter`; `FirstAvailableMeter` uses the first of several that can measure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekd import registry
from edgekd.energy_protocol import EnergyMeter, EnergyWindow
from edgekd.errors import EdgekdError, TargetError


@dataclass(frozen=True)
class MeterSource:
    """What a target gives a meter to read through: its kind, the host's sysfs (local), a device file
    reader and a device command runner (remote), and the entry's meter settings (`options`)."""

    kind: str
    sysfs: Path = Path("/sys")
    read_text: Callable[[str], str | None] | None = None
    command_output: Callable[[Sequence[str]], str | None] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


def meter_class(name: str) -> Any:
    """The class registered under `name` (a TargetError naming the known meters for an unknown name)."""
    if name not in registry.ENERGY_METERS:
        raise registry.unknown_name("energy meter", name, registry.ENERGY_METERS, TargetError)
    return registry.load(registry.ENERGY_METERS, name, "energy meter")


def meter_names(kind: str) -> list[str]:
    """The registered meters that measure on a target of `kind`, in registry order."""
    return [name for name in registry.ENERGY_METERS if kind in meter_class(name).kinds]


def check_meter(name: str, kind: str, where: str, error: type[EdgekdError] = TargetError) -> None:
    """Refuse a meter name the registry lacks or that cannot measure on a `kind` target (`where` names the entry)."""
    if name not in registry.ENERGY_METERS:
        close = registry.suggest(name, meter_names(kind))
        raise error(
            f"{where}: unknown energy meter '{name}'",
            hint=(f"did you mean '{close}'? " if close else "") + f"{kind} meters: " + ", ".join(meter_names(kind)),
        )
    if kind not in meter_class(name).kinds:
        raise error(
            f"{where}: energy meter '{name}' does not work on {kind} targets",
            hint=f"{kind} meters: {', '.join(meter_names(kind))}",
        )


def build_meter(name: str, source: MeterSource) -> EnergyMeter | None:
    """The named meter reading through `source`, or None when the entry lacks what it needs (a log path)."""
    check_meter(name, source.kind, f"{source.kind} targets")
    meter: EnergyMeter | None = meter_class(name).from_source(source)
    return meter


class FirstAvailableMeter:
    """Uses the first of several meters that can measure here; otherwise explains why none can."""

    def __init__(self, meters: Sequence[EnergyMeter]) -> None:
        self.meters = list(meters)
        self.chosen: EnergyMeter | None = None

    @property
    def name(self) -> str:
        """The chosen meter's name, or all names joined with '+' before one is chosen."""
        return self.chosen.name if self.chosen else "+".join(meter.name for meter in self.meters)

    def available(self) -> str | None:
        reasons = []
        for meter in self.meters:
            reason = meter.available()
            if reason is None:
                self.chosen = meter
                return None
            reasons.append(f"{meter.name}: {reason}")
        return "; ".join(reasons) if reasons else "no energy meter is configured for this target"

    def _meter(self) -> EnergyMeter:
        if self.chosen is None and self.available() is not None:
            raise RuntimeError("no energy meter is available; check available() first")
        if self.chosen is None:  # available() returned None, so it chose one
            raise RuntimeError("no energy meter was chosen")
        return self.chosen

    def start(self) -> None:
        self._meter().start()

    def stop(self) -> EnergyWindow:
        return self._meter().stop()

    def close(self) -> None:
        for meter in self.meters:
            meter.close()
