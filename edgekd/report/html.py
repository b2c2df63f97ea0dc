"""report.html: one self-contained page (inline CSS, plots as data: URIs, no script, nothing remote).

A Content-Security-Policy meta tag makes the browser itself refuse any remote load, so a stray URL in
a manifest can never turn the report into something that phones home. Every value taken from a
manifest passes through `html.escape`.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from edgekd.report import formatting as fmt
from edgekd.report.html_bench import (
    cold_start_section,
    energy_section,
    environment_section,
    latency_section,
    pareto_section,
    profile_section,
)
from edgekd.report.html_parts import esc as _e
from edgekd.report.html_parts import figure, html_table
from edgekd.report.plots import Plot
from edgekd.report.quantization import html_section as quantization_html

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def verdict(report: dict[str, Any]) -> str:
    """The header's badges: the failed stage (if any) first, then parity."""
    failure = failure_banner(report)
    parity = report.get("parity") or []
    failed = [row["artifact"] for row in parity if row.get("passed") is False]
    if not parity:
        return failure + '<p class="verdict unknown">parity not verified</p>'
    if failed:
        return failure + (
            f'<p class="verdict fail">{len(failed)} of {len(parity)} artifacts fail parity: {_e(", ".join(failed))}</p>'
        )
    return failure + f'<p class="verdict pass">all {len(parity)} artifacts pass parity</p>'


def failure_banner(report: dict[str, Any]) -> str:
    failure = report.get("failure")
    if not failure:
        return ""
    hint = f'<br><span class="hint">hint: {_e(failure["hint"])}</span>' if failure.get("hint") else ""
    not_run = failure.get("not_run") or []
    skipped = f'<br><span class="hint">not run because of it: {_e(", ".join(not_run))}</span>' if not_run else ""
    return (
        f'<p class="verdict fail" id="failure">run failed at stage {_e(failure.get("stage"))} '
        f"({_e(failure.get('type'))}): {_e(failure.get('message'))}{hint}{skipped}</p>"
    )


def verdicts_section(report: dict[str, Any]) -> str:
    """Outcome verdicts (edgekd.verdicts): what passed but deserves a second look, first on the page."""
    verdicts = report.get("verdicts") or []
    if not verdicts:
        return '<section id="verdicts"><h2>Verdicts</h2><p class="note">None: nothing suspicious found.</p></section>'
    items = "".join(
        f'<li class="{_e(v.get("severity", ""))}"><b>{_e(v.get("code", ""))}</b>{_e(v.get("message", ""))}</li>'
        for v in verdicts
    )
    return f'<section id="verdicts"><h2>Verdicts ({len(verdicts)})</h2><ul class="verdicts">{items}</ul></section>'


def pipeline_section(report: dict[str, Any]) -> str:
    items = []
    for stage in report.get("stages") or []:
        status = stage["status"]
        css = "done" if status == "done" else "failed" if status == "failed" else "not-run"
        detail = fmt.seconds(stage["seconds"]) if status == "done" else status
        if status == "failed":
            detail = f"failed: {(stage.get('error') or {}).get('type') or 'error'}"
        items.append(f'<li class="{css}">{_e(stage["stage"])}<span>{_e(detail)}</span></li>')
    total = sum(s["seconds"] for s in report.get("stages") or [] if fmt.is_number(s.get("seconds")))
    data = report.get("data") or {}
    sizes = data.get("sizes") or {}
    data_line = ""
    if sizes:
        split = ", ".join(f"{_e(k)} {_e(v)}" for k, v in sizes.items())
        data_line = f'<p class="note">Data: {_e(data.get("num_classes", "?"))} classes; samples {split}.</p>'
    return (
        f'<section id="pipeline"><h2>Pipeline at a glance</h2><ol class="pipeline">{"".join(items)}</ol>'
        f'<p class="note">Stage time in total: {_e(fmt.seconds(total))} (cached stages keep their first time).</p>'
        f"{data_line}{key_parts(report)}</section>"
    )


def key_parts(report: dict[str, Any]) -> str:
    """What went into each stage's cache key besides the recipe and its inputs: tool versions, bench targets."""
    rows = []
    for stage in report.get("stages") or []:
        tools = stage.get("tools") if isinstance(stage.get("tools"), dict) else {}
        targets = (stage.get("key_facts") or {}).get("targets") if isinstance(stage.get("key_facts"), dict) else None
        described = [
            f"{name} ({', '.join(f'{k} {v}' for k, v in (facts.get('identity') or {}).items() if v)})"
            for name, facts in (targets or {}).items()
            if isinstance(facts, dict)
        ]
        if tools or described:
            rows.append([stage["stage"], ", ".join(f"{k} {v}" for k, v in tools.items()) or fmt.DASH,
                         "; ".join(described) or fmt.DASH])  # fmt: skip
    if not rows:
        return ""
    table = html_table(["stage", "tools (versions in the cache key)", "targets (identity in the cache key)"], rows)
    return f"<details><summary>What each stage's cache key holds</summary>{table}</details>"


