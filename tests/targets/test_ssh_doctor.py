"""Doctor's judgement of a device probe: each missing piece fails with the command that fixes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekd.targets.ssh.health import device_info, judge_probe
from edgekd.targets.ssh.target import SshTarget

RECORDINGS = Path(__file__).resolve().parents[1] / "support" / "recordings" / "pi"


def _probe(**changes: Any) -> dict[str, Any]:
    probe: dict[str, Any] = {
        "machine": "aarch64",
        "python": "3.11.2",
        "python_executable": "/usr/bin/python3",
        "cores": 4,
        "cpu_model": "Raspberry Pi 5 Model B Rev 1.0",
        "governor": "ondemand",
        "packages": {"ai_edge_litert": "2.3.0", "numpy": "2.2.4"},
        "disk": {"free_bytes": 20_000_000_000, "total_bytes": 60_000_000_000},
        "thermal_zones": {"thermal_zone0": {"type": "cpu-thermal", "temp": "48150"}},
        "vcgencmd": {
            "measure_temp": (RECORDINGS / "pi5_measure_temp.txt").read_text(),
            "get_throttled": (RECORDINGS / "pi5_get_throttled.txt").read_text(),
        },
    }
    probe.update(changes)
    return probe


def _checks(probe: dict[str, Any], profile: str | None = "rpi5") -> dict[str, Any]:
    entry = {"host": "pi.local"} | ({"profile": profile} if profile else {})
    target = SshTarget.from_entry("pi", entry, Path("/"))
    return {check.name: check for check in judge_probe(probe, target)}


def test_a_healthy_pi5_passes_and_the_governor_gets_advice() -> None:
    checks = _checks(_probe())
    assert all(check.ok for check in checks.values())
    assert "performance" in (checks["governor"].fix or "")  # ondemand works but adds noise
    assert checks["temperature"].detail.startswith("52.7")  # vcgencmd wins over the zone


def test_missing_runtime_says_what_to_install() -> None:
    checks = _checks(_probe(packages={"numpy": "2.2.4"}))
    assert not checks["runtimes"].ok and "pip install ai-edge-litert" in (checks["runtimes"].fix or "")


def test_tflite_runtime_with_numpy_2_is_caught() -> None:
    checks = _checks(_probe(packages={"tflite_runtime": "2.14.0", "numpy": "2.1.0"}))
    assert not checks["numpy"].ok and "'numpy<2'" in (checks["numpy"].fix or "")
    assert _checks(_probe(packages={"tflite_runtime": "2.14.0", "numpy": "1.26.4"}))["numpy"].ok
    assert not _checks(_probe(packages={"ai_edge_litert": "2.3.0"}))["numpy"].ok  # numpy missing entirely


def test_old_python_32bit_os_full_disk_and_hot_board_fail() -> None:
    checks = _checks(
        _probe(
            python="3.7.3",
            machine="armv7l",
            disk={"free_bytes": 50_000_000},
            vcgencmd={"measure_temp": "temp=79.5'C", "get_throttled": "throttled=0x80008"},
        )
    )
    assert not checks["python"].ok and "3.9" in (checks["python"].fix or "")
    assert not checks["arch"].ok and "64-bit" in (checks["arch"].fix or "")
    assert not checks["disk"].ok and "workdir" in (checks["disk"].fix or "")
    assert not checks["temperature"].ok and not checks["throttling"].ok
    assert "soft temperature limit" in checks["throttling"].detail


def test_a_board_without_vcgencmd_or_profile() -> None:
    checks = _checks(_probe(machine="x86_64", vcgencmd={"measure_temp": None, "get_throttled": None}), profile=None)
    assert checks["arch"].ok  # any Linux box may be a target; only a Pi profile demands aarch64
    assert checks["throttling"].ok and "no vcgencmd" in checks["throttling"].detail
    assert checks["temperature"].detail.startswith("48.1")  # from the thermal zone


def test_device_info_from_probe() -> None:
    target = SshTarget.from_entry("pi", {"host": "pi.local", "user": "pi", "profile": "rpi5"}, Path("/"))
    info = device_info(target, _probe(packages={"ai_edge_litert": "2.3.0", "onnxruntime": "1.22.0", "numpy": "2.2.4"}))
    assert info.runtimes == {"ai_edge_litert": "2.3.0", "onnxruntime": "1.22.0"} and info.numpy == "2.2.4"
    assert info.temperatures_c == {"cpu-thermal": 48.15, "vcgencmd": 52.7}
    assert info.extra["address"] == "pi@pi.local" and info.extra["profile"] == "Raspberry Pi 5"


def test_auto_power_on_a_pi4_without_sensors_names_every_method_tried(tmp_path: Path) -> None:
    """On this machine (no INA hwmon device, no USB meter log): a clean 'unavailable: why' for each method."""
    from edgekd.targets.ssh.health import energy_meter

    target = SshTarget.from_entry(
        "pi4",
        {
            "host": "pi.local",
            "profile": "rpi4",
            "hwmon_root": str(tmp_path),
            "usb_meter_csv": str(tmp_path / "meter.log"),
        },
        Path("/"),
    )
    target.read_text = lambda path: None  # type: ignore[method-assign] - the device has no such files
    meter = energy_meter(target)
    assert meter is not None
    reason = meter.available()
    assert reason is not None and "ina:" in reason and "usb-meter-csv:" in reason and "dtoverlay" in reason


def test_power_fix_names_the_settings_not_a_missing_readme_section(tmp_path: Path) -> None:
    from edgekd.targets.ssh.health import power_check

    target = SshTarget.from_entry(
        "pi4",
        {
            "host": "pi.local",
            "profile": "rpi4",
            "hwmon_root": str(tmp_path),
            "usb_meter_csv": str(tmp_path / "meter.log"),
        },
        Path("/"),
    )
    target.read_text = lambda path: None  # type: ignore[method-assign]
    check = power_check(target)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "README" not in (check.fix or "") or all(
        f"## {section}" in readme for section in ("Pi power",)
    )  # a section it names must exist
    assert 'power = "ina"' in (check.fix or "") and 'power = "usb-meter-csv"' in (check.fix or "")
