"""The bench sections of report.html: latency, Pareto front, energy, cold start, per-op profiles, environments."""

from __future__ import annotations

from typing import Any

from edgekd.report import formatting as fmt
from edgekd.report import profiles as per_op
from edgekd.report.html_parts import esc as _e
from edgekd.report.html_parts import figure, html_table
from edgekd.report.plots import Plot


def latency_section(report: dict[str, Any], plots: dict[str, Plot]) -> str:
    bench = report.get("bench") or []
    if not bench:
        return '<section id="latency"><h2>Latency</h2><p class="note">The bench stage did not run.</p></section>'
    keys = [
        "artifact",
        "target",
        "runtime_version",
        "p50",
        "p90",
        "p99",
        "IQR",
        "runs",
        "peak RSS",
        "model RSS",
        "load",
    ]
    rows = [[cells[key] for key in keys] for cells in map(fmt.bench_cells, bench)]
    header = ["runtime" if key == "runtime_version" else key for key in keys]
    return (
        f'<section id="latency"><h2>Latency per artifact and target</h2>'
        f"{html_table(header, rows, numeric={3, 4, 5, 6, 7, 8, 9, 10})}"
        f"{figure(plots.get('latency'))}{figure(plots.get('windows'))}</section>"
    )


def pareto_section(report: dict[str, Any], plots: dict[str, Plot]) -> str:
    points = report.get("pareto") or []
    if not points:
        return ""
    rows = [
        [
            p["artifact"],
            p["target"],
            fmt.pct(p["accuracy"]),
            fmt.size(p["size_bytes"]),
            fmt.ms(p["p50_ms"]),
            "yes" if p["pareto_optimal"] else "no",
        ]
        for p in points
    ]
    classes = ["best" if p["pareto_optimal"] else "" for p in points]
    table = html_table(
        ["artifact", "target", "accuracy", "size", "p50", "Pareto-optimal"],
        rows,
        numeric={2, 3, 4},
        row_classes=classes,
    )
    return (
        f'<section id="pareto"><h2>Accuracy vs size vs latency</h2>{figure(plots.get("pareto"))}'
        f"<details><summary>The points</summary>{table}</details></section>"
    )


def energy_section(report: dict[str, Any], plots: dict[str, Plot]) -> str:
    bench = report.get("bench") or []
    measured = [row for row in bench if fmt.is_number(row.get("energy_j_per_inference"))]
    missing = {
        (row.get("target"), row.get("energy_unavailable") or "no reason given") for row in bench if row not in measured
    }
    parts = ['<section id="energy"><h2>Energy per inference</h2>']
    if measured:
        rows = [
            [
                row["artifact"],
                row["target"],
                fmt.joules(row["energy_j_per_inference"]),
                fmt.joules(row.get("energy_uncertainty_j")),
            ]
            for row in measured
        ]
        parts.append(html_table(["artifact", "target", "energy / inference", "±"], rows, numeric={2, 3}))
        parts.append(figure(plots.get("energy")))
    for target, reason in sorted(missing, key=str):
        parts.append(f'<p class="note">Not measured on <b>{_e(target)}</b>: {_e(reason)}</p>')
    if not bench:
        parts.append('<p class="note">The bench stage did not run.</p>')
    return "".join(parts) + "</section>"


def cold_start_section(report: dict[str, Any]) -> str:
    rows = per_op.cold_start_rows(report)
    if not rows:
        return ""
    return (
        f'<section id="coldstart"><h2>Cold start</h2>{html_table(per_op.COLD_START_HEADER, rows, numeric={2, 3, 4, 5})}'
        '<p class="note">Load = session/interpreter creation; RSS after the first inference, and of it what the '
        "model adds to the runtime's empty-model baseline.</p></section>"
    )


def profile_section(report: dict[str, Any], plots: dict[str, Plot]) -> str:
    """Per-op profiles: the time-by-op-type plot, per artifact the slowest ops and op types, fp32 vs int8."""
    profiles = report.get("profiles") or []
    if not profiles:
        return ""
    parts = ['<section id="profile"><h2>Where the time goes (per-op profiles)</h2>', figure(plots.get("profile"))]
    for entry in report.get("profile_comparisons") or []:
        rows = per_op.comparison_rows(entry)
        parts.append(
            f"<h3>fp32 vs int8: {_e(entry['fp32'])} → {_e(entry['int8'])} on {_e(entry['target'])}</h3>"
            f"<p>{_e(per_op.responsible_text(entry))}</p>"
            + html_table(per_op.COMPARISON_HEADER, rows, numeric={1, 2, 3, 4})
        )
    for data in profiles:
        title = f"{_e(data.get('artifact'))} on {_e(data.get('target'))}"
        if data.get("profile_unavailable") or not data.get("rows"):
            parts.append(
                f'<p class="note"><b>{title}</b>: no per-op profile: '
                f"{_e(data.get('profile_unavailable') or 'no rows')}</p>"
            )
            continue
        top_header, top, type_header, types = per_op.profile_tables(data)
        parts.append(
            f"<details open><summary>{title}: top {per_op.TOP_OPS} ops and time by op type</summary>"
            f'<p class="note">{_e(per_op.profile_caption(data))}</p>'
            f"{html_table(top_header, top, numeric={3, 4, 5})}{html_table(type_header, types, numeric={1, 2, 3})}"
            "</details>"
        )
    return "".join(parts) + "</section>"


def environment_section(report: dict[str, Any]) -> str:
    envs = report.get("environments") or {}
    if not envs:
        return ""
    blocks = [
        f"<div><h3>{_e(target)}</h3>{html_table(['key', 'value'], [[k, v] for k, v in fmt.flatten(env).items()])}</div>"
        for target, env in envs.items()
    ]
    return (
        f'<section id="environment"><h2>Environment per target</h2><div class="envs">{"".join(blocks)}</div></section>'
    )
