"""The report's plots, drawn with matplotlib (Agg, no pyplot state) and returned as embeddable images.

Each plot is a `Plot` holding the encoded image (SVG by default, PNG on request) so the HTML can embed
it as a data: URI: the report stays one self-contained file that loads nothing from anywhere.
Plots whose data is missing (a partial run) are simply not drawn.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgekd.report.build import accuracy_of
from edgekd.report.formatting import is_number

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")
MARKERS = ("o", "s", "^", "D", "v", "P")


@dataclass(frozen=True)
class Plot:
    """One encoded figure: `key` is stable (used as the HTML id), `caption` says what to look at."""

    key: str
    title: str
    caption: str
    mime: str  # "image/svg+xml" | "image/png"
    data: bytes

    def data_uri(self) -> str:
        return f"data:{self.mime};base64," + base64.b64encode(self.data).decode("ascii")


def _encode(figure: Any, image_format: str) -> tuple[str, bytes]:
    buffer = io.BytesIO()
    if image_format == "png":
        figure.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
        return "image/png", buffer.getvalue()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    return "image/svg+xml", buffer.getvalue()


def _new_figure(width: float, height: float, ncols: int = 1) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    axes = figure.subplots(1, ncols, squeeze=False)[0]
    return figure, list(axes)


def _log_x(ax: Any) -> None:
    """A log x axis labelled 0.01, 0.02, 0.05, 0.1 ... instead of crowded 10^x minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _colors(report: dict[str, Any], names: list[str]) -> dict[str, str]:
    """One colour per artifact, the same in every plot (ordered as the report lists artifacts)."""
    order = list(dict.fromkeys([a["name"] for a in report.get("artifacts") or []] + names))
    return {name: PALETTE[order.index(name) % len(PALETTE)] for name in dict.fromkeys(names)}


def distill_plot(report: dict[str, Any]) -> Any | None:
    """Teacher vs KD student vs scratch student: accuracy and parameter count side by side."""
    distill = report.get("distill") or {}
    roles = [("teacher", "teacher"), ("student", "KD student"), ("scratch", "scratch")]
    roles = [(role, label) for role, label in roles if is_number(distill.get(f"{role}_accuracy"))]
    if not roles:
        return None
    figure, (acc_ax, param_ax) = _new_figure(7.5, 3.0, ncols=2)
    labels = [label for _, label in roles]
    colors = ["#7f7f7f", "#1f77b4", "#ff7f0e"][: len(roles)]
    accuracies = [distill[f"{role}_accuracy"] * 100 for role, _ in roles]
    bars = acc_ax.bar(labels, accuracies, color=colors)
    acc_ax.bar_label(bars, fmt="%.2f%%", fontsize=8)
    acc_ax.set_ylim(max(0.0, min(accuracies) - 10), 100)
    acc_ax.set_ylabel("test accuracy (%)")
    acc_ax.set_title("accuracy")
    params = [distill.get(f"{role}_params") for role, _ in roles]
    if all(is_number(p) for p in params):
        bars = param_ax.bar(labels, params, color=colors)
        param_ax.bar_label(bars, labels=[f"{p:,.0f}" for p in params], fontsize=8)
        param_ax.set_yscale("log")
        param_ax.set_ylim(bottom=min(params) / 10)  # a log bar needs a floor well below the smallest
        param_ax.set_ylabel("parameters (log)")
    param_ax.set_title("parameters")
    return figure


def latency_plot(report: dict[str, Any]) -> Any | None:
    """Distribution of raw latencies: a violin with a box inside, per artifact, one panel per target."""
    bench = [row for row in report.get("bench") or [] if len(row.get("latencies_ms") or []) >= 2]
    if not bench:
        return None
    targets = list(dict.fromkeys(row["target"] for row in bench))
    per_target = [[row for row in bench if row["target"] == t] for t in targets]
    height = 1.0 + 0.45 * max(len(rows) for rows in per_target)
    figure, axes = _new_figure(4.2 * len(targets), height, ncols=len(targets))
    colors = _colors(report, [row["artifact"] for row in bench])
    for ax, target, rows in zip(axes, targets, per_target, strict=True):
        samples = [row["latencies_ms"] for row in rows]
        positions = list(range(1, len(rows) + 1))
        violins = ax.violinplot(samples, positions=positions, orientation="horizontal", showextrema=False)
        for body, row in zip(violins["bodies"], rows, strict=True):
            body.set_facecolor(colors[row["artifact"]])
            body.set_alpha(0.45)
        ax.boxplot(samples, positions=positions, orientation="horizontal", widths=0.18, showfliers=False,
                   medianprops={"color": "black"})
        ax.set_yticks(positions, [row["artifact"] for row in rows], fontsize=8)
        low, high = min(min(s) for s in samples), max(max(s) for s in samples)
        if high / max(low, 1e-12) > 20:
            _log_x(ax)
        ax.set_xlabel("latency per inference (ms)")
        ax.set_title(f"target: {target}")
        ax.grid(axis="x", alpha=0.3)
    return figure


