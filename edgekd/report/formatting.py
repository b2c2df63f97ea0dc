"""Number formatting shared by the Markdown and HTML reports, so both show the same figures."""

from __future__ import annotations

import math
from typing import Any, TypeGuard

DASH = "—"


def is_number(value: Any) -> TypeGuard[float]:
    """A finite int or float (not a bool): a figure that can be printed and compared."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number(value: Any) -> float | None:
    """A finite number as a float; None for anything else (bool, NaN, text, missing)."""
    return float(value) if is_number(value) else None


def pct(fraction: Any, digits: int = 2) -> str:
    """0.9611 -> '96.11%'."""
    return f"{fraction * 100:.{digits}f}%" if is_number(fraction) else DASH


def points(fraction: Any) -> str:
    """An accuracy difference in percentage points: 0.0139 -> '+1.39 pt'."""
    return f"{fraction * 100:+.2f} pt" if is_number(fraction) else DASH


def ms(value: Any) -> str:
    """Latency in milliseconds with three significant digits (µs below 0.1 ms)."""
    if not is_number(value):
        return DASH
    if value < 0.1:
        return f"{_three_digits(value * 1000)} µs"
    return f"{_three_digits(value)} ms"


def _three_digits(value: float) -> str:
    """Three significant digits, trailing zeros kept (0.110, 21.0, 142), no exponent below 1000."""
    decimals = 0 if value >= 100 else 1 if value >= 10 else 2 if value >= 1 else 3
    return f"{value:.{decimals}f}"


def size(num_bytes: Any) -> str:
    """Bytes in binary units: 21317 -> '20.8 KiB'."""
    if not is_number(num_bytes):
        return DASH
    value = float(num_bytes)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024 or unit == "MiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return DASH  # unreachable


def count(value: Any) -> str:
    """Parameters or FLOPs: 4842 -> '4.8k', 3350528 -> '3.35M'."""
    if not is_number(value):
        return DASH
    if value >= 1e6:
        return f"{value / 1e6:.3g}M"
    if value >= 1e3:
        return f"{value / 1e3:.3g}k"
    return f"{value:.0f}"


def kib(value: Any) -> str:
    """Resident memory given in KiB."""
    return size(value * 1024) if is_number(value) else DASH


def joules(value: Any) -> str:
    """Energy per inference: µJ or mJ."""
    if not is_number(value):
        return DASH
    if value < 1e-3:
        return f"{value * 1e6:.3g} µJ"
    return f"{value * 1e3:.3g} mJ"


def error(value: Any) -> str:
    return f"{value:.2e}" if is_number(value) else DASH


def seconds(value: Any) -> str:
    return f"{value:.1f} s" if is_number(value) else DASH


def passed(value: Any) -> str:
    return "pass" if value is True else "FAIL" if value is False else DASH


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """{'versions': {'ort': '1.3'}} -> {'versions.ort': '1.3'}, values as text (for environment tables)."""
    flat: dict[str, str] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        elif isinstance(value, (list, tuple)):
            flat[name] = ", ".join(str(v) for v in value) or DASH
        else:
            flat[name] = DASH if value is None or value == {} else str(value)
    return flat


def kd_gap(distill: dict[str, Any]) -> str | None:
    """'+1.39 pt (beyond noise, band ±1.21 pt)': the KD student's gain over the scratch student."""
    gap = distill.get("kd_minus_scratch")
    if not is_number(gap):
        return None
    verdict = "within noise" if distill.get("within_noise") else "beyond noise"
    band = (distill.get("noise_test") or {}).get("noise_band")
    return f"{points(gap)} ({verdict}" + (f", band ±{band * 100:.2f} pt)" if is_number(band) else ")")


def teacher_agreement(distill: dict[str, Any]) -> str | None:
    """'KD student 98.9 % (KL 0.041), scratch student 95.0 % (KL 0.120)': top-1 agreement with the teacher
    and KL(teacher || student) on the validation split, the way big_vision reports distillation."""
    parts = []
    for role, label in (("student", "KD student"), ("scratch", "scratch student")):
        agreement = distill.get(f"{role}_teacher_agreement")
        if is_number(agreement):
            kl = distill.get(f"{role}_teacher_kl")
            parts.append(f"{label} {pct(agreement)}" + (f" (KL {kl:.3f})" if is_number(kl) else ""))
    if not parts:
        return None
    split = distill.get("agreement_split") or "val"
    return f"{', '.join(parts)} on the {split} split"


#: The columns of the artifacts-and-parity table (both reports; report.md leaves out "max rel error"), before
#: the parity verdict, which each renderer marks its own way.
PARITY_HEADER = ["artifact", "format", "precision", "size", "accuracy", "Δ accuracy", "top-1 agreement",
                 "max abs error", "max rel error"]  # fmt: skip


def parity_rows(report: dict[str, Any]) -> list[tuple[list[str], bool | None]]:
    """Per artifact (the report's artifacts, then parity rows of others): the PARITY_HEADER cells, and whether
    its parity passed (None: not checked)."""
    arts = {a["name"]: a for a in report.get("artifacts") or []}
    parity = {row["artifact"]: row for row in report.get("parity") or []}
    rows: list[tuple[list[str], bool | None]] = []
    for name in list(arts) + [n for n in parity if n not in arts]:
        art, row = arts.get(name, {}), parity.get(name, {})
        cells = [
            name,
            art.get("format") or row.get("format") or DASH,
            art.get("precision") or row.get("precision") or DASH,
            size(art.get("size_bytes")),
            pct(row.get("accuracy")),
            points(row.get("accuracy_delta")),
            pct(row.get("top1_agreement")),
            error(row.get("max_abs_error")),
            error(row.get("max_rel_error")),
        ]
        state = row.get("passed")
        rows.append((cells, state if isinstance(state, bool) else None))
    return rows


def bench_cells(row: dict[str, Any]) -> dict[str, Any]:
    """Every figure either report shows for a bench row, formatted once; each report picks its columns by key."""
    energy = row.get("energy_j_per_inference")
    return {
        "artifact": row.get("artifact"),
        "target": row.get("target"),
        "runtime": row.get("runtime") or DASH,
        "runtime_version": " ".join(str(v) for v in (row.get("runtime"), row.get("runtime_version")) if v) or DASH,
        "p50": ms(row.get("p50_ms")),
        "p90": ms(row.get("p90_ms")),
        "p99": ms(row.get("p99_ms")),
        "IQR": ms(row.get("iqr_ms")),
        "runs": row.get("runs") or len(row.get("latencies_ns") or []) or DASH,
        "peak RSS": kib(row.get("peak_rss_kb")),
        "model RSS": kib(row.get("model_rss_kb")),
        "load": ms(row.get("init_ms")),
        "energy / inference": joules(energy) if energy is not None else "n/a",
    }


def distill_rows(distill: dict[str, Any]) -> list[list[str]]:
    """Teacher, KD student and scratch student: label, accuracy, params, FLOPs and size (both reports' table)."""
    roles = (("teacher", "teacher"), ("student", "KD student"), ("scratch", "scratch student"))
    return [
        [
            label,
            pct(distill.get(f"{role}_accuracy")),
            count(distill.get(f"{role}_params")),
            count(distill.get(f"{role}_flops")),
            size(distill.get(f"{role}_size_bytes")),
        ]
        for role, label in roles
    ]
