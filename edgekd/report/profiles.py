"""Per-op profiles in the report: where the time goes per artifact and target, fp32 vs int8 by op type, cold start.

`bench --profile` / `[bench] profile = true` leave an OpProfile dict (edgekd.profile/1) in each bench row;
`collect_profiles` moves them to report.json's `profiles` list (with the artifact's name), and
`int8_comparisons` pairs the int8 and fp32 profiles of one target, runtime and format
(edgekd.profile.views.int8_summary), so report.md and report.html print the same figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekd.report import formatting as fmt

#: Slowest ops listed per profile in report.md / report.html.
TOP_OPS = 5
#: Op types listed per profile in the time-by-op-type table; the rest are summed in one row.
TOP_OP_TYPES = 10
#: Op types drawn per bar in the HTML's time-by-op-type plot; the rest are summed as "other".
PLOT_OP_TYPES = 6
#: Rows of the fp32-vs-int8 table kept in report.json (largest slowdown first).
COMPARISON_ROWS = 12


def collect_profiles(bench: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Take the `profile` out of each bench row (it is big) and return them, each named by its artifact."""
    profiles = []
    for row in bench:
        profile = row.pop("profile", None)
        if isinstance(profile, dict) and profile.get("schema"):
            profiles.append(
                {**profile, "artifact": row.get("artifact"), "target": profile.get("target") or row.get("target")}
            )
    return profiles