def pareto_plot(report: dict[str, Any]) -> Any | None:
    """Accuracy against size and against p50 latency; Pareto-optimal points are ringed and named."""
    points = report.get("pareto") or []
    if not points:
        return None
    figure, (size_ax, latency_ax) = _new_figure(8.0, 3.6, ncols=2)
    colors = _colors(report, [p["artifact"] for p in points])
    targets = list(dict.fromkeys(p["target"] for p in points))
    for point in points:
        marker = MARKERS[targets.index(point["target"]) % len(MARKERS)]
        for ax, x in ((size_ax, point["size_bytes"] / 1024), (latency_ax, point["p50_ms"])):
            ax.scatter(x, point["accuracy"] * 100, color=colors[point["artifact"]], marker=marker, s=46, zorder=3)
            if point["pareto_optimal"]:
                ax.scatter(x, point["accuracy"] * 100, facecolors="none", edgecolors="black", s=150, zorder=4)
                ax.annotate(point["artifact"], (x, point["accuracy"] * 100), fontsize=7,
                            xytext=(5, 4), textcoords="offset points")
    size_ax.set_xlabel("file size (KiB)")
    latency_ax.set_xlabel("p50 latency (ms, log)")
    _log_x(latency_ax)
    for ax in (size_ax, latency_ax):
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
    handles = [_legend_marker(colors[name], "o", name) for name in colors]
    handles += [_legend_marker("#555555", MARKERS[i % len(MARKERS)], f"target {t}") for i, t in enumerate(targets)]
    figure.legend(handles=handles, loc="outside right center", fontsize=7, frameon=False)
    return figure


def _legend_marker(color: str, marker: str, label: str) -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], color=color, marker=marker, linestyle="none", label=label)


def energy_plot(report: dict[str, Any]) -> Any | None:
    """Energy per inference (µJ) for every (artifact, target) where it was measured."""
    rows = [row for row in report.get("bench") or [] if is_number(row.get("energy_j_per_inference"))]
    if not rows:
        return None
    figure, (ax,) = _new_figure(6.0, 1.0 + 0.35 * len(rows))
    colors = _colors(report, [row["artifact"] for row in rows])
    labels = [f"{row['artifact']} @ {row['target']}" for row in rows]
    values = [row["energy_j_per_inference"] * 1e6 for row in rows]
    bars = ax.barh(labels, values, color=[colors[row["artifact"]] for row in rows])
    ax.bar_label(bars, fmt="%.3g µJ", fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("energy per inference (µJ)")
    ax.tick_params(axis="y", labelsize=8)
    return figure


def history_series(history: Any) -> dict[str, list[float]]:
    """Validation accuracy per epoch from a distill history: {model: [{val_accuracy,...}]} or {model: [floats]}."""
    series: dict[str, list[float]] = {}
    if not isinstance(history, dict):
        return series
    for model, epochs in history.items():
        if isinstance(epochs, dict):
            epochs = epochs.get("val_accuracy") or epochs.get("accuracy") or []
        values = []
        for epoch in epochs if isinstance(epochs, list) else []:
            value = epoch.get("val_accuracy", epoch.get("accuracy")) if isinstance(epoch, dict) else epoch
            if is_number(value):
                values.append(float(value))
        if values:
            series[str(model)] = values
    return series


def history_plot(report: dict[str, Any]) -> Any | None:
    """Training curves: validation accuracy per epoch for teacher, KD student and scratch student."""
    series = history_series((report.get("distill") or {}).get("history"))
    if not series:
        return None
    figure, (ax,) = _new_figure(5.5, 3.0)
    for model, values in series.items():
        ax.plot(range(1, len(values) + 1), [v * 100 for v in values], marker=".", label=model)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure


def windows_plot(report: dict[str, Any]) -> Any | None:
    """Sustained mode: p50 per window; a rising line is thermal throttling."""
    rows = [row for row in report.get("bench") or [] if isinstance(row.get("windows"), list) and row["windows"]]
    if not rows:
        return None
    figure, (ax,) = _new_figure(5.5, 3.0)
    for row in rows:
        values = [w.get("p50_ms") for w in row["windows"] if isinstance(w, dict)]
        values = [v for v in values if is_number(v)]
        ax.plot(range(1, len(values) + 1), values, marker="o", label=f"{row['artifact']} @ {row['target']}")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("window")
    ax.set_ylabel("p50 latency (ms)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure


#: key, title, caption, drawing function: the order they appear in the HTML.
PLOTS: tuple[tuple[str, str, str, Callable[[dict[str, Any]], Any | None]], ...] = (
    ("distill", "Teacher vs KD student vs scratch",
     "Accuracy and size of the three models: distillation should buy accuracy at the student's size.", distill_plot),
    ("history", "Training curves", "Validation accuracy per epoch.", history_plot),
    ("latency", "Latency distribution",
     "Raw per-inference latencies per artifact and target (violin = density, box = quartiles).", latency_plot),
    ("pareto", "Accuracy vs size vs latency",
     "Each point is one artifact on one target; ringed points are Pareto-optimal (nothing is smaller, faster "
     "and more accurate at once).", pareto_plot),
    ("energy", "Energy per inference", "Only where the target could measure energy.", energy_plot),
    ("windows", "Sustained runs", "Median latency per window of a sustained run; a rise means throttling.",
     windows_plot),
)


def render_plots(report: dict[str, Any], *, image_format: str = "svg") -> list[Plot]:
    """Every plot the report has data for, encoded for embedding."""
    from matplotlib import rc_context

    plots = []
    with rc_context({"svg.hashsalt": "edgekd", "font.size": 9, "axes.spines.top": False,
                     "axes.spines.right": False}):
        for key, title, caption, draw in PLOTS:
            figure = draw(report)
            if figure is None:
                continue
            mime, data = _encode(figure, image_format)
            plots.append(Plot(key=key, title=title, caption=caption, mime=mime, data=data))
    return plots
