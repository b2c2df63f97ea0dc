"""Pi power and thermal readers against recorded outputs and sysfs trees (tests/support/recordings/pi)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from edgekd.errors import BenchError, TargetError
from edgekd.targets.energy.hwmon_ina import HwmonInaMeter
from edgekd.targets.energy.pi_pmic import Pi5PmicMeter, parse_pmic_adc
from edgekd.targets.energy.sampling import trapezoid_joules
from edgekd.targets.energy.usb_meter import UsbMeterCsvMeter, read_power_log, window_from_log
from edgekd.targets.thermal import decode_throttled, parse_measure_temp, sysfs_zones, zone_temperatures

RECORDINGS = Path(__file__).resolve().parents[1] / "support" / "recordings" / "pi"


def _files(root: Path):
    """read_text(path) over a recorded tree: what a target's read_text does on the device."""

    def read_text(path: str) -> str | None:
        try:
            return (root / path.lstrip("/")).read_text()
        except OSError:
            return None

    return read_text


def _recorded(name: str) -> str:
    return (RECORDINGS / name).read_text()


def test_pmic_rails_are_summed_as_v_times_i() -> None:
    reading = parse_pmic_adc(_recorded("pi5_pmic_read_adc_load.txt"))
    assert len(reading.amps) == 12 and len(reading.volts) == 14
    assert reading.amps["VDD_CORE"] == pytest.approx(3.24632) and reading.volts["VDD_CORE"] == pytest.approx(0.8580687)
    assert reading.rails_without_current == ["BATT", "EXT5V"]
    expected = 0.0  # Σ V·I written out from the recording's numbers, rail by rail
    for line_a in _recorded("pi5_pmic_read_adc_load.txt").splitlines()[:12]:
        rail = line_a.split()[0][:-2]
        volts_line = next(
            line for line in _recorded("pi5_pmic_read_adc_load.txt").splitlines() if line.split()[0] == f"{rail}_V"
        )
        expected += float(line_a.split("=")[1].rstrip("A")) * float(volts_line.split("=")[1].rstrip("V"))
    assert reading.watts == pytest.approx(expected)
    assert 3.0 < reading.watts < 5.0  # a Pi 5's SoC rails under load
    assert parse_pmic_adc(_recorded("pi5_pmic_read_adc_idle.txt")).watts < reading.watts


@pytest.mark.covers("meter:pi5-pmic")
def test_pmic_meter_integrates_samples_and_flags_ext5v() -> None:
    outputs = {"n": 0}

    def command_output(argv) -> str:
        assert list(argv) == ["vcgencmd", "pmic_read_adc"]
        outputs["n"] += 1
        return _recorded("pi5_pmic_read_adc_load.txt")

    meter = Pi5PmicMeter(command_output, interval_s=0.01)  # asks for 100 Hz, gets the 10 Hz ceiling
    assert meter.interval_s == pytest.approx(0.1)
    assert meter.available() is None
    meter.start()
    time.sleep(0.45)
    window = meter.stop()
    watts = parse_pmic_adc(_recorded("pi5_pmic_read_adc_load.txt")).watts
    assert window.method == "pi5-pmic" and window.coverage == "SoC rails"
    assert window.samples >= 4 and outputs["n"] >= window.samples
    assert window.joules == pytest.approx(watts * window.seconds, rel=1e-9)
    assert any("EXT5V" in note and "not included" in note for note in window.notes)


def test_pmic_meter_on_a_pi4_is_unavailable_with_reason() -> None:
    meter = Pi5PmicMeter(lambda argv: _recorded("pi4_pmic_read_adc.txt"))
    reason = meter.available()
    assert reason is not None and "Pi 5" in reason and "INA219" in reason
    assert Pi5PmicMeter(lambda argv: None).available() is not None  # no vcgencmd at all


@pytest.mark.covers("meter:ina")
@pytest.mark.parametrize(
    ("tree", "device", "chip", "watts"),
    [("hwmon_pi4_ina219", "hwmon2", "ina219", 3.12), ("hwmon_pi5_ina260", "hwmon3", "ina260", 6.27)],
)
def test_hwmon_ina_finds_the_chip_among_other_hwmon_devices(tree: str, device: str, chip: str, watts: float) -> None:
    meter = HwmonInaMeter(_files(RECORDINGS / tree))
    assert meter.available() is None
    assert meter.device == f"/sys/class/hwmon/{device}" and meter.chip == chip
    assert meter.read_watts() == pytest.approx(watts)
    meter.interval_s = 0.05
    meter.start()
    time.sleep(0.2)
    window = meter.stop()
    assert window.method == chip and window.coverage == "whole board"
    assert window.watts == pytest.approx(watts)


def test_hwmon_ina_without_power_file_uses_bus_voltage_times_current(tmp_path: Path) -> None:
    shutil.copytree(RECORDINGS / "hwmon_pi4_ina219", tmp_path / "tree")
    (tmp_path / "tree/sys/class/hwmon/hwmon2/power1_input").unlink()
    meter = HwmonInaMeter(_files(tmp_path / "tree"))
    assert meter.available() is None
    assert meter.read_watts() == pytest.approx(5.104 * 0.612)  # mV × mA


