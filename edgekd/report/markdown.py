"""report.md: the run as a pull-request comment (GitHub-flavoured Markdown, no images, deterministic).

Everything here comes from report.json, so the same run always renders the same text (the golden
test relies on it); the creation time is left out on purpose.
"""

from __future__ import annotations

from typing import Any

from edgekd.report import formatting as fmt
from edgekd.report import profiles as per_op
from edgekd.report.quantization import markdown_section as quantization_markdown


def cell(value: Any) -> str:
    """Text safe inside a Markdown table cell: no pipes, newlines or raw HTML."""
    text = str(value).replace("\r", " ").replace("\n", " ")
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def table(header: list[str], rows: list[list[Any]], align: str | None = None) -> list[str]:
    """A GitHub table; `align` is one letter per column: l(eft) or r(ight)."""
    align = align or "l" * len(header)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def headline(report: dict[str, Any]) -> str:
    parity = report.get("parity") or []
    failed = [row["artifact"] for row in parity if row.get("passed") is False]
    if not parity:
        line = "**Parity: not verified** (the verify stage did not run)"
    elif failed:
        line = f"**Parity: ❌ {len(failed)} of {len(parity)} artifacts fail** ({', '.join(cell(a) for a in failed)})"
    else:
        line = f"**Parity: ✅ all {len(parity)} artifacts pass**"
    return failure_lines(report) + line


def failure_lines(report: dict[str, Any]) -> str:
    """A failed stage, above everything else: stage, error type, message, hint, what it kept from running."""
    failure = report.get("failure")
    if not failure:
        return ""
    text = (
        f"**❌ Run failed at stage {cell(failure.get('stage'))}** ({cell(failure.get('type'))}): "
        f"{cell(failure.get('message'))}"
    )
    if failure.get("hint"):
        text += f"  \nhint: {cell(failure['hint'])}"
    if failure.get("not_run"):
        text += f"  \nNot run because of it: {', '.join(cell(s) for s in failure['not_run'])}"
    return text + "\n\n"


def pipeline_line(report: dict[str, Any]) -> str:
    steps = []
    for stage in report.get("stages") or []:
        mark = {"done": "✓", "failed": "✗ failed"}.get(stage["status"], "·")
        steps.append(f"{stage['stage']} {mark}")
    return "Pipeline: " + " → ".join(steps)


def verdicts_section(report: dict[str, Any]) -> list[str]:
    """Outcome verdicts (edgekd.verdicts), one line each; a report without any says so."""
    verdicts = report.get("verdicts")
    if verdicts is None:
        return []
    lines = ["## Verdicts", ""]
    if not verdicts:
        return lines + ["None: nothing suspicious found.", ""]
    for item in verdicts:
        mark = "⚠️" if item.get("severity") == "warning" else "ℹ️"
        lines.append(f"- {mark} **{cell(item.get('code', ''))}**: {cell(item.get('message', ''))}")
    return lines + [""]


def distill_section(report: dict[str, Any]) -> list[str]:
    distill = report.get("distill")
    if not distill:
        return []
    rows = fmt.distill_rows(distill)
    lines = ["## Distillation", ""]
    lines += table(["model", "accuracy", "params", "FLOPs", "size"], rows, "lrrrr")
    gap = fmt.kd_gap(distill)
    if gap:
        lines += ["", f"KD student minus scratch student: {gap}."]
    agreement = fmt.teacher_agreement(distill)
    if agreement:
        lines += ["", f"Top-1 agreement with the teacher: {agreement}."]
    return lines + [""]


def parity_section(report: dict[str, Any]) -> list[str]:
    parity = {row["artifact"]: row for row in report.get("parity") or []}
    marks = {True: "✅ pass", False: "❌ FAIL", None: fmt.DASH}
    # report.md leaves out the last column, max rel error (the HTML report has it)
    rows = [[*cells[:-1], marks[state]] for cells, state in fmt.parity_rows(report)]
    if not rows:
        return []
    lines = ["## Artifacts and parity", ""]
    lines += table([*fmt.PARITY_HEADER[:-1], "parity"], rows, "lllrrrrrl")
    for row in parity.values():
        if row.get("passed") is False and row.get("worst_layers"):
            layers = ", ".join(
                f"`{cell(w.get('layer', '?'))}` ({fmt.error(w.get('max_abs_error'))})"
                for w in row["worst_layers"][:3]
                if isinstance(w, dict)
            )
            lines += ["", f"{cell(row['artifact'])}: error grows most at {layers}."]
    return lines + [""]


def bench_section(report: dict[str, Any]) -> list[str]:
    bench = report.get("bench") or []
    if not bench:
        return []
    header = ["artifact", "target", "runtime", "p50", "p90", "p99", "peak RSS", "energy / inference"]
    rows = [[cells[key] for key in header] for cells in map(fmt.bench_cells, bench)]
    lines = ["## Latency", ""]
    lines += table(header, rows, "lllrrrrr")
    best = [p for p in report.get("pareto") or [] if p.get("pareto_optimal")]
    if best:
        lines += [
            "",
            "Pareto-optimal (accuracy, size, p50): "
            + "; ".join(f"{cell(p['artifact'])} on {cell(p['target'])}" for p in best)
            + ".",
        ]
    return lines + [""]


