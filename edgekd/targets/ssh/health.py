"""What an SSH target reports about itself: DeviceInfo, `edgekd targets doctor` checks, its energy meter.

All of it is computed from the device probe's JSON (targets/device_probe.py), so the decisions here are
plain functions of data and are tested without a device.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgekd.errors import TargetError
from edgekd.target_protocol import DeviceInfo
from edgekd.targets.thermal import decode_throttled, soc_temperature, zone_temperatures
from edgekd.targets.tools import tool_check

if TYPE_CHECKING:
    from edgekd.bench.doctor import Check
    from edgekd.energy_protocol import EnergyMeter
    from edgekd.targets.ssh.target import SshTarget

RUNTIME_MODULES = ("ai_edge_litert", "tflite_runtime", "onnxruntime")
MIN_PYTHON = (3, 9)
MIN_FREE_BYTES = 200 * 1024 * 1024  # a model, the runner, inputs and outputs with room to spare
PIP = "python3 -m pip install"
#: `power = "auto"` on a board without a profile: the meters that read any Linux board's power.
AUTO_WITHOUT_PROFILE = ("ina", "usb-meter-csv")


def temperatures(probe: dict[str, Any]) -> dict[str, float]:
    temps = zone_temperatures(probe.get("thermal_zones") or {})
    soc = soc_temperature({}, (probe.get("vcgencmd") or {}).get("measure_temp"))
    if soc is not None:
        temps["vcgencmd"] = soc
    return temps


def device_info(target: SshTarget, probe: dict[str, Any]) -> DeviceInfo:
    packages = dict(probe.get("packages") or {})
    throttled_raw = (probe.get("vcgencmd") or {}).get("get_throttled")
    extra: dict[str, Any] = {
        "address": target.address,
        "device_model": probe.get("device_model"),
        "free_bytes": (probe.get("disk") or {}).get("free_bytes"),
        "profile": target.profile.name if target.profile else None,
        "kernel": probe.get("release"),
    }
    if throttled_raw:
        extra["throttled"] = decode_throttled(throttled_raw).words()
    return DeviceInfo(
        name=target.name,
        kind="ssh",
        arch=probe.get("machine"),
        cores=probe.get("cores"),
        cpu_model=probe.get("cpu_model"),
        governor=probe.get("governor"),
        temperatures_c=temperatures(probe),
        runtimes={module: version for module, version in packages.items() if module in RUNTIME_MODULES},
        python=probe.get("python"),
        numpy=packages.get("numpy"),
        extra=extra,
    )


def doctor_checks(target: SshTarget) -> list[Check]:
    """Connect, probe, and judge: one Check per thing a benchmark needs, each failing one with a fix."""
    from edgekd.bench.doctor import Check

    try:
        target.connect()
        probe = target.probe()
    except TargetError as exc:
        return [Check("reachable", False, exc.message, exc.hint)]
    checks = [Check("reachable", True, f"{target.address}, work dir {target.workdir}")]
    checks += judge_probe(probe, target)
    checks.append(power_check(target))
    return checks + tool_check(target.name, target.entry.benchmark_model)


def judge_probe(probe: dict[str, Any], target: SshTarget) -> list[Check]:
    from edgekd.bench.doctor import Check

    checks: list[Check] = []
    machine = probe.get("machine") or "unknown"
    is_pi = target.profile is not None
    arch_ok = machine == "aarch64" or not is_pi
    checks.append(
        Check(
            "arch",
            arch_ok,
            f"{machine}, {probe.get('cores')} cores, {probe.get('cpu_model') or 'cpu model unknown'}",
            None if arch_ok else "install the 64-bit Raspberry Pi OS (aarch64): the runtimes' wheels are aarch64",
        )
    )
    version = str(probe.get("python") or "0")
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    py_ok = parts >= MIN_PYTHON
    checks.append(
        Check(
            "python",
            py_ok,
            f"{version} ({probe.get('python_executable')})",
            None if py_ok else "install Python 3.9 or newer: sudo apt install python3",
        )
    )
    packages = probe.get("packages") or {}
    runtimes = {m: v for m, v in packages.items() if m in RUNTIME_MODULES}
    numpy_version = packages.get("numpy")
    checks.append(
        Check(
            "runtimes",
            bool(runtimes),
            ", ".join(f"{m} {v}" for m, v in runtimes.items()) or "none of ai_edge_litert, tflite_runtime, onnxruntime",
            None if runtimes else f"{PIP} ai-edge-litert  (TFLite models; add onnxruntime for ONNX models)",
        )
    )
    checks.append(numpy_check(numpy_version, runtimes))
    free = (probe.get("disk") or {}).get("free_bytes")
    disk_ok = free is not None and free >= MIN_FREE_BYTES
    checks.append(
        Check(
            "disk",
            disk_ok,
            f"{free / 1e6:.0f} MB free in {target.entry.workdir}" if free is not None else str(probe.get("disk")),
            None if disk_ok else f"free space in {target.entry.workdir} or point `workdir` elsewhere",
        )
    )
    governor = probe.get("governor")
    checks.append(
        Check(
            "governor",
            True,
            governor or "unknown (no cpufreq)",
            None
            if governor in (None, "performance")
            else "for steadier numbers: echo performance | sudo tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor",
        )
    )
    checks.append(temperature_check(probe, target))
    checks.append(throttle_check(probe))
    return checks


def numpy_check(numpy_version: str | None, runtimes: dict[str, str]) -> Check:
    from edgekd.bench.doctor import Check

    if numpy_version is None:
        return Check("numpy", False, "not installed", f"{PIP} numpy")
    major = int(numpy_version.split(".")[0])
    only_tflite = "tflite_runtime" in runtimes and "ai_edge_litert" not in runtimes
    if only_tflite and major >= 2:
        return Check(
            "numpy",
            False,
            f"{numpy_version} (major {major}): tflite-runtime 2.14 fails with numpy 2",
            f"{PIP} 'numpy<2'  (or switch to: {PIP} ai-edge-litert)",
        )
    return Check("numpy", True, f"{numpy_version} (major {major})")


def temperature_check(probe: dict[str, Any], target: SshTarget) -> Check:
    from edgekd.bench.doctor import Check

    temps = temperatures(probe)
    soc = temps.get("vcgencmd", soc_temperature(temps))
    if soc is None:
        return Check("temperature", True, "no sensor readable (no vcgencmd, no thermal zone)")
    limit = target.profile.soft_temp_limit_c if target.profile else 80.0
    hot = soc >= limit - 5
    return Check(
        "temperature",
        not hot,
        f"{soc:.1f} °C (throttling from {limit:.0f} °C)",
        "let the board cool down and add a heatsink or fan" if hot else None,
    )


def throttle_check(probe: dict[str, Any]) -> Check:
    from edgekd.bench.doctor import Check

    raw = (probe.get("vcgencmd") or {}).get("get_throttled")
    if not raw:
        return Check("throttling", True, "not reported (no vcgencmd on this device)")
    state = decode_throttled(raw)
    return Check("throttling", not state.now, state.words(), state.advice())


def power_check(target: SshTarget) -> Check:
    from edgekd.bench.doctor import Check

    meter = energy_meter(target)
    if meter is None:
        return Check("power", True, 'no power measurement configured (power = "none")')
    why_not = meter.available()  # first: a first-available meter knows its name only after it
    return Check(
        "power",
        True,
        f"{meter.name}: {'available' if why_not is None else 'unavailable: ' + why_not}",
        why_not
        and "energy figures will be missing: a Pi 5 reads its PMIC (`vcgencmd pmic_read_adc`, "
        'power = "pi5-pmic"); other boards need an INA219/INA260 on hwmon (power = "ina") or a USB '
        'meter\'s CSV log (power = "usb-meter-csv", usb_meter_csv = PATH)',
    )


def energy_meter(target: SshTarget) -> EnergyMeter | None:
    """The meter named by `power`, or with "auto" the first of the profile's methods that is available here.

    Meter names come from edgekd.registry.ENERGY_METERS (checked when the entry was read); each meter builds
    itself from what the target reads through (files, `vcgencmd`, the USB meter log's path)."""
    from edgekd.targets.energy import FirstAvailableMeter, MeterSource, build_meter

    source = MeterSource(
        "ssh",
        read_text=target.read_text,
        command_output=target.command_output,
        options={"hwmon_root": target.entry.hwmon_root, "usb_meter_csv": target.entry.usb_meter_csv},
    )
    choice = target.entry.power
    if choice == "none":
        return None
    if choice != "auto":
        return build_meter(choice, source)
    methods = target.profile.power_methods if target.profile else AUTO_WITHOUT_PROFILE
    candidates = [meter for meter in (build_meter(m, source) for m in methods) if meter is not None]
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    return FirstAvailableMeter(candidates)  # its available() names every method tried and why it cannot