def distill_section(report: dict[str, Any], plots: dict[str, Plot]) -> str:
    distill = report.get("distill")
    if not distill:
        return '<section id="distill"><h2>Distillation</h2><p class="note">The distill stage did not run.</p></section>'
    rows = fmt.distill_rows(distill)
    gap_text = fmt.kd_gap(distill)
    gap = f"<p>KD student minus scratch student: <b>{_e(gap_text)}</b>.</p>" if gap_text else ""
    agreement_text = fmt.teacher_agreement(distill)
    if agreement_text:
        gap += f"<p>Top-1 agreement with the teacher: {_e(agreement_text)}.</p>"
    return (
        f'<section id="distill"><h2>Teacher vs KD student vs scratch</h2>'
        f"{html_table(['model', 'accuracy', 'params', 'FLOPs', 'size'], rows, numeric={1, 2, 3, 4})}{gap}"
        f"{figure(plots.get('distill'))}{figure(plots.get('history'))}</section>"
    )


def parity_section(report: dict[str, Any]) -> str:
    parity = {row["artifact"]: row for row in report.get("parity") or []}
    rows = [
        [*cells, (fmt.passed(state), "pass" if state is True else "fail" if state is False else "")]
        for cells, state in fmt.parity_rows(report)
    ]
    if not rows:
        return ""
    details = "".join(_parity_details(row) for row in parity.values())
    return (
        f'<section id="parity"><h2>Artifacts and parity</h2>'
        f"{html_table([*fmt.PARITY_HEADER, 'parity'], rows, numeric={3, 4, 5, 6, 7, 8})}{details}</section>"
    )


def _parity_details(row: dict[str, Any]) -> str:
    """Failures, the layers where int8 error grows most, and the op audit of one artifact."""
    parts = []
    if row.get("failures"):
        items = "".join(f"<li>{_e(f)}</li>" for f in row["failures"])
        parts.append(f"<p>Failed checks:</p><ul>{items}</ul>")
    layers = [w for w in row.get("worst_layers") or [] if isinstance(w, dict)]
    if layers:
        parts.append(
            "<p>Where the error grows most:</p>"
            + html_table(
                ["layer", "max abs error"],
                [[w.get("layer", "?"), fmt.error(w.get("max_abs_error"))] for w in layers],
                numeric={1},
            )
        )
    ops = row.get("ops")
    if isinstance(ops, dict) and ops:
        counts = ops.get("ops") if isinstance(ops.get("ops"), dict) else {}
        extra = {k: v for k, v in ops.items() if k != "ops"}
        if counts:
            parts.append(html_table(["op", "count"], [[k, v] for k, v in counts.items()], numeric={1}))
        if extra:
            parts.append(html_table(["audit", "value"], [[k, v] for k, v in fmt.flatten(extra).items()]))
    if not parts:
        return ""
    opened = " open" if row.get("passed") is False else ""
    return f"<details{opened}><summary>{_e(row['artifact'])}: checks and op audit</summary>{''.join(parts)}</details>"


def warnings_section(report: dict[str, Any]) -> str:
    warnings = report.get("warnings") or []
    if not warnings:
        return '<section id="warnings"><h2>Warnings</h2><p class="note">None.</p></section>'
    items = []
    for item in warnings:
        where = " / ".join(str(v) for v in (item.get("artifact"), item.get("target")) if v)
        label = f"<b>{_e(item.get('source', ''))}{(' · ' + _e(where)) if where else ''}</b>"
        items.append(f"<li>{label}{_e(item.get('message', ''))}</li>")
    return f'<section id="warnings"><h2>Warnings ({len(warnings)})</h2><ul class="warnings">{"".join(items)}</ul></section>'


def handoff_section(report: dict[str, Any]) -> str:
    handoff = report.get("handoff")
    if not handoff:
        return ""
    rows = [[k, v] for k, v in fmt.flatten(handoff).items()]
    return f'<section id="handoff"><h2>Firmware handoff</h2>{html_table(["key", "value"], rows)}</section>'


NAV = (
    ("verdicts", "Verdicts"),
    ("pipeline", "Pipeline"),
    ("warnings", "Warnings"),
    ("distill", "Distillation"),
    ("quantization", "Quantization"),
    ("parity", "Parity"),
    ("latency", "Latency"),
    ("coldstart", "Cold start"),
    ("profile", "Per-op"),
    ("pareto", "Pareto"),
    ("energy", "Energy"),
    ("environment", "Environment"),
    ("handoff", "Handoff"),
)


def render_html(report: dict[str, Any], plots: list[Plot]) -> str:
    """The whole report.html text."""
    by_key = {plot.key: plot for plot in plots}
    css = resources.files("edgekd.report").joinpath("style.css").read_text(encoding="utf-8")
    run = report.get("run") or {}
    sections = [
        verdicts_section(report),
        pipeline_section(report),
        warnings_section(report),
        distill_section(report, by_key),
        quantization_html(report, figure(by_key.get("quantization"))),
        parity_section(report),
        latency_section(report, by_key),
        cold_start_section(report),
        profile_section(report, by_key),
        pareto_section(report, by_key),
        energy_section(report, by_key),
        environment_section(report),
        handoff_section(report),
    ]
    present = [(anchor, label) for anchor, label in NAV if any(f'id="{anchor}"' in s for s in sections)]
    nav = "".join(f'<a href="#{anchor}">{label}</a>' for anchor, label in present)
    title = f"edgekd report: {run.get('name', 'run')}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>{_e(title)}</title><style>{css}</style></head><body>'
        f"<header><h1>{_e(title)}</h1>{verdict(report)}"
        f'<p class="meta">{_e(run.get("dir", ""))} · created {_e(report.get("created", ""))} · '
        f"{_e(report.get('schema', ''))}</p></header><nav>{nav}</nav>"
        + "".join(sections)
        + "<footer>Generated by edgekd. Machine-readable: report.json; for pull requests: report.md.</footer>"
        "</body></html>\n"
    )
