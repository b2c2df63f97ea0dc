"""The sweep's results: report.json (schema edgekd.sweep/1), report.html with the Pareto plot, a console table.

report.json:
    schema        "edgekd.sweep/1"
    study, storage (password redacted), recipe, sweep_dir, created (UTC ISO 8601)
    objectives    [{label, metric, artifact, target, direction}]   label = "metric(artifact@target)"
    constraints   [{label, metric, artifact, target, max | min}]
    counts        {complete, pruned, fail, running, waiting}
    trials        [{number, state ("COMPLETE"|"PRUNED"|"FAIL"|...), params (dotted key -> value), values
                    (objective label -> value), figures (label -> value, constraints too), violations
                    (per constraint, <= 0 feasible), feasible, pareto, run_dir, worker (host:pid), val_best, val_accuracy,
                    cache_hits (shared stages seeded into the trial), bench_windows [{targets, attempt, start,
                    end, error?}] (epoch seconds, taken inside the device lock), pruned (why), error
                    {type, message, hint}, seconds}]
    pareto        trial numbers on the feasible Pareto front
    recommended   {number, run_dir, handoff, values} of the best feasible trial (the Pareto trial best on the
                  first objective, ties broken by the next), or null when no trial is feasible
"""

from __future__ import annotations

import base64
import html
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgekd import console
from edgekd.fileio import atomic_write_json
from edgekd.sweep.config import SweepConfig

SCHEMA = "edgekd.sweep/1"


def trial_rows(study: Any, sweep: SweepConfig) -> list[dict[str, Any]]:
    labels = [o.label for o in sweep.objectives]
    rows = []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        violations = attrs.get("constraints")
        complete = trial.state.name == "COMPLETE" and trial.values is not None
        feasible = complete and all(isinstance(v, (int, float)) and v <= 0 for v in violations or [])
        seconds = (trial.datetime_complete - trial.datetime_start).total_seconds() \
            if trial.datetime_complete and trial.datetime_start else None  # fmt: skip
        rows.append({
            "number": trial.number, "state": trial.state.name, "params": attrs.get("values", trial.params),
            "values": dict(zip(labels, trial.values)) if complete else {}, "figures": attrs.get("figures", {}),
            "violations": violations, "feasible": feasible, "pareto": False, "run_dir": attrs.get("run_dir"),
            "worker": attrs.get("worker"), "val_best": attrs.get("val_best"), "val_accuracy": attrs.get("val_accuracy"),
            "cache_hits": attrs.get("cache_hits"), "bench_windows": attrs.get("bench_windows", []),
            "pruned": attrs.get("pruned"), "error": attrs.get("error"), "seconds": seconds,
        })  # fmt: skip
    return rows


def mark_pareto(rows: list[dict[str, Any]], sweep: SweepConfig) -> list[dict[str, Any]]:
    """Flag the feasible trials no other feasible trial dominates; return them best-first (recommendation order)."""
    signs = [1.0 if o.direction == "maximize" else -1.0 for o in sweep.objectives]
    scored = [(row, [s * v for s, v in zip(signs, row["values"].values())]) for row in rows if row["feasible"]]

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))

    front = [(row, score) for row, score in scored if not any(dominates(other, score) for _, other in scored)]
    for row, _ in front:
        row["pareto"] = True
    return [row for row, _ in sorted(front, key=lambda item: [-x for x in item[1]] + [item[0]["number"]])]


def write_results(study: Any, sweep: SweepConfig, sweep_dir: Path, storage: str, recipe_path: Path) -> dict[str, Any]:
    rows = trial_rows(study, sweep)
    front = mark_pareto(rows, sweep)
    best = front[0] if front else None
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"].lower()] = counts.get(row["state"].lower(), 0) + 1
    results = {
        "schema": SCHEMA, "study": study.study_name, "storage": storage, "recipe": str(recipe_path),
        "sweep_dir": str(sweep_dir), "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "objectives": [{"label": o.label, **o.model_dump(mode="json"), "direction": o.direction} for o in sweep.objectives],
        "constraints": [{"label": c.label, **c.model_dump(mode="json")} for c in sweep.constraints],
        "counts": counts, "trials": rows, "pareto": [row["number"] for row in front],
        "recommended": None if best is None else {
            "number": best["number"], "run_dir": best["run_dir"], "values": best["values"],
            "handoff": str(Path(best["run_dir"]) / "handoff") if (Path(best["run_dir"]) / "handoff").exists() else None,
        },
    }  # fmt: skip
    atomic_write_json(sweep_dir / "report.json", json.loads(json.dumps(results, default=str)))
    (sweep_dir / "report.html").write_text(render_html(results), encoding="utf-8")
    return results