def _precisions(report: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """artifact -> (precision, format), from the artifact list and the bench rows."""
    found = {
        a.get("name"): (str(a.get("precision") or ""), str(a.get("format") or ""))
        for a in report.get("artifacts") or []
    }
    for row in report.get("bench") or []:
        found.setdefault(row.get("artifact"), (str(row.get("precision") or ""), str(row.get("format") or "")))
    return found


def int8_comparisons(report: dict[str, Any], run_dir: Path | None = None) -> list[dict[str, Any]]:
    """fp32 vs int8 per op type for each (target, runtime, format) holding a profiled int8 and fp32 artifact.

    Each entry: target, runtime, fp32, int8 (artifact names), fp32_ms / int8_ms (op-time totals), slower
    (op types costing more in int8, largest first: the ones responsible when int8 is slower), faster,
    qdq_nodes (the int8 ONNX file's QuantizeLinear/DequantizeLinear count, when the file is readable) and
    rows (the per-op-type table, largest slowdown first)."""
    from edgekd.errors import EdgekdError
    from edgekd.profile.schema import OpProfile
    from edgekd.profile.views import count_qdq, int8_summary

    kinds = _precisions(report)
    paths = {a.get("name"): a.get("path") for a in report.get("artifacts") or []}
    groups: dict[tuple[Any, Any, Any], dict[str, list[dict[str, Any]]]] = {}
    for data in report.get("profiles") or []:
        precision, form = kinds.get(data.get("artifact"), ("", ""))
        if not data.get("rows") or not (precision == "fp32" or precision.startswith("int8")):
            continue
        key = (data.get("target"), data.get("runtime"), form)
        groups.setdefault(key, {}).setdefault("fp32" if precision == "fp32" else "int8", []).append(data)
    comparisons = []
    for (target, runtime, form), pair in groups.items():
        for fp32 in pair.get("fp32", []):
            for int8 in pair.get("int8", []):
                summary = int8_summary(OpProfile.from_dict(fp32), OpProfile.from_dict(int8))
                entry = {
                    "target": target,
                    "runtime": runtime,
                    "format": form,
                    "fp32": fp32["artifact"],
                    "int8": int8["artifact"],
                    "fp32_ms": summary["fp32_ms"],
                    "int8_ms": summary["int8_ms"],
                    "slower": summary["slower"],
                    "faster": summary["faster"],
                    "qdq_nodes": None,
                    "rows": summary["rows"][:COMPARISON_ROWS],
                }
                path = paths.get(int8["artifact"])
                if form == "onnx" and path and run_dir is not None:
                    file = Path(path) if Path(path).is_absolute() else Path(run_dir) / path
                    try:
                        entry["qdq_nodes"] = count_qdq(file)
                    except EdgekdError:
                        entry["qdq_nodes"] = None  # the file is gone or unreadable: the count is left out
                comparisons.append(entry)
    return comparisons


def responsible_text(entry: dict[str, Any]) -> str:
    """One sentence on an fp32-vs-int8 pair: which is faster by op time and, when int8 is slower, the op types
    responsible with their added time."""
    fp32_ms, int8_ms = entry["fp32_ms"], entry["int8_ms"]
    head = f"{entry['int8']} vs {entry['fp32']} on {entry['target']}: op time {fmt.ms(int8_ms)} vs {fmt.ms(fp32_ms)}"
    qdq = entry.get("qdq_nodes")
    carries = (
        (
            f"; the int8 graph carries {qdq['QuantizeLinear']} QuantizeLinear and {qdq['DequantizeLinear']} "
            "DequantizeLinear nodes"
        )
        if qdq
        else ""
    )
    if int8_ms <= fp32_ms:
        faster = ", ".join(entry["faster"]) or "none by more than the noise floor"
        return f"{head}: int8 is faster (faster op types: {faster}){carries}."
    deltas = {row["op_type"]: row["delta_ms"] for row in entry["rows"]}
    named = ", ".join(f"{op} ({signed_ms(deltas[op])})" if op in deltas else op for op in entry["slower"][:4])
    return f"{head}: int8 is slower; responsible: {named or 'no single op type'}{carries}."


def signed_ms(value: float) -> str:
    """A time difference with its sign, in the report's time unit (+15.6 µs, −4.01 µs)."""
    return ("+" if value >= 0 else "−") + fmt.ms(abs(value))


def comparison_rows(entry: dict[str, Any]) -> list[list[Any]]:
    """The fp32-vs-int8 table of one comparison (see COMPARISON_HEADER)."""
    return [
        [
            row["op_type"],
            fmt.ms(row["fp32_ms"]),
            fmt.ms(row["int8_ms"]),
            signed_ms(row["delta_ms"]),
            f"{row['nodes_fp32']} → {row['nodes_int8']}",
            row["verdict"],
        ]
        for row in entry["rows"]
    ]


COMPARISON_HEADER = ["op type", "fp32", "int8", "Δ", "nodes", "verdict"]


def cold_start_rows(report: dict[str, Any]) -> list[list[Any]]:
    """Per bench row: load (session init), first inference, RSS after the first inference, of it the model."""
    rows = []
    for row in report.get("bench") or []:
        env = row.get("env") if isinstance(row.get("env"), dict) else {}
        after = env.get("rss_after_first_kb")
        base = row.get("baseline_rss_kb")
        model = after - base if fmt.is_number(after) and fmt.is_number(base) else None
        rows.append(
            [
                row.get("artifact"),
                row.get("target"),
                fmt.ms(row.get("init_ms")),
                fmt.ms(row.get("first_ms")),
                fmt.kib(after),
                fmt.kib(model) if model is None or model >= 0 else fmt.DASH,
            ]
        )
    return rows


COLD_START_HEADER = ["artifact", "target", "load", "first inference", "RSS after first inference", "of it the model"]


def profile_tables(data: dict[str, Any]) -> tuple[list[str], list[list[Any]], list[str], list[list[Any]]]:
    """(header, rows) of the top ops and of time by op type for one profile dict."""
    from edgekd.profile.schema import OpProfile
    from edgekd.profile.views import by_op_type, top_ops

    profile = OpProfile.from_dict(data)
    top = [
        [
            row["op"],
            row["op_type"],
            row["provider"],
            fmt.ms(row["ms"]),
            f"{row['calls']:g}",
            f"{row['share'] * 100:.1f}%",
        ]
        for row in top_ops(profile, TOP_OPS)
    ]
    grouped = by_op_type(profile)
    types = [
        [row["op_type"], row["nodes"], fmt.ms(row["ms"]), f"{row['share'] * 100:.1f}%", ", ".join(row["providers"])]
        for row in grouped[:TOP_OP_TYPES]
    ]
    rest = grouped[TOP_OP_TYPES:]
    if rest:
        types.append(
            [
                f"… {len(rest)} more op types",
                sum(r["nodes"] for r in rest),
                fmt.ms(sum(r["ms"] for r in rest)),
                f"{sum(r['share'] for r in rest) * 100:.1f}%",
                "",
            ]
        )
    return (
        ["op", "op type", "provider", "ms", "calls", "share"],
        top,
        ["op type", "nodes", "ms", "share", "providers"],
        types,
    )


def profile_caption(data: dict[str, Any]) -> str:
    """Source, runs, statistic, coverage of the unprofiled median and the profiler's overhead of one profile."""
    parts = [f"{data.get('source')}, {data.get('runs')} runs, ms = {data.get('statistic')}"]
    if fmt.is_number(data.get("coverage")):
        parts.append(
            f"ops sum {fmt.ms(data.get('total_ms'))} = {data['coverage'] * 100:.0f}% of the unprofiled "
            f"median {fmt.ms(data.get('median_ms'))}"
        )
    if data.get("overhead"):
        parts.append(f"profiler overhead: {data['overhead']}")
    return "; ".join(parts)


def op_type_plot(report: dict[str, Any]) -> Any | None:
    """Time by op type per profiled artifact and target: one stacked horizontal bar each (ms per inference)."""
    from edgekd.report.plots import PALETTE, _new_figure

    profiles = [p for p in report.get("profiles") or [] if p.get("rows")]
    if not profiles:
        return None
    from edgekd.profile.schema import OpProfile
    from edgekd.profile.views import by_op_type

    groups = [by_op_type(OpProfile.from_dict(p), base=True) for p in profiles]
    totals: dict[str, float] = {}
    for group in groups:
        for row in group:
            totals[row["op_type"]] = totals.get(row["op_type"], 0.0) + row["share"]
    shown = sorted(totals, key=totals.__getitem__, reverse=True)[:PLOT_OP_TYPES]
    figure, (ax,) = _new_figure(7.0, 1.2 + 0.4 * len(profiles))
    labels = [f"{p.get('artifact')} @ {p.get('target')}" for p in profiles]
    left = [0.0] * len(profiles)
    for index, op_type in enumerate([*shown, "other"]):
        widths = [
            sum(
                r["ms"]
                for r in group
                if (r["op_type"] == op_type) or (op_type == "other" and r["op_type"] not in shown)
            )
            for group in groups
        ]
        ax.barh(
            labels,
            widths,
            left=left,
            color=PALETTE[index % len(PALETTE)] if op_type != "other" else "#cccccc",
            label=f"\u200b{op_type}" if op_type.startswith("_") else op_type,
        )  # matplotlib hides "_..." labels
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.invert_yaxis()
    ax.set_xlabel("op time per inference (ms)")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return figure
