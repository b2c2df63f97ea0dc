"""Summarise ONNX Runtime's profiler trace into per-node rows. Standard library only, on purpose.

ORT with `SessionOptions.enable_profiling = True` writes, at `session.end_profiling()`, a JSON list of
chrome-trace events:
- `cat == "Session"`: `model_loading_uri`, `session_initialization` (load time, not inference),
  `SequentialExecutor::Execute` and one `model_run` per `session.run` (its `ts`/`dur` bound the run);
- `cat == "Node"`: per node and run `<node>_fence_before`, `<node>_kernel_time`, `<node>_fence_after`;
  only `_kernel_time` carries the time, with `args.op_name` (op type) and `args.provider` (EP).
`ts` and `dur` are microseconds.

Decision: the device runner may carry only stdlib + numpy + the runtime and must print one compact JSON
document, so it cannot ship a trace (tens of events per node and run: megabytes over adb) nor import
edgekd. This module imports nothing but the standard library and returns plain dicts, so the runner
can copy `summarize_ort_trace` verbatim and print its result; the host wraps it in `OpProfile`.
"""

from __future__ import annotations

from typing import Any

KERNEL_SUFFIX = "_kernel_time"
#: How `ms` summarises the runs: the mean over the middle half of runs ranked by duration.
STATISTIC = "interquartile mean"


def _runs(events: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(start, end) µs of every `model_run`, in time order."""
    runs = [
        (float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0)))
        for e in events
        if e.get("cat") == "Session" and e.get("name") == "model_run" and "ts" in e
    ]
    return sorted(runs)


def summarize_ort_trace(events: list[dict[str, Any]], warmup_runs: int = 0) -> dict[str, Any]:
    """Per-node time per inference from a trace, leaving out the first `warmup_runs` runs.

    A node's `ms` is its mean time per run over the middle half of the runs, the runs ranked by their
    `model_run` time (the fastest and slowest quarter left out: on a busy machine a preempted run inflates
    a plain mean, while per-node medians would not add up to a whole run); the rows then sum to about the
    median run. `calls` is the node's mean number of kernel events per run.
    Returns {"rows": [{"op", "op_type", "provider", "ms", "calls"}...] in execution order,
    "runs": runs kept, "run_ns": [each kept run's `model_run` duration in integer ns], "statistic": STATISTIC}.
    Session and model-load events are not counted; fence events carry no time and are skipped.
    """
    runs = _runs(events)[max(0, int(warmup_runs)) :]
    if not runs:
        return {"rows": [], "runs": 0, "run_ns": []}
    starts = [start for start, _ in runs]
    count = len(runs)
    totals: dict[str, list[Any]] = {}  # name -> [op_type, provider, per-run µs, events]
    for event in events:
        name = str(event.get("name", ""))
        if event.get("cat") != "Node" or not name.endswith(KERNEL_SUFFIX) or "ts" not in event:
            continue
        ts = float(event["ts"])
        index = _run_index(starts, ts)
        if index < 0 or ts > runs[index][1]:
            continue  # a warm-up run's node, or outside every run
        args = event.get("args") or {}
        node = name[: -len(KERNEL_SUFFIX)]
        entry = totals.setdefault(
            node, [str(args.get("op_name", "?")), str(args.get("provider", "?")), [0.0] * count, 0]
        )
        entry[2][index] += float(event.get("dur", 0))
        entry[3] += 1
    middle = _middle_runs([end - start for start, end in runs])
    rows = [
        {
            "op": node,
            "op_type": op_type,
            "provider": provider,
            "ms": sum(per_run[i] for i in middle) / len(middle) / 1000.0,
            "calls": calls / count,
        }
        for node, (op_type, provider, per_run, calls) in totals.items()
    ]
    return {
        "rows": rows,
        "runs": count,
        "run_ns": [round((end - start) * 1000) for start, end in runs],
        "statistic": STATISTIC,
    }


def _middle_runs(durations: list[float]) -> list[int]:
    """Indexes of the runs between the 25th and 75th percentile of duration (all runs when fewer than 4)."""
    order = sorted(range(len(durations)), key=durations.__getitem__)
    if len(order) < 4:
        return order
    quarter = len(order) // 4
    return order[quarter : len(order) - quarter]


def _run_index(starts: list[float], ts: float) -> int:
    """Index of the last run starting at or before `ts` (-1 if none): a binary search."""
    low, high = 0, len(starts)
    while low < high:
        middle = (low + high) // 2
        if starts[middle] <= ts:
            low = middle + 1
        else:
            high = middle
    return low - 1
