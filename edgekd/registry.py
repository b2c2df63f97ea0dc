"""Name -> implementation tables. Backends are imported only when used, so the core stays light.

This is the single source of truth for converter, target-kind and energy-meter names. A converter's line
also carries its metadata (formats, precisions, PyPI distributions, optional extra), like Olive's package
config: stages dispatch on it and cache keys read it without importing the converter.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel

from edgekd.artifacts import Artifact
from edgekd.converter_protocol import Converter, ConverterEntry, options_for
from edgekd.errors import ConversionError, EdgekdError, UsageError

CONVERTERS: dict[str, ConverterEntry] = {
    "torch_onnx": ConverterEntry(
        "edgekd.converters.torch_onnx:TorchOnnxConverter", inputs=("torch",), outputs=("onnx",),
        precisions=("fp32",), packages=("torch", "onnx", "onnxscript", "onnxsim"),
    ),
    "ort_quant": ConverterEntry(
        "edgekd.converters.onnx_quant:OrtQuantizer", inputs=("onnx",), outputs=("onnx",),
        precisions=("int8",), packages=("onnxruntime", "onnx"),
    ),
    "onnx2tf": ConverterEntry(
        "edgekd.converters.onnx_tflite:Onnx2TfConverter", inputs=("onnx",), outputs=("tflite",),
        precisions=("fp32", "fp16", "dynamic_range", "int8"),
        packages=("onnx2tf", "tensorflow-cpu", "tf-keras", "ai-edge-litert", "onnx", "onnxsim"),
    ),
    "litert_torch": ConverterEntry(
        "edgekd.converters.torch_tflite:LiteRtTorchConverter", inputs=("torch",), outputs=("tflite",),
        precisions=("fp32", "int8"), packages=("litert-torch", "torch", "torchao", "ai-edge-litert"),
        extra="requirements-litert.txt",  # its own venv (.venv-litert): litert-torch downgrades pydantic
        ci_job="make test-litert",
    ),
}  # fmt: skip

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
    "usb-meter-csv": "edgekd.targets.energy.usb_meter:UsbMeterCsvMeter",
}


def suggest(name: str, choices: Iterable[str]) -> str | None:
    """The closest known name to a mistyped one, if any is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return close[0] if close else None


def unknown_name(kind: str, name: str, choices: Iterable[str], error: type[EdgekdError] = UsageError) -> EdgekdError:
    """The error for a name no table knows, with a close match and the known names."""
    known = sorted(choices)
    close = suggest(name, known)
    hint = (f"did you mean '{close}'? " if close else "") + f"known {kind}s: {', '.join(known)}"
    return error(f"unknown {kind} '{name}'", hint=hint)


def load(table: Mapping[str, str], name: str, kind: str) -> Any:
    """Import and return the object registered under `name`."""
    if name not in table:
        raise unknown_name(kind, name, table)
    module_name, attr = table[name].split(":")
    return getattr(importlib.import_module(module_name), attr)


def converter_entry(name: str) -> ConverterEntry:
    """The registry line of a converter (UsageError naming the known ones for an unknown name)."""
    if name not in CONVERTERS:
        raise unknown_name("converter", name, CONVERTERS)
    return CONVERTERS[name]


def converter(name: str) -> Converter:
    """An instance of the named converter. Importing its module imports no backend package."""
    entry = converter_entry(name)
    module_name, attr = entry.target.split(":")
    return cast(Converter, getattr(importlib.import_module(module_name), attr)())


def converter_unavailable(name: str) -> str | None:
    """The one availability check: None, or why the converter cannot run here and how to install it."""
    return converter(name).available()


def available_converter(name: str) -> Converter:
    """The named converter, or a ConversionError saying why it cannot run and how to install it."""
    reason = converter_unavailable(name)
    if reason:
        raise ConversionError(f"converter {name!r} is not available: {reason}", hint="install it, or choose another")
    return converter(name)


def converters_between(source: str, output: str) -> list[str]:
    """Names of the registered converters that turn `source` artifacts into `output` files, in table order."""
    return [name for name, entry in CONVERTERS.items() if source in entry.inputs and output in entry.outputs]


def run_converter(name: str, src: Artifact, values: Mapping[str, Any] | BaseModel, out_dir: Path) -> list[Artifact]:
    """Dispatch: check availability and `src`'s format against the registry line ONCE, fill the converter's
    own options from `values` (a mapping or a model; keys it does not declare are for other converters, its
    own Options model is used as given), then convert."""
    entry = converter_entry(name)
    if src.format not in entry.inputs:
        raise ConversionError(
            f"{name} converts {' or '.join(entry.inputs)} artifacts, got {src.format} ({src.path.name})",
            hint=f"converters that take {src.format}: {', '.join(_taking(src.format)) or 'none'}",
        )
    chosen = available_converter(name)
    return chosen.convert(src, options_for(chosen, values), Path(out_dir))


def _taking(source: str) -> list[str]:
    return [name for name, entry in CONVERTERS.items() if source in entry.inputs]
