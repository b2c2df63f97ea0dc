"""Summarise ONNX Runtime's profiler trace into per-node rows: the host's typed entry to the one implementation.

ORT with `SessionOptions.enable_profiling = True` writes, at `session.end_profiling()`, a JSON list of
chrome-trace events:
- `cat == "Session"`: `model_loading_uri`, `session_initialization` (load time, not inference),
  `SequentialExecutor::Execute` and one `model_run` per `session.run` (its `ts`/`dur` bound the run);
- `cat == "Node"`: per node and run `<node>_fence_before`, `<node>_kernel_time`, `<node>_fence_after`;
  only `_kernel_time` carries the time, with `args.op_name` (op type) and `args.provider` (EP).
`ts` and `dur` are microseconds.

Decision: the device runner may carry only stdlib + numpy + the runtime and must print one compact JSON
document, so it cannot ship a trace (tens of events per node and run: megabytes over adb) nor import
edgekd. The summary therefore lives in the runner (`edgekd/targets/runner/edgekd_runner.py`,
`summarize_ort_trace`), written once, and the host calls that same function here (it used to keep a copy).
"""

from __future__ import annotations

from typing import Any

#: How `ms` summarises the runs: the mean over the middle half of runs ranked by duration.
STATISTIC = "interquartile mean"


def summarize_ort_trace(events: list[dict[str, Any]], warmup_runs: int = 0) -> dict[str, Any]:
    """Per-node time per inference from a trace, leaving out the first `warmup_runs` runs: {"rows": [{op,
    op_type, provider, ms, calls}], "runs": runs kept, "run_ns": each kept run's `model_run` duration in integer
    ns, "statistic": STATISTIC}. A node's `ms` is its mean time per run over the middle half of the runs ranked
    by `model_run` time (a preempted run on a busy machine is left out); `calls` its calls per run."""
    from edgekd.targets.runner import edgekd_runner  # stdlib only at import: the device's own copy of the code

    summary: dict[str, Any] = edgekd_runner.summarize_ort_trace(events, warmup_runs=warmup_runs)
    return summary
