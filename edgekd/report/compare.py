"""Compare two runs: what got slower, bigger or less accurate (and what improved).

Each side is a run directory (its report.json, or its stage manifests when report.json is missing), a
report.json file, or a run id in the benchmark history (`edgekd.bench.history`, used only if present).
Latency changes are judged by `edgekd.bench.significance.judge_latency`, the decision `bench compare`
makes too: a relative change beyond `latency_tolerance` that is also significant at `alpha` (Mann-Whitney U
on the raw samples, else CIs of the medians, else Welch's t on summaries), so noise is not a regression.
A report.json of an older schema is read through `edgekd.report.schema.upgrade_report`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgekd.bench.significance import FASTER, SLOWER, judge_latency
from edgekd.errors import UsageError
from edgekd.report import formatting as fmt
from edgekd.report.bench_rows import accuracy_of, bench_row
from edgekd.report.build import build_report
from edgekd.report.formatting import is_number
from edgekd.report.provenance import unrelated_reasons
from edgekd.report.schema import KNOWN_SCHEMAS, REPORT_SCHEMA, is_report, upgrade_report

COMPARE_SCHEMA = "edgekd.compare/1"


def load_run_report(source: Path | str) -> dict[str, Any]:
    """report.json of a run given as a directory, a report.json file, or a run id in the history."""
    path = Path(source)
    if path.is_dir():
        report_file = path / "report.json"
        return _read_report(report_file) if report_file.is_file() else build_report(path)
    if path.is_file():
        return _read_report(path)
    report = _from_history(str(source))
    if report is None:
        raise UsageError(
            f"{source} is neither a run directory, a report.json, nor a run in the history",
            hint="give two run directories (e.g. runs/a runs/b); `edgekd bench history` lists run ids",
        )
    return report


def _read_report(path: Path) -> dict[str, Any]:
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}", hint="rerun `edgekd report RUN_DIR` to rewrite it") from None
    if (
        isinstance(report, dict)
        and str(report.get("schema", "")).startswith("edgekd.report/")
        and not is_report(report)
    ):
        raise UsageError(
            f"{path} has schema {report.get('schema')!r}, which this edgekd does not read ({', '.join(KNOWN_SCHEMAS)})",
            hint="compare it with the edgekd version that wrote it",
        )
    if not is_report(report):
        raise UsageError(
            f'{path} is not an edgekd report (no "schema": "{REPORT_SCHEMA}")',
            hint="give a run directory or the report.json edgekd wrote",
        )
    return upgrade_report(report)


def _from_history(ref: str) -> dict[str, Any] | None:
    """A run from the SQLite benchmark history: an id, a unique prefix, `latest` or `latest~N`.

    Runs recorded by `edgekd run` carry their whole report; runs recorded by `edgekd bench` only
    their bench results, which are enough to compare latency, memory and energy.
    """
    try:
        from edgekd.bench.history import History
    except ImportError:  # the history module is optional
        return None
    from edgekd.errors import BenchError

    history = History()
    if not history.path.exists():  # never create a history file just to look something up
        return None
    try:
        run_id = history.resolve(ref)
        run = next(r for r in history.runs() if r["run_id"] == run_id)
        report = (run.get("meta") or {}).get("report")
        if isinstance(report, dict) and is_report(report):
            return upgrade_report(report)
        return _report_from_results(run_id, history.results(run_id))
    except BenchError as exc:
        if exc.message.startswith("no run"):
            return None
        raise UsageError(exc.message, hint=exc.hint) from None


def _report_from_results(run_id: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    """A bench-only report for a history run that has no stored report."""
    return {
        "schema": REPORT_SCHEMA,
        "run": {"name": run_id, "dir": None},
        "artifacts": [],
        "parity": [],
        "distill": None,
        "bench": [bench_row(r) for r in results],
        "handoff": None,
    }


def _change(kind: str, message: str, **where: Any) -> dict[str, Any]:
    return {"kind": kind, "artifact": where.get("artifact"), "target": where.get("target"), "message": message}


def _ratio(a: Any, b: Any) -> float | None:
    return b / a if is_number(a) and is_number(b) and a > 0 else None


def compare_latency(a: dict[str, Any], b: dict[str, Any], *, tolerance: float, alpha: float) -> list[dict[str, Any]]:
    rows_a = {(r.get("artifact"), r.get("target")): r for r in a.get("bench") or []}
    rows = []
    for row_b in b.get("bench") or []:
        key = (row_b.get("artifact"), row_b.get("target"))
        if key not in rows_a:
            continue
        row_a = rows_a[key]
        judged = judge_latency(row_a, row_b, threshold=tolerance, alpha=alpha)
        rows.append(
            {
                "artifact": key[0],
                "target": key[1],
                "p50_ms_a": row_a.get("p50_ms"),
                "p50_ms_b": row_b.get("p50_ms"),
                "ratio": _ratio(row_a.get("p50_ms"), row_b.get("p50_ms")),
                "p_value": judged.p_value,
                "method": judged.method,
                "peak_rss_kb_a": row_a.get("peak_rss_kb"),
                "peak_rss_kb_b": row_b.get("peak_rss_kb"),
                "energy_j_a": row_a.get("energy_j_per_inference"),
                "energy_j_b": row_b.get("energy_j_per_inference"),
                "verdict": judged.verdict,
            }
        )
    return rows


def compare_sizes(a: dict[str, Any], b: dict[str, Any], *, tolerance: float) -> list[dict[str, Any]]:
    sizes_a = {art["name"]: art.get("size_bytes") for art in a.get("artifacts") or []}
    rows = []
    for art in b.get("artifacts") or []:
        if art["name"] not in sizes_a:
            continue
        ratio = _ratio(sizes_a[art["name"]], art.get("size_bytes"))
        verdict = (
            "same"
            if ratio is None
            else "bigger"
            if ratio > 1 + tolerance
            else "smaller"
            if ratio < 1 - tolerance
            else "same"
        )
        rows.append(
            {
                "artifact": art["name"],
                "size_bytes_a": sizes_a[art["name"]],
                "size_bytes_b": art.get("size_bytes"),
                "ratio": ratio,
                "verdict": verdict,
            }
        )
    return rows


def compare_accuracy(a: dict[str, Any], b: dict[str, Any], *, tolerance: float) -> list[dict[str, Any]]:
    """Task accuracy per artifact, plus the three distillation models; a drop beyond `tolerance` is flagged."""
    names = [art["name"] for art in b.get("artifacts") or []] + [r["artifact"] for r in b.get("parity") or []]
    pairs: list[tuple[str, Any, Any, Any, Any]] = []
    passed_a = {r["artifact"]: r.get("passed") for r in a.get("parity") or []}
    passed_b = {r["artifact"]: r.get("passed") for r in b.get("parity") or []}
    for name in dict.fromkeys(names):
        pairs.append((name, accuracy_of(a, name), accuracy_of(b, name), passed_a.get(name), passed_b.get(name)))
    for role in ("teacher", "student", "scratch"):
        pairs.append(
            (
                f"{role} (distill)",
                (a.get("distill") or {}).get(f"{role}_accuracy"),
                (b.get("distill") or {}).get(f"{role}_accuracy"),
                None,
                None,
            )
        )
    rows = []
    for name, acc_a, acc_b, ok_a, ok_b in pairs:
        if not (is_number(acc_a) and is_number(acc_b)) and ok_a is None:
            continue
        delta = acc_b - acc_a if is_number(acc_a) and is_number(acc_b) else None
        verdict = "same"
        if ok_a is True and ok_b is False:
            verdict = "fails parity"
        elif delta is not None and delta < -tolerance:
            verdict = "less accurate"
        elif delta is not None and delta > tolerance:
            verdict = "more accurate"
        rows.append(
            {
                "artifact": name,
                "accuracy_a": acc_a,
                "accuracy_b": acc_b,
                "delta": delta,
                "passed_a": ok_a,
                "passed_b": ok_b,
                "verdict": verdict,
            }
        )
    return rows


def compare_reports(
    a: dict[str, Any],
    b: dict[str, Any],
    *,
    latency_tolerance: float = 0.05,
    size_tolerance: float = 0.01,
    accuracy_tolerance: float = 0.005,
    alpha: float = 0.01,
) -> dict[str, Any]:
    """The comparison document of two report.json dicts (a = before, b = after)."""
    latency = compare_latency(a, b, tolerance=latency_tolerance, alpha=alpha)
    sizes = compare_sizes(a, b, tolerance=size_tolerance)
    accuracy = compare_accuracy(a, b, tolerance=accuracy_tolerance)
    regressions, improvements = [], []
    for row in latency:
        where = {"artifact": row["artifact"], "target": row["target"]}
        text = f"p50 {fmt.ms(row['p50_ms_a'])} → {fmt.ms(row['p50_ms_b'])}" if row["ratio"] is not None else ""
        if row["ratio"] is not None:
            text += f" ({(row['ratio'] - 1) * 100:+.1f}%" + (
                f", p={row['p_value']:.2g})" if row["p_value"] is not None else ")"
            )
        if row["verdict"] == SLOWER:
            regressions.append(_change("slower", text, **where))
        elif row["verdict"] == FASTER:
            improvements.append(_change("faster", text, **where))
    for row in sizes:
        text = (
            f"{fmt.size(row['size_bytes_a'])} → {fmt.size(row['size_bytes_b'])} ({(row['ratio'] - 1) * 100:+.1f}%)"
            if row["ratio"]
            else ""
        )
        if row["verdict"] == "bigger":
            regressions.append(_change("bigger", text, artifact=row["artifact"]))
        elif row["verdict"] == "smaller":
            improvements.append(_change("smaller", text, artifact=row["artifact"]))
    for row in accuracy:
        text = (
            f"accuracy {row['accuracy_a'] * 100:.2f}% → {row['accuracy_b'] * 100:.2f}%"
            if row["delta"] is not None
            else "accuracy unknown"
        )
        if row["verdict"] == "fails parity":
            regressions.append(
                _change("fails parity", f"passed parity before, fails now; {text}", artifact=row["artifact"])
            )
        elif row["verdict"] == "less accurate":
            regressions.append(_change("less accurate", text, artifact=row["artifact"]))
        elif row["verdict"] == "more accurate":
            improvements.append(_change("more accurate", text, artifact=row["artifact"]))
    names_a = {art["name"] for art in a.get("artifacts") or []}
    names_b = {art["name"] for art in b.get("artifacts") or []}
    reasons = unrelated_reasons(a, b)
    return {
        "schema": COMPARE_SCHEMA,
        "run_a": a.get("run"),
        "run_b": b.get("run"),
        "unrelated": reasons,
        "warnings": [unrelated_warning(a, b, reasons)] if reasons else [],
        "tolerances": {
            "latency": latency_tolerance,
            "size": size_tolerance,
            "accuracy": accuracy_tolerance,
            "alpha": alpha,
        },
        "latency": latency,
        "size": sizes,
        "accuracy": accuracy,
        "regressions": regressions,
        "improvements": improvements,
        "only_in_a": sorted(names_a - names_b),
        "only_in_b": sorted(names_b - names_a),
    }


def unrelated_warning(a: dict[str, Any], b: dict[str, Any], reasons: list[str]) -> str:
    """The one line that says a comparison is between runs that are not versions of one model."""
    name_a, name_b = (a.get("run") or {}).get("name", "A"), (b.get("run") or {}).get("name", "B")
    return (
        f"{name_a} and {name_b} look unrelated ({'; '.join(reasons)}): the changes below compare different "
        "models, not a regression of one"
    )


def compare_runs(run_a: Path, run_b: Path, **tolerances: float) -> dict[str, Any]:
    """What got slower, bigger or less accurate from run_a to run_b (see `compare_reports`)."""
    return compare_reports(load_run_report(run_a), load_run_report(run_b), **tolerances)