def pareto_png(results: dict[str, Any]) -> str | None:
    """The Pareto plot as a data: URI: first objective (y) against the second (x), colour = a size figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [o["label"] for o in results["objectives"]]
    done = [r for r in results["trials"] if r["values"]]
    if not done:
        return None
    y_label = labels[0]
    x_label = labels[1] if len(labels) > 1 else None
    size_label = next((k for r in done for k in r["figures"] if k.split("(")[0] in ("size_bytes", "arena_bytes",
                       "flash_bytes")), None)  # fmt: skip
    xs = [r["values"][x_label] if x_label else r["number"] for r in done]
    ys = [r["values"][y_label] for r in done]
    colours = [r["figures"].get(size_label) or 0 for r in done] if size_label else None
    figure, ax = plt.subplots(figsize=(6.5, 4.2))
    points = ax.scatter(xs, ys, c=colours, cmap="viridis", s=[70 if r["pareto"] else 30 for r in done],
                        edgecolors=["black" if r["pareto"] else "none" for r in done],
                        marker="o", alpha=[1.0 if r["feasible"] else 0.35 for r in done])  # fmt: skip
    if colours is not None:
        figure.colorbar(points, ax=ax, label=size_label)
    for r, x, y in zip(done, xs, ys):
        ax.annotate(str(r["number"]), (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
    best = results.get("recommended")
    if best:
        ax.scatter([best["values"].get(x_label, best["number"]) if x_label else best["number"]],
                   [best["values"][y_label]], marker="*", s=260, facecolors="none", edgecolors="red",
                   label=f"recommended: trial {best['number']}")  # fmt: skip
        ax.legend(loc="best", fontsize=8)
    ax.locator_params(axis="x", nbins=5)  # long latency tick labels would run into each other
    ax.set_xlabel(x_label or "trial")
    ax.set_ylabel(y_label)
    ax.set_title("trials (ringed: feasible Pareto front; faded: infeasible)", fontsize=9)
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def render_html(results: dict[str, Any]) -> str:
    plot = pareto_png(results)
    esc = html.escape
    labels = [o["label"] for o in results["objectives"]] + [c["label"] for c in results["constraints"]]
    head = "".join(
        f"<th>{esc(h)}</th>" for h in ["trial", "state", "params", *labels, "feasible", "pareto", "run directory"]
    )
    body = []
    for r in results["trials"]:
        figures = [r["figures"].get(label) for label in labels]
        cells = [r["number"], r["state"] + (f": {r['pruned'] or (r['error'] or {}).get('message', '')}"
                 if r["state"] != "COMPLETE" else ""), json.dumps(r["params"]),
                 *[f"{v:.6g}" if isinstance(v, (int, float)) else "" for v in figures],
                 "yes" if r["feasible"] else "no", "yes" if r["pareto"] else "", r["run_dir"] or ""]  # fmt: skip
        body.append("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in cells) + "</tr>")
    best = results.get("recommended")
    named = (
        (
            f"<p><b>Recommended: trial {best['number']}</b> — {esc(json.dumps(best['values']))}<br>run directory: "
            f"<code>{esc(best['run_dir'])}</code></p>"
        )
        if best
        else "<p><b>No trial honours every constraint.</b></p>"
    )
    image = f'<img alt="Pareto front" src="{plot}">' if plot else "<p>No completed trial to plot.</p>"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>edgekd sweep {esc(results['study'])}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 6px}</style></head><body>"
        f"<h1>Sweep {esc(results['study'])}</h1><p>{esc(json.dumps(results['counts']))}</p>{named}{image}"
        f"<h2>Trials</h2><table><tr>{head}</tr>{''.join(body)}</table></body></html>"
    )


def print_summary(results: dict[str, Any], sweep_dir: Path) -> None:
    counts = ", ".join(f"{v} {k}" for k, v in sorted(results["counts"].items()))
    console.say(f"sweep {results['study']}: {counts}; Pareto front: trials {results['pareto']}")
    best = results.get("recommended")
    console.say(
        f"  recommended: trial {best['number']} {best['values']} → {best['run_dir']}"
        if best
        else "  no trial honours every constraint"
    )
    console.say(f"  {sweep_dir / 'report.html'}\n  {sweep_dir / 'report.json'}")
