"""Arm Ethos-U: compile the int8 .tflite with Vela (PyPI `ethos-u-vela`) and read its performance estimate.

`[handoff] platform = "ethos-u55-128"` (any of Vela's `--accelerator-config` values) bundles the Vela-compiled
model (`<name>_vela.tflite`: the NPU part becomes one `ethos-u` custom operator, the rest stays TFLM
operators for the Cortex-M) beside the plain int8 model, and records Vela's figures: SRAM and flash used,
the NPU/CPU operator split, cycles, inference time and inferences per second at the system configuration's
clock. They are Vela's *estimates* for its default (or the named) system configuration and memory mode,
not measurements on hardware, and are labelled so everywhere.

Vela runs in a child process (`python -c "from ethosu.vela.vela import main" ...`) with its own output
folder; its summary CSV and the operator lines of `--show-cpu-operations` are the sources read here.
"""

from __future__ import annotations

import csv
import importlib.metadata
import importlib.util
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from edgekd.errors import HandoffError

ETHOS_U_CONFIGS = ("ethos-u55-32", "ethos-u55-64", "ethos-u55-128", "ethos-u55-256", "ethos-u65-256", "ethos-u65-512",
                   "ethos-u85-128", "ethos-u85-256", "ethos-u85-512", "ethos-u85-1024", "ethos-u85-2048")  # fmt: skip
VELA_TIMEOUT_S = 900.0
LABEL = "Vela estimates (ethos-u-vela's performance model, not measured on hardware)"
_OP_LINE = re.compile(r"^\s*(NPU|CPU): (\w+) = ")
_COUNT = re.compile(r"^(CPU|NPU) operators = (\d+)")


def is_ethos_u(platform: str) -> bool:
    return platform in ETHOS_U_CONFIGS


def vela_available() -> str | None:
    """None when Vela can run, else why not."""
    if importlib.util.find_spec("ethosu") is None or importlib.util.find_spec("ethosu.vela") is None:
        return "ethos-u-vela is not installed (pip install ethos-u-vela)"
    return None


def compile_with_vela(model: Path, accelerator: str) -> tuple[bytes, dict[str, Any]]:
    """(the Vela-compiled .tflite, Vela's estimates) for `model` on `accelerator` (e.g. "ethos-u55-128")."""
    missing = vela_available()
    if missing:
        raise HandoffError(f"platform {accelerator!r} needs Arm's Vela compiler: {missing}",
                           hint="pip install ethos-u-vela, or bundle for platform = \"micro\"")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="edgekd-vela-") as tmp:
        out = Path(tmp)
        args = [str(model), "--accelerator-config", accelerator, "--output-dir", str(out), "--show-cpu-operations"]
        code = "import sys; from ethosu.vela.vela import main; sys.argv[0] = 'vela'; sys.exit(main())"
        try:
            done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                                  timeout=VELA_TIMEOUT_S, check=False)  # fmt: skip
        except subprocess.TimeoutExpired:
            raise HandoffError(f"Vela took over {VELA_TIMEOUT_S:.0f} s on {model.name}") from None
        compiled = out / f"{model.stem}_vela.tflite"
        summaries = sorted(out.glob(f"{model.stem}_summary_*.csv"))
        if done.returncode != 0 or not compiled.is_file() or not summaries:
            lines = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
            raise HandoffError(f"Vela could not compile {model.name} for {accelerator}: {'; '.join(lines[-3:]) or 'no message'}",
                               hint="Vela takes full int8 (or int16x8) models: hand over tflite_int8")  # fmt: skip
        with summaries[0].open(newline="") as handle:
            summary = next(csv.DictReader(handle))
        info = estimates(summary, done.stdout, accelerator)
        if info["npu_operators"] == 0:
            raise HandoffError(f"Vela placed none of {model.name}'s {info['cpu_operators']} operators on the {accelerator} NPU "
                               f"(CPU: {', '.join(info['cpu_operator_types']) or 'none'})",
                               hint="the Ethos-U NPU runs full int8 (or int16x8) models: hand over tflite_int8, "
                                    "or bundle for platform = \"micro\"")  # fmt: skip
        return compiled.read_bytes(), info


def estimates(summary: dict[str, str], stdout: str, accelerator: str) -> dict[str, Any]:
    """Vela's summary CSV row and its --show-cpu-operations lines as one JSON-ready record (bytes, Hz, s)."""

    def number(key: str) -> float:
        return float(summary.get(key) or 0.0)

    counts = {kind: int(n) for kind, n in (m.groups() for m in map(_COUNT.match, stdout.splitlines()) if m)}
    ops: dict[str, dict[str, int]] = {"NPU": {}, "CPU": {}}
    for match in filter(None, map(_OP_LINE.match, stdout.splitlines())):
        kind, op = match.groups()
        ops[kind][op] = ops[kind].get(op, 0) + 1
    return {
        "label": LABEL,
        "tool": "ethos-u-vela",
        "version": _version(),
        "accelerator": accelerator,
        "system_config": summary.get("system_config"),
        "memory_mode": summary.get("memory_mode"),
        "core_clock_hz": number("core_clock"),
        "sram_bytes": round(number("sram_memory_used") * 1024),  # Vela reports KiB
        "off_chip_flash_bytes": round(number("off_chip_flash_memory_used") * 1024),
        "on_chip_flash_bytes": round(number("on_chip_flash_memory_used") * 1024),
        "dram_bytes": round(number("dram_memory_used") * 1024),
        "weights_storage": summary.get("weights_storage_area"),
        "feature_map_storage": summary.get("feature_map_storage_area"),
        "npu_operators": counts.get("NPU", sum(ops["NPU"].values())),
        "cpu_operators": counts.get("CPU", sum(ops["CPU"].values())),
        "npu_operator_types": dict(sorted(ops["NPU"].items())),
        "cpu_operator_types": dict(sorted(ops["CPU"].items())),
        "macs": int(number("nn_macs")),
        "cycles_total": int(number("cycles_total")),
        "cycles_npu": int(number("cycles_npu")),
        "inference_time_s": number("inference_time"),
        "inferences_per_second": number("inferences_per_second"),
    }


def _version() -> str | None:
    try:
        return importlib.metadata.version("ethos-u-vela")
    except importlib.metadata.PackageNotFoundError:
        return None
