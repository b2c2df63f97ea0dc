"""Battery energy: units and sign detected per phone, refused on USB/AC power unless allowed (flagged)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from edgekd.targets.adb.target import AdbTarget
from edgekd.targets.energy.android_battery import AndroidBatteryMeter, sysfs_reader

pytestmark = pytest.mark.adb
RECORDINGS = Path(__file__).resolve().parents[2] / "support" / "recordings" / "android"
DRAW_W = 0.4125 * 4.012  # the Pixel's -412500 µA at 4.012 V
SAMSUNG_W = 0.412 * 4.012  # the Samsung's 412 mA (integer mA) at 4.012 V


@pytest.mark.parametrize(
    ("phone_dir", "units"),
    [
        ("pixel6", ("µA", "µV", "negative while discharging")),
        ("samsung_s21", ("mA", "µV", "positive while discharging")),
    ],
)
def test_units_and_sign_are_detected_from_recordings(phone_dir: str, units: tuple[str, str, str]) -> None:
    meter = AndroidBatteryMeter(sysfs_reader(RECORDINGS / phone_dir / "sys" / "power_supply"), interval_s=0.01)
    assert meter.available() is None
    assert (meter.units["current"], meter.units["voltage"], meter.units["sign"]) == units
    expected = SAMSUNG_W if phone_dir == "samsung_s21" else DRAW_W
    assert meter.read_watts() == pytest.approx(expected)
    meter.start()
    time.sleep(0.05)
    window = meter.stop()
    assert window.watts == pytest.approx(expected, rel=1e-6) and window.samples >= 2
    assert f"current_now in {units[0]} ({units[2]})" in window.notes[0]


@pytest.mark.covers("meter:android-battery")
def test_meter_refuses_while_charging_unless_allowed(phone, adb_env, tmp_path: Path) -> None:
    """Through adb: the phone's power_supply files are read with `adb shell` while the window runs."""
    target = AdbTarget.from_entry("pixel", {"serial": phone.serial}, tmp_path)
    target.connect()
    try:
        assert target.energy().available() is None
        phone.sandbox.set_power_source(usb=True)
        reason = target.energy().available()
        assert reason and "on USB power" in reason and "--allow-charging" in reason
        charging = AdbTarget.from_entry(
            "pixel", {"serial": phone.serial, "allow_charging": True, "energy_interval_s": 0.05}, tmp_path
        )
        charging.connect()
        meter = charging.energy()
        assert meter.available() is None
        meter.start()
        time.sleep(0.3)
        supply = phone.sandbox.root / "sys" / "power_supply" / "battery"
        (supply / "current_now").write_text("-1237500\n")  # the load triples the draw mid-window
        time.sleep(0.3)
        window = meter.stop()
        charging.cleanup()
    finally:
        target.cleanup()
    assert window.method == "android-battery" and window.samples >= 3
    assert DRAW_W < window.watts < 3 * DRAW_W  # between the two levels: both were sampled
    assert any("measured while charging" in note for note in window.notes)


def test_missing_battery_files_is_a_clear_unavailable(tmp_path: Path) -> None:
    (tmp_path / "battery").mkdir()
    meter = AndroidBatteryMeter(sysfs_reader(tmp_path))
    assert "no battery current_now/voltage_now" in (meter.available() or "")


def test_energy_per_inference_through_orchestration(phone, adb_env, onnx_model: Path, tmp_path: Path) -> None:
    """The phone drains 900 mA more while the runner runs: idle is subtracted, the zero-run reference
    removes start-up, and what remains is ~3.6 W over the timed 3 s, sampled through `adb shell`."""
    from edgekd.artifacts import describe_file
    from edgekd.bench.orchestrate import bench_artifacts
    from edgekd.config.bench import BenchConfig

    phone.sandbox.set_battery_draw(
        idle_ma=300, load_ma=900, busy_marker="edgekd_runner.py --runtime ort --threads 1 --model"
    )
    target = AdbTarget.from_entry("pixel", {"serial": phone.serial, "energy_interval_s": 0.05}, tmp_path)
    config = BenchConfig(duration_s=3.0, warmup=1, energy=True, energy_idle_s=0.6)
    [result] = bench_artifacts(target, [describe_file(onnx_model)], config)
    energy = result.energy
    assert energy is not None and energy["method"] == "android-battery"
    assert energy["idle_w"] == pytest.approx(0.300 * 4.012, rel=0.01)
    # Energy above idle of the timed 3 s; start-up time differs by up to ~1 s between the run and its
    # reference under proot, so the bounds are loose -- a sign, unit (x1000) or idle error falls outside them.
    load_joules = energy["j_per_inference"] * len(result.latencies_ns)
    assert 0.5 * 3 * 0.9 * 4.012 < load_joules < 2.0 * 3 * 0.9 * 4.012
    assert energy["total_j_per_inference"] > energy["j_per_inference"] > 0
    assert any("current_now in µA (negative while discharging)" in note for note in energy["notes"])
