"""Noise control (run order, governor, thermal gate) and the energy arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekd.bench.energy_accounting import IdleBaseline, estimate_per_inference, measure_idle
from edgekd.bench.noise import GovernorControl, run_order, wait_for_thermal
from edgekd.energy_protocol import EnergyWindow


def test_run_order() -> None:
    assert list(run_order(["a", "b"], 2, True)) == [(0, "a"), (0, "b"), (1, "a"), (1, "b")]
    assert list(run_order(["a", "b"], 2, False)) == [(0, "a"), (1, "a"), (0, "b"), (1, "b")]


def governor_tree(root: Path, governors: dict[str, str]) -> Path:
    for cpu, governor in governors.items():
        (root / cpu / "cpufreq").mkdir(parents=True)
        (root / cpu / "cpufreq" / "scaling_governor").write_text(governor + "\n")
    return root


def test_governor_hold_and_restore(tmp_path: Path) -> None:
    control = GovernorControl(governor_tree(tmp_path, {"cpu0": "ondemand", "cpu1": "performance", "cpu2": "powersave"}))
    assert control.hold("performance") is None
    assert set(control.read().values()) == {"performance"}
    control.restore()
    assert control.read() == {"cpu0": "ondemand", "cpu1": "performance", "cpu2": "powersave"}
    control.restore()  # twice is fine


def test_governor_not_settable_is_explained_and_nothing_changed(tmp_path: Path) -> None:
    root = governor_tree(tmp_path, {"cpu0": "ondemand"})
    (root / "cpu1" / "cpufreq" / "scaling_governor").mkdir(parents=True)  # a file we cannot write
    control = GovernorControl(root)
    reason = control.hold("performance")
    assert reason and "cannot set the performance governor" in reason
    assert control.read()["cpu0"] == "ondemand"  # rolled back
    assert "virtual machine" in (GovernorControl(tmp_path / "none").hold() or "")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_thermal_gate_waits_until_cool() -> None:
    clock = FakeClock()
    temps = iter([80.0, 75.0, 69.0])
    assert wait_for_thermal(lambda: {"cpu": next(temps)}, 70.0, 60.0, poll_s=2, clock=clock, sleep=clock.sleep) is None
    assert clock.now == 4.0


def test_thermal_gate_times_out_or_skips() -> None:
    clock = FakeClock()
    warning = wait_for_thermal(lambda: {"cpu": 85.0}, 70.0, 10.0, poll_s=2, clock=clock, sleep=clock.sleep)
    assert warning and "timed out after 10 s" in warning and clock.now == pytest.approx(10.0)
    assert "no temperatures" in (wait_for_thermal(dict, 70.0, 10.0) or "")


def window(joules: float, seconds: float) -> EnergyWindow:
    return EnergyWindow(joules=joules, seconds=seconds, samples=2, method="rapl", coverage="package")


def test_energy_per_inference_subtracts_idle_and_the_reference_run() -> None:
    idle = IdleBaseline(watts=4.0, std_w=0.1, windows=3, seconds=3.0, method="rapl")
    # Two repeats of 1000 runs, each 2.5 s at 10 W = 25 J; the zero-run reference: 1.0 s at 8 W = 8 J.
    estimate = estimate_per_inference([window(25.0, 2.5), window(25.0, 2.5)], window(8.0, 1.0), 2000, idle)
    # above idle: (2*(25 - 10) - 2*(8 - 4)) / 2000 = 0.011 J ; total: (50 - 16) / 2000 = 0.017 J
    assert estimate.j_per_inference == pytest.approx(0.011)
    assert estimate.total_j_per_inference == pytest.approx(0.017)
    # uncertainty: 0.1 W * sqrt(2.5² + 2.5² + (2*1.0)²) / 2000
    assert estimate.uncertainty_j == pytest.approx(0.1 * (2.5**2 * 2 + 4.0) ** 0.5 / 2000)
    with pytest.raises(ValueError):
        estimate_per_inference([window(1, 1)], window(1, 1), 0, idle)


def test_idle_baseline_from_subwindows() -> None:
    powers = iter([4.0, 5.0, 6.0])

    class Meter:
        name = "m"

        def available(self) -> None:
            return None

        def start(self) -> None:
            pass

        def stop(self) -> EnergyWindow:
            return window(next(powers), 1.0)

    idle = measure_idle(Meter(), 3.0, windows=3, sleep=lambda s: None)
    assert (idle.watts, idle.std_w, idle.windows) == (5.0, 1.0, 3)


def test_energy_that_does_not_move_is_zero_not_a_float_residue() -> None:
    """A meter reading a constant 2.79 W (board-level, too coarse to see the model): the subtraction of
    near-equal terms left -2.2e-18 J per inference; it is exactly 0 J, with a note saying why."""
    idle = IdleBaseline(watts=(2.79 + 2.79 + 2.79) / 3, std_w=0.0, windows=3, seconds=3.0, method="pi5-pmic")
    main = [EnergyWindow(2.79 * 2.357483583500423, 2.357483583500423, 20, "pi5-pmic", "SoC rails")]
    reference = EnergyWindow(2.79 * 1.0897829934649759, 1.0897829934649759, 10, "pi5-pmic", "SoC rails")
    estimate = estimate_per_inference(main, reference, 200, idle)
    assert estimate.j_per_inference == 0.0 and str(estimate.j_per_inference) == "0.0"
    assert any("no energy above idle" in note for note in estimate.notes)
    assert estimate.total_j_per_inference > 0  # the idle share is still there
