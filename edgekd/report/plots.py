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


def _log_x(ax: Any, decades: float = 1.0) -> None:
    """A log x axis labelled 0.01, 0.02, 0.05, 0.1 (only 0.01, 0.1, 1 over many decades), never crowded."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades <= 2.2 else (1.0,)))
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
    found = [distill.get(f"{role}_params") for role, _ in roles]
    params = [float(p) for p in found if is_number(p)]
    if len(params) == len(found):
        bars = param_ax.bar(labels, params, color=colors)
        param_ax.bar_label(bars, labels=[f"{p:,.0f}" for p in params], fontsize=8)
        param_ax.set_yscale("log")
        param_ax.set_ylim(bottom=min(params) / 10)  # a log bar needs a floor well below the smallest
        param_ax.set_ylabel("parameters (log)")
    param_ax.set_title("parameters")
    return figure


def _time_unit(values_ms: list[float]) -> tuple[float, str]:
    """Show microseconds when everything is under 0.1 ms, so axes read 12 µs rather than 0.012 ms."""
    return (1000.0, "µs") if max(values_ms) < 0.1 else (1.0, "ms")


def latency_plot(report: dict[str, Any]) -> Any | None:
    """Distribution of raw latencies per artifact, one panel per target.

    The violin and box show the samples up to p99; the rarer, slower ones (scheduler hiccups) are
    drawn as grey dots, so one 8 ms outlier cannot flatten a 10 µs distribution into a line.
    """
    import numpy as np

    bench = [row for row in report.get("bench") or [] if len(row.get("latencies_ns") or []) >= 2]
    if not bench:
        return None
    targets = list(dict.fromkeys(row["target"] for row in bench))
    per_target = [[row for row in bench if row["target"] == t] for t in targets]
    height = 1.0 + 0.45 * max(len(rows) for rows in per_target)
    figure, axes = _new_figure(4.2 * len(targets), height, ncols=len(targets))
    colors = _colors(report, [row["artifact"] for row in bench])
    for ax, target, rows in zip(axes, targets, per_target, strict=True):
        raw = [np.asarray(row["latencies_ns"], dtype=float) / 1e6 for row in rows]  # ns -> ms
        scale, unit = _time_unit([float(np.percentile(r, 99)) for r in raw])
        cuts = [np.percentile(r, 99) for r in raw]
        bulk = [r[r <= cut] * scale for r, cut in zip(raw, cuts, strict=True)]
        positions = list(range(1, len(rows) + 1))
        violins = ax.violinplot(bulk, positions=positions, orientation="horizontal", showextrema=False)
        for body, row in zip(violins["bodies"], rows, strict=True):
            body.set_facecolor(colors[row["artifact"]])
            body.set_alpha(0.45)
        ax.boxplot(
            bulk,
            positions=positions,
            orientation="horizontal",
            widths=0.18,
            showfliers=False,
            medianprops={"color": "black"},
        )
        for position, r, cut in zip(positions, raw, cuts, strict=True):
            tail = r[r > cut] * scale
            ax.scatter(tail, np.full(tail.shape, position), s=6, color="#888888", zorder=3)
        ax.set_yticks(positions, [row["artifact"] for row in rows], fontsize=8)
        low, high = min(float(b.min()) for b in bulk), max(float(r.max()) * scale for r in raw)
        if high / max(low, 1e-12) > 20:
            _log_x(ax, decades=np.log10(high / max(low, 1e-12)))
        ax.set_xlabel(f"latency per inference ({unit}); dots: slowest 1%")
        ax.set_title(f"target: {target}")
        ax.grid(axis="x", alpha=0.3)
    return figure


def _label_offset(placed: list[tuple[float, float]], x: float, y: float, log_x: bool) -> float:
    """Vertical offset (points) for a label so names at almost the same spot do not print on each other."""
    import math

    def near(px: float, py: float) -> bool:
        dx = abs(math.log10(px / x)) < 0.08 if log_x and px > 0 and x > 0 else abs(px - x) <= 0.08 * max(abs(x), 1e-9)
        return dx and abs(py - y) < 0.2

    crowd = sum(near(px, py) for px, py in placed)
    placed.append((x, y))
    return 4.0 - 9.0 * crowd


def pareto_plot(report: dict[str, Any]) -> Any | None:
    """Accuracy against size and against p50 latency; Pareto-optimal points are ringed and named."""
    points = report.get("pareto") or []
    if not points:
        return None
    figure, (size_ax, latency_ax) = _new_figure(8.0, 3.6, ncols=2)
    colors = _colors(report, [p["artifact"] for p in points])
    targets = list(dict.fromkeys(p["target"] for p in points))
    scale, unit = _time_unit([p["p50_ms"] for p in points])
    placed: dict[int, list[tuple[float, float]]] = {id(size_ax): [], id(latency_ax): []}
    labelled_sizes: set[str] = set()
    for point in points:
        marker = MARKERS[targets.index(point["target"]) % len(MARKERS)]
        accuracy = point["accuracy"] * 100
        for ax, x in ((size_ax, point["size_bytes"] / 1024), (latency_ax, point["p50_ms"] * scale)):
            ax.scatter(x, accuracy, color=colors[point["artifact"]], marker=marker, s=46, zorder=3)
            if not point["pareto_optimal"]:
                continue
            ax.scatter(x, accuracy, facecolors="none", edgecolors="black", s=150, zorder=4)
            if ax is size_ax:
                if point["artifact"] in labelled_sizes:
                    continue  # a file has the same size on every target: name it once
                labelled_sizes.add(point["artifact"])
            offset = _label_offset(placed[id(ax)], x, accuracy, log_x=ax is latency_ax)
            ax.annotate(point["artifact"], (x, accuracy), fontsize=7, xytext=(6, offset), textcoords="offset points")
    size_ax.set_xlabel("file size (KiB)")
    latency_ax.set_xlabel(f"p50 latency ({unit}, log)")
    _log_x(latency_ax)
    for ax in (size_ax, latency_ax):
        ax.set_ylabel("accuracy (%)")
        ax.margins(x=0.12, y=0.18)
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
    errors = [row["energy_uncertainty_j"] * 1e6 if is_number(row.get("energy_uncertainty_j")) else 0.0 for row in rows]
    bars = ax.barh(labels, values, xerr=errors, capsize=3, color=[colors[row["artifact"]] for row in rows])
    ax.bar_label(bars, fmt="%.3g µJ", fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("energy per inference (µJ, bars ± uncertainty)")
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
    """Sustained mode over time: p50 (solid) and p90 (dashed) per window against the seconds elapsed, and the
    hottest thermal zone read after each window (dotted, right axis): a rise with the temperature is throttling."""
    rows = [row for row in report.get("bench") or [] if isinstance(row.get("windows"), list) and row["windows"]]
    if not rows:
        return None
    figure, (ax,) = _new_figure(6.0, 3.2)
    heat = None
    colors = _colors(report, [row["artifact"] for row in rows])
    for index, row in enumerate(rows):
        windows = [w for w in row["windows"] if isinstance(w, dict) and is_number(w.get("p50_ms"))]
        if not windows:
            continue
        timed = all(is_number(w.get("t_s")) for w in windows)
        xs = [w["t_s"] if timed else w.get("window", i) + 1 for i, w in enumerate(windows)]
        color = colors.get(row["artifact"], PALETTE[index % len(PALETTE)])
        label = f"{row['artifact']} @ {row['target']}"
        ax.plot(xs, [w["p50_ms"] for w in windows], marker="o", color=color, label=f"{label} p50")
        p90 = [w.get("p90_ms") for w in windows]
        if all(is_number(v) for v in p90):
            ax.plot(xs, p90, linestyle="--", color=color, alpha=0.7, label=f"{label} p90")
        temps = [
            max(w["temps_c"].values())
            if isinstance(w.get("temps_c"), dict) and w["temps_c"] and all(is_number(v) for v in w["temps_c"].values())
            else None
            for w in windows
        ]
        if any(t is not None for t in temps):
            heat = heat or ax.twinx()
            heat.plot(
                [x for x, t in zip(xs, temps, strict=True) if t is not None],
                [t for t in temps if t is not None],
                linestyle=":",
                color=color,
                alpha=0.6,
            )
        ax.set_xlabel("seconds into the run" if timed else "window")
    if heat is not None:
        heat.set_ylabel("hottest zone after the window (°C, dotted)")
    ax.set_ylabel("latency per window (ms)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return figure


def _op_type_plot(report: dict[str, Any]) -> Any | None:
    from edgekd.report.profiles import op_type_plot

    return op_type_plot(report)


def _ladder_plot(report: dict[str, Any]) -> Any | None:
    from edgekd.report.quantization import ladder_plot

    return ladder_plot(report)


#: key, title, caption, drawing function: the order they appear in the HTML.
PLOTS: tuple[tuple[str, str, str, Callable[[dict[str, Any]], Any | None]], ...] = (
    (
        "distill",
        "Teacher vs KD student vs scratch",
        "Accuracy and size of the three models: distillation should buy accuracy at the student's size.",
        distill_plot,
    ),
    ("history", "Training curves", "Validation accuracy per epoch.", history_plot),
    (
        "latency",
        "Latency distribution",
        "Raw per-inference latencies per artifact and target (violin = density, box = quartiles).",
        latency_plot,
    ),
    (
        "pareto",
        "Accuracy vs size vs latency",
        (
            "Each point is one artifact on one target; ringed points are Pareto-optimal (nothing is smaller, faster "
            "and more accurate at once)."
        ),
        pareto_plot,
    ),
    ("energy", "Energy per inference", "Only where the target could measure energy.", energy_plot),
    (
        "windows",
        "Sustained runs",
        (
            "Per window of a sustained run: p50 (solid) and p90 (dashed) over time, and the hottest thermal zone "
            "(dotted, right axis); latency rising with the temperature means throttling."
        ),
        windows_plot,
    ),
    (
        "profile",
        "Time by op type",
        (
            "Per profiled artifact and target: op time per inference by op type (int8 kernels and XNNPACK operators "
            "grouped with the float op they replace), from the per-op profile."
        ),
        _op_type_plot,
    ),
    (
        "quantization",
        "Quantization ladder",
        (
            "Accuracy drop against ORT / LiteRT / TFLM p50 latency at each rung of the ladder; the dashed line is "
            "the budget ([quantize] max_accuracy_drop). The recommended rung is the fastest one under it."
        ),
        _ladder_plot,
    ),
)


def render_plots(report: dict[str, Any], *, image_format: str = "svg") -> list[Plot]:
    """Every plot the report has data for, encoded for embedding."""
    from matplotlib import rc_context

    plots = []
    with rc_context({"svg.hashsalt": "edgekd", "font.size": 9, "axes.spines.top": False, "axes.spines.right": False}):
        for key, title, caption, draw in PLOTS:
            figure = draw(report)
            if figure is None:
                continue
            mime, data = _encode(figure, image_format)
            plots.append(Plot(key=key, title=title, caption=caption, mime=mime, data=data))
    return plots
