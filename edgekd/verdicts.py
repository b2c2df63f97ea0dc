"""Outcome verdicts: judgments of a run whose outcome is plausible but suspicious, computed in one place.

A verdict is not an error: the stages that ran succeeded, yet something a reader should question
happened (a teacher worse than the student trained without it, int8 slower than fp32...). `compute` judges the
assembled report.json dict (built by `edgekd.report.build`), so `edgekd run`, `edgekd report` and any
tool reading report.json see the same verdicts. One small function per verdict; each message is one
sentence with the figures. `select_failing` is the one rule for which verdicts fail a `--strict` run.

The rules, with their constants:
- teacher_below_scratch: the teacher's test accuracy is below the scratch student's (any amount: the
  teacher is meant to be the stronger model).
- kd_below_scratch: the KD student is below the scratch student beyond noise (the distill stage's paired
  McNemar test; without it, beyond its `noise_band`).
- student_keeps_little: the KD student keeps less than STUDENT_KEEPS_MIN of the teacher's accuracy.
- int8_slower_than_fp32: on one target and runtime, an int8 artifact's p50 exceeds its fp32 sibling's by
  more than INT8_SLOWER_MARGIN and (where both have one) their 95 % confidence intervals of the median
  do not overlap.
- int8_agreement_near_gate: an int8 artifact passes the top-1 agreement gate by less than AGREEMENT_MARGIN.
- energy_unavailable (info): energy was not measured on a target, with the reason.
- accelerator_fallback: a profiled artifact asked for an accelerator (ORT execution provider, TFLite delegate)
  and some or all of its nodes ran on the plain CPU (edgekd.profile.placement; a warning from
  FALLBACK_WARN_SHARE of the op time, info below it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, get_args

from edgekd.config.report import VerdictCode
from edgekd.report import formatting as fmt

#: The KD student should keep at least this fraction of the teacher's accuracy (0.90 = 90 %).
STUDENT_KEEPS_MIN = 0.90
#: int8 counts as slower when its p50 is more than this fraction above fp32's (0.05 = 5 %).
INT8_SLOWER_MARGIN = 0.05
#: An agreement within this fraction above its gate is "near the gate" (0.01 = 1 point).
AGREEMENT_MARGIN = 0.01

WARNING, INFO = "warning", "info"
#: Runtime ids of bench rows as a reader knows them.
RUNTIME_NAMES = {"ort": "ONNX Runtime", "litert": "LiteRT", "tflite": "tflite-runtime", "torch": "PyTorch"}


@dataclass(frozen=True)
class Verdict:
    code: str
    message: str
    severity: str  # "warning" | "info"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _num(value: Any) -> float | None:
    return float(value) if fmt.is_number(value) else None


def teacher_below_scratch(report: dict[str, Any]) -> list[Verdict]:
    distill = report.get("distill") or {}
    teacher, scratch = _num(distill.get("teacher_accuracy")), _num(distill.get("scratch_accuracy"))
    if teacher is None or scratch is None or teacher >= scratch:
        return []
    return [
        Verdict(
            "teacher_below_scratch",
            f"The teacher scores {fmt.pct(teacher)} on the test split, below the {fmt.pct(scratch)} of the "
            f"student trained without it ({fmt.points(teacher - scratch)}), so it had nothing to teach: "
            "check the teacher's preprocessing and training.",
            WARNING,
        )
    ]


def kd_below_scratch(report: dict[str, Any]) -> list[Verdict]:
    distill = report.get("distill") or {}
    gap = _num(distill.get("kd_minus_scratch"))
    if gap is None or gap >= 0:
        return []
    noise = distill.get("noise_test") if isinstance(distill.get("noise_test"), dict) else {}
    band = _num(noise.get("noise_band"))
    within = distill.get("within_noise")
    if not isinstance(within, bool):
        if band is None:
            return []  # no noise estimate: nothing to judge "beyond noise" against
        within = abs(gap) <= band
    if within:
        return []
    band_text = f", noise band ±{band * 100:.2f} pt" if band is not None else ""
    return [
        Verdict(
            "kd_below_scratch",
            f"The KD student scores {fmt.pct(distill.get('student_accuracy'))}, "
            f"{abs(gap) * 100:.2f} pt below the scratch student's {fmt.pct(distill.get('scratch_accuracy'))} "
            f"beyond noise ({noise.get('method') or 'no test named'}{band_text}), so distillation hurt.",
            WARNING,
        )
    ]


def student_keeps_little(report: dict[str, Any]) -> list[Verdict]:
    distill = report.get("distill") or {}
    teacher, student = _num(distill.get("teacher_accuracy")), _num(distill.get("student_accuracy"))
    if teacher is None or student is None or teacher <= 0:
        return []
    kept = student / teacher
    if kept >= STUDENT_KEEPS_MIN:
        return []
    return [
        Verdict(
            "student_keeps_little",
            f"The KD student keeps {kept * 100:.1f}% of the teacher's accuracy ({fmt.pct(student)} vs "
            f"{fmt.pct(teacher)}), below the {STUDENT_KEEPS_MIN * 100:g}% floor.",
            WARNING,
        )
    ]


def _precision_of(row: dict[str, Any], precisions: dict[str, Any]) -> str:
    return str(row.get("precision") or precisions.get(row.get("artifact")) or "")


def _ci(row: dict[str, Any]) -> tuple[float, float] | None:
    ci = row.get("ci95_median_ms")
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(fmt.is_number(v) for v in ci):
        return float(ci[0]), float(ci[1])
    return None


def _clearly_slower(slow: dict[str, Any], fast: dict[str, Any]) -> bool:
    p50_slow, p50_fast = _num(slow.get("p50_ms")), _num(fast.get("p50_ms"))
    if p50_slow is None or p50_fast is None or p50_slow <= p50_fast * (1 + INT8_SLOWER_MARGIN):
        return False
    ci_slow, ci_fast = _ci(slow), _ci(fast)
    return ci_slow is None or ci_fast is None or ci_slow[0] > ci_fast[1]


def int8_slower_than_fp32(report: dict[str, Any]) -> list[Verdict]:
    """One verdict per (target, runtime) pair of int8 and fp32 rows of the same format."""
    precisions = {a.get("name"): a.get("precision") for a in report.get("artifacts") or []}
    formats = {a.get("name"): a.get("format") for a in report.get("artifacts") or []}
    groups: dict[tuple[Any, Any, Any], dict[str, list[dict[str, Any]]]] = {}
    for row in report.get("bench") or []:
        precision = _precision_of(row, precisions)
        if precision.startswith("int8") or precision == "fp32":
            key = (row.get("target"), row.get("runtime"), row.get("format") or formats.get(row.get("artifact")))
            groups.setdefault(key, {}).setdefault("int8" if precision.startswith("int8") else "fp32", []).append(row)
    verdicts = []
    for (target, runtime, _format), rows in groups.items():
        for slow in rows.get("int8", []):
            for fast in rows.get("fp32", []):
                if not _clearly_slower(slow, fast):
                    continue
                ratio = slow["p50_ms"] / fast["p50_ms"]
                verdicts.append(
                    Verdict(
                        "int8_slower_than_fp32",
                        f"On {target}, {RUNTIME_NAMES.get(str(runtime), runtime)} runs {slow.get('artifact')} slower than {fast.get('artifact')}: "
                        f"p50 {fmt.ms(slow['p50_ms'])} vs {fmt.ms(fast['p50_ms'])} ({ratio:.2f}×).",
                        WARNING,
                    )
                )
    return verdicts


def int8_agreement_near_gate(report: dict[str, Any]) -> list[Verdict]:
    verdicts = []
    for row in report.get("parity") or []:
        if not str(row.get("precision") or "").startswith("int8"):
            continue
        agreement = _num(row.get("top1_agreement"))
        gate = _num((row.get("threshold") or {}).get("agreement")) if isinstance(row.get("threshold"), dict) else None
        if agreement is None or gate is None or not gate <= agreement < gate + AGREEMENT_MARGIN:
            continue
        verdicts.append(
            Verdict(
                "int8_agreement_near_gate",
                f"{row.get('artifact')} agrees with its reference on {fmt.pct(agreement)} of test samples, within "
                f"{AGREEMENT_MARGIN * 100:g} pt of the {fmt.pct(gate)} gate, so a small change of data or calibration "
                "could fail it.",
                WARNING,
            )
        )
    return verdicts


def energy_unavailable(report: dict[str, Any]) -> list[Verdict]:
    """One verdict per target and reason (not one per artifact)."""
    reasons: dict[Any, list[str]] = {}
    for row in report.get("bench") or []:
        if _num(row.get("energy_j_per_inference")) is None:
            reason = str(row.get("energy_unavailable") or "no reason given").rstrip(". ")
            found = reasons.setdefault(row.get("target"), [])
            if reason not in found:
                found.append(reason)
    return [
        Verdict("energy_unavailable", f"Energy was not measured on {target}: {'; '.join(found)}.", INFO)
        for target, found in reasons.items()
    ]


def fitnets_cross_family(report: dict[str, Any]) -> list[Verdict]:
    """FitNets hints between different model families (e.g. a CNN teacher, an MLP student) tend to do worse
    than scratch (ResNet50 -> MobileNetV2: 63.16 vs 64.60); the distill stage records the pair."""
    found = (report.get("distill") or {}).get("fitnets_cross_family")
    if not isinstance(found, dict):
        return []
    teacher, student = found.get("teacher_family", "?"), found.get("student_family", "?")
    return [
        Verdict(
            "fitnets_cross_family",
            f"FitNets hints go from a {teacher} teacher into a {student} student: "
            "hints across model families often do worse than scratch, so prefer a logit loss (dist, dkd).",
            WARNING,
        )
    ]


def accelerator_fallback(report: dict[str, Any]) -> list[Verdict]:
    """Over report.json's per-op `profiles` (edgekd.profile.placement.report_fallbacks, imported here: it
    imports this module)."""
    from edgekd.profile.placement import report_fallbacks

    return report_fallbacks(report)


#: Every verdict, in the order they are shown; each function is named after its code.
CHECKS: tuple[Callable[[dict[str, Any]], list[Verdict]], ...] = (
    teacher_below_scratch,
    kd_below_scratch,
    student_keeps_little,
    int8_slower_than_fp32,
    int8_agreement_near_gate,
    energy_unavailable,
    accelerator_fallback,
    fitnets_cross_family,
)
#: The codes a recipe's `[report] strict` list may name (declared in the config; a test keeps both equal).
CODES: tuple[str, ...] = get_args(VerdictCode)


def compute(report: dict[str, Any]) -> list[Verdict]:
    """Every verdict that fires on a report.json dict (missing sections fire nothing)."""
    return [verdict for check in CHECKS for verdict in check(report)]


def select_failing(verdicts: Iterable[dict[str, Any] | Verdict], strict: bool | Iterable[str]) -> list[dict[str, Any]]:
    """The verdicts a strict run fails on: `True` = every "warning" verdict; a list = the verdicts of those codes.

    `verdicts` are report.json["verdicts"] entries (dicts) or Verdict objects; the result is dicts.
    """
    rows = [v.to_dict() if isinstance(v, Verdict) else dict(v) for v in verdicts]
    if strict is True:
        return [row for row in rows if row.get("severity") == WARNING]
    if strict is False:
        return []
    codes = set(strict)
    return [row for row in rows if row.get("code") in codes]
