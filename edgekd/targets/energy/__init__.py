"""Energy readers (RAPL, perf, Pi 5 PMIC, INA2xx hwmon, Android battery) and a first-available chooser."""

from __future__ import annotations

from collections.abc import Sequence

from edgekd.energy_protocol import EnergyMeter, EnergyWindow


class FirstAvailableMeter:
    """Uses the first of several meters that can measure here; otherwise explains why none can."""

    def __init__(self, meters: Sequence[EnergyMeter]) -> None:
        self.meters = list(meters)
        self.chosen: EnergyMeter | None = None

    @property
    def name(self) -> str:
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
        assert self.chosen is not None
        return self.chosen

    def start(self) -> None:
        self._meter().start()

    def stop(self) -> EnergyWindow:
        return self._meter().stop()

    def close(self) -> None:
        for meter in self.meters:
            close = getattr(meter, "close", None)
            if close is not None:
                close()