def test_hwmon_without_ina_says_how_to_add_one() -> None:
    reason = HwmonInaMeter(_files(RECORDINGS / "hwmon_pi4_none")).available()
    assert reason is not None and "dtoverlay=i2c-sensor,ina219" in reason
    assert HwmonInaMeter(_files(Path("/nonexistent"))).available() is not None  # this machine's "nothing"


def test_usb_meter_log_aligned_by_timestamps() -> None:
    log = RECORDINGS / "usb_meter_fnb58_pi4.log"
    samples = read_power_log(log)
    assert len(samples) == 300
    start = samples[0][0]
    load = window_from_log(log, start + 1.0, start + 1.99)
    idle = window_from_log(log, start + 0.0, start + 0.99)
    assert load.method == "usb-meter-csv" and load.coverage == "whole board"
    assert load.watts == pytest.approx(5.071 * 1.095, rel=0.01)
    assert idle.watts == pytest.approx(5.103 * 0.569, rel=0.01)
    assert load.joules == pytest.approx(trapezoid_joules([s for s in samples if start + 1.0 <= s[0] <= start + 1.99]))
    # a meter whose clock runs 100 s ahead of the host: the same host window reads the same samples
    shifted = window_from_log(log, start + 1.0 - 100, start + 1.99 - 100, clock_offset_s=100)
    assert shifted.joules == pytest.approx(load.joules)
    with pytest.raises(BenchError, match="fewer than two meter samples"):
        window_from_log(log, start + 50, start + 60)


@pytest.mark.covers("meter:usb-meter-csv")
def test_usb_meter_as_an_energy_meter() -> None:
    log = RECORDINGS / "usb_meter_fnb58_pi4.log"
    clock = iter([1764400001.0, 1764400001.99])
    meter = UsbMeterCsvMeter(log, wall=lambda: next(clock))
    assert meter.available() is None
    meter.start()
    assert meter.stop().watts == pytest.approx(5.071 * 1.095, rel=0.01)
    assert UsbMeterCsvMeter(Path("/nonexistent.log")).available() is not None


def test_usb_meter_csv_with_milliamp_column(tmp_path: Path) -> None:
    log = tmp_path / "um34c.csv"
    log.write_text(
        "Time,Voltage(V),Current(mA)\n2025-06-01T12:00:00,5.0,1000\n2025-06-01T12:00:01,5.0,1000\n"
        "2025-06-01T12:00:02,5.0,1000\n"
    )
    samples = read_power_log(log)
    assert [watts for _, watts in samples] == pytest.approx([5.0, 5.0, 5.0])


def test_throttled_bits_in_words() -> None:
    now = decode_throttled(_recorded("pi4_get_throttled_undervoltage_now.txt"))
    assert now.raw == 0x50005
    assert now.now == ("under-voltage", "throttled")
    assert now.since_boot == ("under-voltage", "throttled")
    assert "now: under-voltage, throttled" in now.words()
    assert "supply" in (now.advice() or "")
    past = decode_throttled(_recorded("pi4_get_throttled_soft_limit_since_boot.txt"))
    assert past.now == () and past.since_boot == ("soft temperature limit active",)
    assert "cool" in (past.advice() or "")
    fine = decode_throttled(_recorded("pi5_get_throttled.txt"))
    assert fine.ok and fine.advice() is None and fine.words().startswith("ok")
    with pytest.raises(TargetError):
        decode_throttled('error=1 error_msg="Command not registered"')


def test_temperatures_from_vcgencmd_and_thermal_zones() -> None:
    assert parse_measure_temp(_recorded("pi5_measure_temp.txt")) == pytest.approx(52.7)
    zones = sysfs_zones(RECORDINGS / "thermal_pi5" / "sys" / "class" / "thermal")
    assert zone_temperatures(zones) == {"cpu-thermal": pytest.approx(52.7)}
    assert zone_temperatures({"thermal_zone0": {"type": "cpu-thermal", "temp": None}}) == {}
    with pytest.raises(TargetError):
        parse_measure_temp("VCHI initialization failed")


def test_a_meter_whose_transport_fails_is_unavailable_naming_the_error(tmp_path: Path) -> None:
    """One probe rule for the sysfs and command meters: a transport error is "unavailable: why", never a raise."""

    def lost(_arg: object) -> str | None:
        raise OSError("connection to pi5 lost")

    assert HwmonInaMeter(lost).available() == "cannot read /sys/class/hwmon: connection to pi5 lost"
    assert Pi5PmicMeter(lost).available() == "cannot run vcgencmd pmic_read_adc: connection to pi5 lost"
    shutil.copytree(RECORDINGS / "hwmon_pi4_ina219", tmp_path / "tree")
    for name in ("power1_input", "in1_input"):
        (tmp_path / "tree/sys/class/hwmon/hwmon2" / name).unlink()
    reason = HwmonInaMeter(_files(tmp_path / "tree")).available()
    assert reason == "/sys/class/hwmon/hwmon2 (ina219) has neither power1_input nor in1_input + curr1_input readable"