def cold_start_section(report: dict[str, Any]) -> list[str]:
    """Load time, first inference and memory after it, per artifact and target (the runner measures them)."""
    rows = per_op.cold_start_rows(report)
    if not rows:
        return []
    return ["## Cold start", "", *table(per_op.COLD_START_HEADER, rows, "llrrrr"), ""]


def profile_section(report: dict[str, Any]) -> list[str]:
    """Where the time goes: per profiled artifact the slowest ops and time by op type, then fp32 vs int8."""
    profiles = report.get("profiles") or []
    if not profiles:
        return []
    lines = ["## Where the time goes (per-op profiles)", ""]
    for data in profiles:
        title = f"### {cell(data.get('artifact'))} on {cell(data.get('target'))}"
        if data.get("profile_unavailable") or not data.get("rows"):
            lines += [title, "", f"No per-op profile: {cell(data.get('profile_unavailable') or 'no rows')}", ""]
            continue
        top_header, top, type_header, types = per_op.profile_tables(data)
        lines += [title, "", cell(per_op.profile_caption(data)), "", f"Top {per_op.TOP_OPS} ops:", ""]
        lines += table(top_header, top, "lllrrr") + ["", "Time by op type:", ""]
        lines += table(type_header, types, "lrrrl") + [""]
    for entry in report.get("profile_comparisons") or []:
        lines += [
            f"### fp32 vs int8: {cell(entry['fp32'])} → {cell(entry['int8'])} on {cell(entry['target'])}",
            "",
            cell(per_op.responsible_text(entry)),
            "",
        ]
        rows = per_op.comparison_rows(entry)
        lines += table(per_op.COMPARISON_HEADER, rows, "lrrrrl") + [""]
    return lines


def warnings_section(report: dict[str, Any]) -> list[str]:
    warnings = report.get("warnings") or []
    if not warnings:
        return []
    lines = ["## Warnings", ""]
    for item in warnings:
        where = " / ".join(cell(v) for v in (item.get("artifact"), item.get("target")) if v)
        lines.append(f"- ⚠️ {'**' + where + '**: ' if where else ''}{cell(item.get('message', ''))}")
    return lines + [""]


def environment_section(report: dict[str, Any]) -> list[str]:
    envs = report.get("environments") or {}
    if not envs:
        return []
    lines = ["<details><summary>Environment per target</summary>", ""]
    for target, env in envs.items():
        lines += [f"**{cell(target)}**", ""]
        lines += table(["key", "value"], [[k, v] for k, v in fmt.flatten(env).items()])
        lines.append("")
    return lines + ["</details>", ""]


#: GitHub refuses comments longer than 65536 characters; stay well below.
MAX_COMMENT_CHARS = 60_000


def render_markdown(report: dict[str, Any]) -> str:
    """The whole report.md text (the environment tables are dropped if the comment would be too long)."""
    run = (report.get("run") or {}).get("name", "run")
    head = [f"# edgekd report: {cell(run)}", "", headline(report), "", pipeline_line(report), ""]
    head += (
        verdicts_section(report)
        + distill_section(report)
        + quantization_markdown(report)
        + parity_section(report)
        + bench_section(report)
        + cold_start_section(report)
        + profile_section(report)
        + warnings_section(report)
    )
    tail = []
    handoff = report.get("handoff")
    if handoff and handoff.get("path"):
        tail += [f"Firmware handoff bundle: `{cell(handoff['path']).replace('`', '')}`", ""]
    tail.append("<sub>Generated by edgekd from report.json; plots are in report.html.</sub>")
    text = "\n".join(head + environment_section(report) + tail) + "\n"
    if len(text) > MAX_COMMENT_CHARS:
        text = (
            "\n".join(
                head + ["(Environment tables left out to fit a pull-request comment; see report.html.)", ""] + tail
            )
            + "\n"
        )
    return text


def render_comparison_markdown(result: dict[str, Any]) -> str:
    """`edgekd report --compare` as a pull-request comment: regressions first, then improvements."""
    name_a = (result.get("run_a") or {}).get("name", "A")
    name_b = (result.get("run_b") or {}).get("name", "B")
    regressions, improvements = result.get("regressions") or [], result.get("improvements") or []
    verdict = f"**❌ {len(regressions)} regression(s)**" if regressions else "**✅ no regressions**"
    lines = [f"# edgekd compare: {cell(name_a)} → {cell(name_b)}", "", verdict, ""]
    lines += [f"⚠️ **Warning**: {cell(w)}" for w in result.get("warnings") or []] + (
        [""] if result.get("warnings") else []
    )
    for title, rows in (("Regressions", regressions), ("Improvements", improvements)):
        if rows:
            lines += [f"## {title}", ""]
            lines += table(
                ["kind", "artifact", "target", "change"],
                [[r["kind"], r.get("artifact") or fmt.DASH, r.get("target") or fmt.DASH, r["message"]] for r in rows],
            )
            lines.append("")
    for key, label in (("only_in_a", f"Only in {name_a}"), ("only_in_b", f"Only in {name_b}")):
        if result.get(key):
            lines += [f"{cell(label)}: {', '.join(cell(n) for n in result[key])}", ""]
    tol = result.get("tolerances") or {}
    if tol:
        lines.append(
            f"<sub>Flagged beyond: latency ±{tol['latency'] * 100:g}% with Mann-Whitney p < {tol['alpha']:g}, "
            f"size ±{tol['size'] * 100:g}%, accuracy ±{tol['accuracy'] * 100:g} pt.</sub>"
        )
    return "\n".join(lines) + "\n"
