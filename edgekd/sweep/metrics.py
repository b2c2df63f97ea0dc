"""A finished trial's figures, read from its run's report.json, and its constraint violations."""

from __future__ import annotations

import math
from typing import Any

from edgekd.errors import BenchError
from edgekd.sweep.config import Constraint, Objective


def figure(report: dict[str, Any], item: Objective) -> float | None:
    """The value of one objective/constraint metric in a run's report, or None when the run did not measure it."""
    from edgekd.report.build import accuracy_of

    metric, artifact = item.metric, item.artifact
    if metric == "accuracy":
        return accuracy_of(report, artifact)
    if metric == "accuracy_drop":
        accuracy, teacher = accuracy_of(report, artifact), (report.get("distill") or {}).get("teacher_accuracy")
        return None if accuracy is None or not _finite(teacher) else float(teacher) - accuracy
    if metric == "p50_ms":
        for row in report.get("bench") or []:
            if row.get("artifact") == artifact and row.get("target") == item.target and _finite(row.get("p50_ms")):
                return float(row["p50_ms"])
        return None
    if metric == "size_bytes":
        for row in report.get("artifacts") or []:
            if row.get("name") == artifact and _finite(row.get("size_bytes")):
                return float(row["size_bytes"])
        return None
    handoff = report.get("handoff") or {}
    value = handoff.get("arena_bytes" if metric == "arena_bytes" else "model_bytes")
    return float(value) if _finite(value) else None


def trial_figures(report: dict[str, Any], objectives: list[Objective], constraints: list[Constraint]) -> dict[str, Any]:
    """{"values": objective values in order, "figures": label -> value, "violations": per constraint}.

    A metric an objective needs that the run did not produce is a BenchError (the trial fails, named)."""
    values: list[float] = []
    figures: dict[str, float | None] = {}
    for item in objectives:
        value = figure(report, item)
        if value is None:
            raise BenchError(f"the trial's run has no {item.label}", hint="see the trial's report.json")
        values.append(value)
        figures[item.label] = value
    size = Objective(metric="size_bytes", artifact=objectives[0].artifact)
    if size.label not in figures:  # the Pareto plot's colour, whatever the objectives are
        figures[size.label] = figure(report, size)
    violations: list[float] = []
    for bound in constraints:
        value = figure(report, bound)
        figures[bound.label] = value
        violations.append(math.inf if value is None else bound.violation(value))
    return {"values": values, "figures": figures, "violations": violations}


def val_accuracy_curve(distill_summary: dict[str, Any]) -> list[float]:
    """The KD student's validation accuracy per epoch, from the distill stage's summary."""
    rows = ((distill_summary.get("history") or {}).get("student")) or []
    return [float(r["val_accuracy"]) for r in rows if isinstance(r, dict) and _finite(r.get("val_accuracy"))]


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
