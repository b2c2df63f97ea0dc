"""What a Linux device has, as one JSON document: run on the device as `python3 -c <this file's text>`.

Standard library only, Python >= 3.9 (it runs on whatever Python the Pi has). Versions come from package
metadata, not imports, so probing is fast even under emulation. vcgencmd outputs are returned raw: the
host decodes them (edgekd.targets.thermal), so the decoding is tested against recordings of real Pis.
Usage: python3 -c SOURCE [WORKDIR]
"""

import json
import os
import platform
import shutil
import subprocess
import sys

PACKAGES = {
    "ai_edge_litert": "ai-edge-litert",
    "tflite_runtime": "tflite-runtime",
    "onnxruntime": "onnxruntime",
    "numpy": "numpy",
}


def read_text(path):
    try:
        with open(path) as handle:
            return handle.read().strip().strip("\x00")  # device-tree strings end in NUL
    except OSError:
        return None


def package_versions():
    from importlib import metadata

    found = {}
    for module, dist in PACKAGES.items():
        try:
            found[module] = metadata.version(dist)
        except Exception:  # noqa: BLE001, S112 - not installed, or broken metadata: reported as missing
            continue
    return found


def cpu_model():
    text = read_text("/proc/cpuinfo") or ""
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields.get("Model") or fields.get("model name") or fields.get("Hardware")


def thermal_zones():
    zones = {}
    base = "/sys/class/thermal"
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return zones
    for name in names:
        if name.startswith("thermal_zone"):
            zones[name] = {
                "type": read_text(base + "/" + name + "/type"),
                "temp": read_text(base + "/" + name + "/temp"),
            }
    return zones


def vcgencmd(*args):
    """Raw output of `vcgencmd ARGS`, or None where there is no vcgencmd (not a Pi, or not in PATH)."""
    exe = shutil.which("vcgencmd")
    if exe is None:
        return None
    try:
        done = subprocess.run([exe, *args], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def main():
    workdir = sys.argv[1] if len(sys.argv) > 1 else "."
    try:
        usage = shutil.disk_usage(workdir)
        disk = {"free_bytes": usage.free, "total_bytes": usage.total}
    except OSError as exc:
        disk = {"error": str(exc)}
    report = {
        "machine": platform.machine(),
        "system": platform.system(),
        "release": platform.release(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "cores": os.cpu_count(),
        "cpu_model": cpu_model(),
        "device_model": read_text("/proc/device-tree/model"),
        "governor": read_text("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "packages": package_versions(),
        "disk": disk,
        "thermal_zones": thermal_zones(),
        "vcgencmd": {"measure_temp": vcgencmd("measure_temp"), "get_throttled": vcgencmd("get_throttled")},
        "tools": {tool: shutil.which(tool) is not None for tool in ("sha256sum", "taskset", "timeout", "vcgencmd")},
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
