"""Name -> "module:attr" tables. Backends are imported only when used, so the core stays light.

This is the single source of truth for converter, target-kind and energy-meter names.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from edgekd.errors import EdgekdError, UsageError

CONVERTERS: dict[str, str] = {
    "torch_onnx": "edgekd.converters.torch_onnx:TorchOnnxConverter",
    "ort_quant": "edgekd.converters.onnx_quant:OrtQuantizer",
    "onnx2tf": "edgekd.converters.onnx_tflite:Onnx2TfConverter",
    "litert_torch": "edgekd.converters.torch_tflite:LiteRtTorchConverter",
}

TARGET_KINDS: dict[str, str] = {
    "local": "edgekd.targets.local:LocalTarget",
    "ssh": "edgekd.targets.ssh.target:SshTarget",
    "adb": "edgekd.targets.adb.target:AdbTarget",
}

ENERGY_METERS: dict[str, str] = {
    "rapl": "edgekd.targets.energy.rapl:RaplMeter",
    "perf": "edgekd.targets.energy.perf:PerfEnergyMeter",
    "pi5-pmic": "edgekd.targets.energy.pi_pmic:Pi5PmicMeter",
    "ina": "edgekd.targets.energy.hwmon_ina:HwmonInaMeter",
    "android-battery": "edgekd.targets.energy.android_battery:AndroidBatteryMeter",
}


def suggest(name: str, choices: list[str] | tuple[str, ...] | Any) -> str | None:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return close[0] if close else None


def unknown_name(kind: str, name: str, choices: Any, error: type[EdgekdError] = UsageError) -> EdgekdError:
    close = suggest(name, choices)
    hint = (f"did you mean '{close}'? " if close else "") + f"known {kind}s: {', '.join(sorted(choices))}"
    return error(f"unknown {kind} '{name}'", hint=hint)


def load(table: dict[str, str], name: str, kind: str) -> Any:
    """Import and return the object registered under `name`."""
    if name not in table:
        raise unknown_name(kind, name, table)
    module_name, attr = table[name].split(":")
    return getattr(importlib.import_module(module_name), attr)


def converter(name: str) -> Any:
    """An instance of the named converter (it reports its own availability via .available())."""
    return load(CONVERTERS, name, "converter")()
