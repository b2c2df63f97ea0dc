"""Joules per inference from energy windows: idle-baseline subtraction and a differential reference run.

A window around a runner invocation also holds process start, model load and warmup. To charge
inferences only, the orchestrator measures a reference invocation with the same model and warmup but
zero timed runs; the difference divided by the number of runs is the energy of the runs. Both windows
have the idle power (measured in sub-windows before benchmarking) subtracted, so the figure is the
energy the inference costs *above idle*; the spread of idle power gives the uncertainty.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from edgekd.energy_protocol import EnergyMeter, EnergyWindow

RESIDUE = 1e-12  # relative size of a difference that is float rounding, not a measurement


@dataclass(frozen=True)
class IdleBaseline:
    """Idle power from several back-to-back windows (W); std_w is their sample standard deviation."""

    watts: float
    std_w: float
    windows: int
    seconds: float
    method: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EnergyEstimate:
    j_per_inference: float  # above idle
    uncertainty_j: float  # one standard deviation, from idle-power spread
    total_j_per_inference: float  # including the idle share
    idle_w: float
    runs: int
    method: str
    coverage: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["notes"] = list(self.notes)
        return data


def measure_idle(
    meter: EnergyMeter, seconds: float, windows: int = 3, sleep: Callable[[float], None] = time.sleep
) -> IdleBaseline:
    """Measure idle power in `windows` windows of `seconds / windows` each (nothing of ours running)."""
    powers = []
    method = ""
    for _ in range(max(1, windows)):
        meter.start()
        sleep(seconds / max(1, windows))
        window = meter.stop()
        powers.append(window.watts)
        method = window.method
    mean = sum(powers) / len(powers)
    std = math.sqrt(sum((p - mean) ** 2 for p in powers) / (len(powers) - 1)) if len(powers) > 1 else 0.0
    return IdleBaseline(watts=mean, std_w=std, windows=len(powers), seconds=seconds, method=method)


def estimate_per_inference(
    main: Sequence[EnergyWindow], reference: EnergyWindow, runs: int, idle: IdleBaseline
) -> EnergyEstimate:
    """(Σ(main − idle) − k·(reference − idle)) / runs, where k = number of main windows (one per repeat)."""
    if runs < 1:
        raise ValueError("energy per inference needs at least one timed run")
    k = len(main)
    main_j = sum(w.joules for w in main)
    main_s = sum(w.seconds for w in main)
    total = (main_j - k * reference.joules) / runs
    above_idle = (main_j - idle.watts * main_s - k * (reference.joules - idle.watts * reference.seconds)) / runs
    # Idle power is uncertain by std_w in each window; the windows' errors add in quadrature.
    spread_s = math.sqrt(sum(w.seconds**2 for w in main) + (k * reference.seconds) ** 2)
    uncertainty = idle.std_w * spread_s / runs
    notes = list(dict.fromkeys(n for w in [*main, reference] for n in w.notes))
    # The subtraction of near-equal windows leaves float residue (-5.55e-19 J) where the meter saw no
    # difference at all: anything below double precision of the terms is exactly no difference.
    scale = (abs(main_j) + k * abs(reference.joules) + abs(idle.watts) * (main_s + k * reference.seconds)) / runs
    if abs(total) <= RESIDUE * scale:
        total = 0.0
    if abs(above_idle) <= RESIDUE * scale:
        above_idle = 0.0
        notes.append(
            "the meter saw no energy above idle for the runs (0 J within its resolution): "
            "raise --runs or use --duration for a longer window"
        )
    if above_idle < 0:
        notes.append("the runs cost less than the idle noise: the figure is within measurement error")
    if uncertainty > abs(above_idle) and above_idle != 0:
        notes.append("uncertainty exceeds the value: raise --runs or use --duration for a longer window")
    return EnergyEstimate(
        j_per_inference=above_idle,
        uncertainty_j=uncertainty,
        total_j_per_inference=total,
        idle_w=idle.watts,
        runs=runs,
        method=main[0].method if main else reference.method,
        coverage=main[0].coverage if main else reference.coverage,
        notes=tuple(notes),
    )
