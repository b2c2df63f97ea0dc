"""Bench rows of report.json: the contract fields first, raw samples as integer ns (thinned past
MAX_LATENCY_SAMPLES), one environment per target, accuracy per artifact and the accuracy/size/latency front."""

from __future__ import annotations

from typing import Any

from edgekd.bench.significance import raw_latencies_ns
from edgekd.report.formatting import number

#: Raw latencies kept per bench row; longer runs are thinned evenly (order kept, for window plots).
MAX_LATENCY_SAMPLES = 5000

_BENCH_CONTRACT = (
    "artifact",
    "target",
    "runtime",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "peak_rss_kb",
    "energy_j_per_inference",
    "energy_unavailable",
)
#: Raw-sample fields of a bench row: the report keeps one, `latencies_ns` (legacy rows had `latencies_ms`).
_RAW_KEYS = ("latencies_ns", "latencies_ms")


def bench_row(row: dict[str, Any]) -> dict[str, Any]:
    """A bench row: BenchResult.summary() or .to_dict() (its figures nested under "summary")."""
    if isinstance(row.get("summary"), dict) and "p50_ms" not in row:
        row = {**row, **row["summary"]}
    result = {key: row.get(key) for key in _BENCH_CONTRACT}
    result.update({key: value for key, value in row.items() if key not in result and key not in _RAW_KEYS})
    latencies = raw_latencies_ns(row)  # nanoseconds, as the runner measured them (older rows: milliseconds)
    if len(latencies) > MAX_LATENCY_SAMPLES:
        result["latencies_thinned_from"] = len(latencies)
        stride = len(latencies) / MAX_LATENCY_SAMPLES
        latencies = [latencies[int(i * stride)] for i in range(MAX_LATENCY_SAMPLES)]
    result["latencies_ns"] = latencies
    result["warnings"] = [str(w) for w in row.get("warnings") or []]
    return result


#: Per-result fields of an env that describe the model run, not the device.
_PER_RUN_ENV_KEYS = {"model_sha256", "wall_s", "init_ms_all", "runner_peak_rss_kb", "loadavg", "rss_after_first_kb"}


def environments(bench: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One environment per target: the env fields every result on that target agrees on.

    Fields that differ between artifacts (runtime, model hash, wall time...) describe a run, not the
    device, and are left to the bench rows, which keep their full env.
    """
    per_target: dict[str, list[dict[str, Any]]] = {}
    for row in bench:
        if isinstance(row.get("env"), dict):
            per_target.setdefault(str(row.get("target")), []).append(row["env"])
    envs: dict[str, dict[str, Any]] = {}
    for target, items in per_target.items():
        envs[target] = {
            key: value
            for key, value in items[0].items()
            if key not in _PER_RUN_ENV_KEYS and all(env.get(key) == value for env in items[1:])
        }
    return envs


def accuracy_of(report: dict[str, Any], artifact: str) -> float | None:
    """Task accuracy of an artifact: its parity row, else (the torch student) the distillation figure."""
    for row in report.get("parity") or []:
        if row.get("artifact") == artifact and number(row.get("accuracy")) is not None:
            return float(row["accuracy"])
    for row in report.get("artifacts") or []:
        if row["name"] == artifact and row.get("format") == "torch" and report.get("distill"):
            return number(report["distill"].get("student_accuracy"))
    return None


def pareto_points(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Accuracy vs size vs p50 latency per (artifact, target); flags the points nothing beats on all three."""
    sizes = {a["name"]: a.get("size_bytes") for a in report.get("artifacts") or []}
    points = []
    for row in report.get("bench") or []:
        name = row.get("artifact")
        accuracy, size, p50 = accuracy_of(report, name), number(sizes.get(name)), number(row.get("p50_ms"))
        if accuracy is None or size is None or p50 is None:
            continue
        points.append(
            {
                "artifact": name,
                "target": row.get("target"),
                "accuracy": accuracy,
                "size_bytes": int(size),
                "p50_ms": p50,
            }
        )
    for point in points:
        point["pareto_optimal"] = not any(
            _dominates(other, point) for other in points if other is not point and other["target"] == point["target"]
        )
    return points


def _dominates(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """a is at least as good as b on accuracy, size and latency, and strictly better on one."""
    at_least = a["accuracy"] >= b["accuracy"] and a["size_bytes"] <= b["size_bytes"] and a["p50_ms"] <= b["p50_ms"]
    strictly = a["accuracy"] > b["accuracy"] or a["size_bytes"] < b["size_bytes"] or a["p50_ms"] < b["p50_ms"]
    return bool(at_least and strictly)
