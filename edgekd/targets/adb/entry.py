"""What a `kind = "adb"` entry of targets.toml may say (see edgekd.targets.adb.target for an example)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from edgekd.config.base import StrictModel, parse_target_entry
from edgekd.errors import RecipeError

RunMode = Literal["runner", "benchmark_model", "ort_perf_test"]


class AdbEntry(StrictModel):
    """One Android phone reached with the adb client."""

    serial: str | None = None  # None: $ANDROID_SERIAL, else the only phone attached
    adb_path: str = "adb"
    mode: RunMode = "runner"
    benchmark_model: Path | None = None  # TFLite's benchmark_model for the phone: mode = benchmark_model, or per-op
    # profiles of TFLite models in runner mode
    onnxruntime_perf_test: Path | None = None  # ORT's perf test built for the phone (mode = ort_perf_test)
    python: str = "/data/data/com.termux/files/usr/bin/python3"  # mode = runner
    workdir: str = "/data/local/tmp"  # a fresh edgekd-XXXXXX directory is made under it per session
    big_cores: str | None = None  # taskset hex mask, e.g. "c0"; None: the cluster with the highest clock
    allow_charging: bool = False  # measure battery energy on USB/AC power (then flagged)
    energy_interval_s: float = Field(0.25, gt=0)

    @field_validator("big_cores")
    @classmethod
    def _hex_mask(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = value.lower().removeprefix("0x")
        if not re.fullmatch(r"[0-9a-f]+", text) or int(text, 16) == 0:
            raise ValueError(f"'{value}' is not a CPU mask; write the cores as hex, e.g. 'c0' for cores 6 and 7")
        return text

    @field_validator("workdir")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must be an absolute path on the phone, e.g. /data/local/tmp")
        return value


def parse_entry(name: str, entry: dict[str, Any], base: Path) -> AdbEntry:
    """Validate a targets.toml entry; relative binary paths are taken relative to `base`."""
    fields = {key: value for key, value in entry.items() if key != "kind"}
    parsed = parse_target_entry(AdbEntry, "adb", name, fields, base, ("benchmark_model", "onnxruntime_perf_test"))
    needed = {"benchmark_model": parsed.benchmark_model, "ort_perf_test": parsed.onnxruntime_perf_test}
    if parsed.mode in needed and needed[parsed.mode] is None:
        key = "benchmark_model" if parsed.mode == "benchmark_model" else "onnxruntime_perf_test"
        raise RecipeError(
            f"targets.{name}: mode = '{parsed.mode}' needs {key} = PATH (the binary built for the phone)",
            hint=f'add {key} = "path/to/binary" or use mode = "runner" on a phone with python3',
        )
    return parsed


def entry_identity(entry: AdbEntry, serial: str) -> dict[str, str]:
    """Where an adb entry runs, without connecting: the serial and its transport, the run settings, and the
    tool binary whose figures (tool modes) or op profiles (runner mode) the results carry."""
    from edgekd.targets.tools import tool_identity

    identity = {
        "kind": "adb",
        "serial": serial,
        "transport": "tcp" if re.fullmatch(r"[\w.-]+:\d+", serial) else ("usb" if serial else ""),
        "mode": entry.mode,
        "python": entry.python,
        "workdir": entry.workdir,
        "big_cores": entry.big_cores or "",
        "adb_path": entry.adb_path,
    }
    if entry.mode in ("benchmark_model", "runner"):
        identity |= tool_identity(entry.benchmark_model)
    elif entry.mode == "ort_perf_test":
        identity |= tool_identity(entry.onnxruntime_perf_test, "onnxruntime_perf_test")
    return identity
