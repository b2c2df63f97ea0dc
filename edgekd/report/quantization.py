"""The report's `quantization` section: the accuracy ladder of `[quantize] max_accuracy_drop` (issue 14).

report.json gets the budget, one row per (rung, runtime) with accuracy / drop / agreement / p50 latency, the
recommended rung per runtime and, when no rung held the budget, what was best; report.md and report.html
show the same as a table.
"""

from __future__ import annotations

from typing import Any

FIGURES = ("accuracy", "drop", "agreement", "p50_ms")


def quantization_section(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    """report.json's `quantization` from the quantize stage's summary; None when no ladder ran."""
    if not summary or not summary.get("ladder"):
        return None
    rows: list[dict[str, Any]] = []
    for row in summary.get("rows") or []:
        if not isinstance(row, dict):
            continue
        for runtime, figures in (row.get("runtimes") or {}).items():
            if isinstance(figures, dict):
                rows.append({
                    "rung": row.get("rung"), "name": row.get("name"), "runtime": runtime,
                    **{k: figures.get(k) for k in FIGURES}, "model": figures.get("model"),
                    "excluded": row.get("excluded") or [], "int16": row.get("int16") or [],
                    "error": figures.get("error"),
                })  # fmt: skip
    return {
        "max_accuracy_drop": summary.get("max_accuracy_drop"),
        "raise_to": summary.get("raise_to"),
        "qat": summary.get("qat"),
        "runtimes": summary.get("runtimes") or [],
        "rows": rows,
        "recommended": summary.get("recommended") or {},
        "not_met": summary.get("not_met") or {},
        "error": (summary.get("error") or {}).get("message"),
    }


def _number(value: Any, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def table_rows(section: dict[str, Any]) -> list[list[str]]:
    """One text row per (rung, runtime), the recommended ones marked."""
    picks = {(r, p.get("rung")) for r, p in (section.get("recommended") or {}).items() if isinstance(p, dict)}
    out = []
    for row in section.get("rows") or []:
        raised = [*(f"{op} float" for op in row["excluded"]), *(f"{op} int16" for op in row["int16"])]
        out.append([
            str(row["rung"]), str(row["name"]), str(row["runtime"]), _number(row["accuracy"], 4),
            _number(row["drop"], 4), _number(row["agreement"], 4), _number(row["p50_ms"], 4),
            ", ".join(raised) or "—", "✅ recommended" if (row["runtime"], row["rung"]) in picks else "",
        ])  # fmt: skip
    return out


HEADER = ["rung", "name", "runtime", "accuracy", "drop", "agreement", "p50 ms", "raised ops", ""]


def headline(section: dict[str, Any]) -> str:
    """One sentence: the budget and what each runtime got (or the ladder's error)."""
    budget = section.get("max_accuracy_drop")
    picks = ", ".join(f"{runtime}: rung {p.get('rung')} ({p.get('name')}, drop {_number(p.get('drop'), 4)})"
                      for runtime, p in (section.get("recommended") or {}).items())  # fmt: skip
    text = f"Accuracy budget: max drop {budget} vs the fp32 student. Recommended: {picks or 'none'}."
    if section.get("error"):
        text += f" Not met: {section['error']}"
    return text


def markdown_section(report: dict[str, Any]) -> list[str]:
    """report.md lines of the ladder (none without one)."""
    from edgekd.report.markdown import cell

    section = report.get("quantization")
    if not section:
        return []
    lines = ["## Quantization ladder", "", cell(headline(section)), ""]
    lines.append("| " + " | ".join(HEADER) + " |")
    lines.append("|" + "---|" * len(HEADER))
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table_rows(section)]
    return [*lines, ""]


def html_section(report: dict[str, Any], plot_html: str = "") -> str:
    """report.html's ladder section (empty without one)."""
    from edgekd.report.html_parts import esc, html_table

    section = report.get("quantization")
    if not section:
        return ""
    table = html_table(HEADER, [list(row) for row in table_rows(section)], numeric={0, 3, 4, 5, 6})
    return (
        f'<section id="quantization"><h2>Quantization ladder</h2><p>{esc(headline(section))}</p>'
        f"{table}{plot_html}</section>"
    )


def ladder_plot(report: dict[str, Any]) -> Any | None:
    """Accuracy drop against p50 latency per rung, one series per runtime; the budget is a dashed line."""
    from matplotlib.figure import Figure

    section = report.get("quantization")
    rows = [r for r in (section or {}).get("rows") or [] if r["drop"] is not None and r["p50_ms"] is not None]
    if not section or not rows:
        return None
    figure = Figure(figsize=(6.0, 3.4), layout="constrained")
    ax = figure.subplots()
    for runtime in dict.fromkeys(r["runtime"] for r in rows):
        mine = sorted((r for r in rows if r["runtime"] == runtime), key=lambda r: r["rung"])
        ax.plot([r["p50_ms"] for r in mine], [r["drop"] * 100 for r in mine], marker="o", label=runtime)
        for r in mine:
            ax.annotate(f"{r['rung']} {r['name']}", (r["p50_ms"], r["drop"] * 100), fontsize=7,
                        xytext=(5, 4), textcoords="offset points")  # fmt: skip
    budget = section.get("max_accuracy_drop")
    if budget is not None:
        ax.axhline(budget * 100, linestyle="--", color="#888888", label="budget")
    ax.set_xlabel("p50 latency (ms)")
    ax.set_ylabel("accuracy drop vs fp32 (points)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False)
    return figure
