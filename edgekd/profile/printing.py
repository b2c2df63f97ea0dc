"""Rich tables of the per-op views for `edgekd bench profile` (through edgekd.console, so --quiet works)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from edgekd import console
from edgekd.profile.placement import placement
from edgekd.profile.schema import OpProfile
from edgekd.profile.views import by_op_type, top_ops


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _header(profile: OpProfile) -> str:
    where = f" on {profile.target}" if profile.target else ""
    line = f"[bold]{profile.model}[/] — {profile.source}{where}, {profile.runs} runs, ms = {profile.statistic}"
    if profile.median_ms is not None:
        coverage = f" (ops sum {profile.total_ms:.3f} ms = {profile.coverage * 100:.0f}%)" if profile.coverage else ""
        line += f"\nend-to-end median {profile.median_ms:.3f} ms{coverage}"
    if profile.overhead:
        line += f"\nprofiler overhead: {profile.overhead}"
    return line


def print_profile(profile: OpProfile, *, top: int) -> None:
    """Top ops, time by op type and placement of one profile."""
    console.say(_header(profile))
    for note in profile.notes:
        console.say(f"[dim]note: {note}[/]")
    if profile.profile_unavailable:
        console.say(f"[yellow]profile unavailable: {profile.profile_unavailable}[/]")
        return
    table = Table(title=f"top {top} ops", title_justify="left")
    for column in ("op", "op type", "provider", "ms", "calls", "share"):
        table.add_column(column, justify="right" if column in ("ms", "calls", "share") else "left")
    for row in top_ops(profile, top):
        table.add_row(
            row["op"],
            row["op_type"],
            row["provider"],
            _ms(row["ms"]),
            f"{row['calls']:g}",
            f"{row['share'] * 100:.1f}%",
        )
    console.say(table)
    types = Table(title="time by op type", title_justify="left")
    for column in ("op type", "nodes", "ms", "share", "providers"):
        types.add_column(column, justify="right" if column in ("nodes", "ms", "share") else "left")
    for row in by_op_type(profile):
        types.add_row(
            row["op_type"], str(row["nodes"]), _ms(row["ms"]), f"{row['share'] * 100:.1f}%", ", ".join(row["providers"])
        )
    console.say(types)
    places = ", ".join(f"{g['provider']}: {g['nodes']} nodes, {g['share'] * 100:.1f}%" for g in placement(profile))
    console.say(f"placement: {places}")


def print_comparison(base: OpProfile, other: OpProfile, comparison: dict[str, Any]) -> None:
    """Per-op-type comparison of two profiles (base e.g. fp32, other e.g. int8)."""
    table = Table(title=f"{base.model} vs {other.model} by op type", title_justify="left")
    for column in ("op type", base.model, other.model, "Δ ms", "ratio", "nodes", "verdict", "kernels"):
        table.add_column(column, justify="left" if column in ("op type", "verdict", "kernels") else "right")
    for row in comparison["rows"]:
        kernels = sorted((set(row["kernels_fp32"]) | set(row["kernels_int8"])) - {row["op_type"]})
        table.add_row(
            row["op_type"],
            _ms(row["fp32_ms"]),
            _ms(row["int8_ms"]),
            f"{row['delta_ms']:+.3f}",
            "—" if row["ratio"] is None else f"{row['ratio']:.2f}×",
            f"{row['nodes_fp32']} → {row['nodes_int8']}",
            row["verdict"],
            ", ".join(kernels),
        )
    console.say(table)
    console.say(
        f"total {base.total_ms:.3f} ms → {other.total_ms:.3f} ms; slower: "
        f"{', '.join(comparison['slower']) or 'none'}; faster: {', '.join(comparison['faster']) or 'none'}"
    )
    if "qdq_nodes" in comparison:
        qdq = comparison["qdq_nodes"]
        console.say(
            f"{other.model} carries {qdq['QuantizeLinear']} QuantizeLinear and "
            f"{qdq['DequantizeLinear']} DequantizeLinear nodes"
        )


def print_profile_views(base: OpProfile, other: OpProfile | None, document: dict[str, Any], *, top: int) -> None:
    """Everything `edgekd bench profile` shows, in order."""
    print_profile(base, top=top)
    if other is not None:
        console.say("")
        print_profile(other, top=top)
        console.say("")
        print_comparison(base, other, document["comparison"])
    for verdict in document["verdicts"]:
        colour = "yellow" if verdict["severity"] == "warning" else "cyan"
        console.say(f"[{colour}]{verdict['severity']}: {verdict['code']}[/] {verdict['message']}")
    if "explorer" in document:
        explorer = document["explorer"]
        unmatched = f" ({len(explorer['unmatched'])} profiled nodes not in the file)" if explorer["unmatched"] else ""
        console.say(f"Model Explorer node data: {explorer['path']}{unmatched}")
