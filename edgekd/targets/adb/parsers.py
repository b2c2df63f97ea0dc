"""Parse TFLite `benchmark_model` and `onnxruntime_perf_test` output into the runner's JSON shape.

Both tools print summaries, not per-run samples, so the documents they become carry `latencies_ns: None`
and a `summary` block in milliseconds (count, mean, std, min, max, and ORT's percentiles); every other
field of "edgekd.run/1" is filled where the tool says it and None where it does not. Formats handled
(all seen in real logs): with or without the `INFO: ` log prefix, numbers in `2.95034e+06` notation,
the three generations of benchmark_model's memory lines, ORT's `key: value` and `key:value` forms.
"""

from __future__ import annotations

import math
import re
from typing import Any

from edgekd.errors import BenchError

RUN_SCHEMA = "edgekd.run/1"
NUMBER = r"(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)"
_COUNT_LINE = re.compile(
    rf"count={NUMBER}(?: first={NUMBER})? curr={NUMBER}(?: min={NUMBER} max={NUMBER} avg={NUMBER} std={NUMBER})?"
    rf"(?: p5={NUMBER} median={NUMBER} p95={NUMBER})?"
)
_TIMINGS = re.compile(
    rf"Inference timings in us: Init: {NUMBER}, First inference: {NUMBER}, "
    rf"Warmup \(avg\): {NUMBER}, Inference \(avg\): {NUMBER}"
)
_BM_FIELDS = {
    "threads": re.compile(r"(?:#threads used for CPU inference|Num threads): \[(\d+)\]"),
    "model_size_mb": re.compile(rf"The input model file size \(MB\): {NUMBER}"),
    "session_ms": re.compile(rf"Initialized session in {NUMBER}\s*ms"),
    "peak_mb": re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: {NUMBER}"),
    "vm_rss_mb": re.compile(rf"- VmRSS\s*:\s*{NUMBER} MB"),
}
_BM_MEMORY = re.compile(
    rf"(Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\): "
    rf"init={NUMBER} overall={NUMBER}"
)
_DELEGATE = re.compile(r"Replacing (\d+) out of (\d+) node\(s\) with delegate \((\w+)\)")
_ORT_FIELDS = {
    "session_s": re.compile(rf"Session creation time cost:\s*{NUMBER} s"),
    "first_ms": re.compile(rf"First inference time cost:\s*{NUMBER} ms"),
    "count": re.compile(rf"Total inference requests:\s*{NUMBER}"),
    "avg_ms": re.compile(rf"Average inference time cost(?: total)?:\s*{NUMBER} ms"),
    "run_s": re.compile(rf"Total inference run time:\s*{NUMBER} s"),
    "per_second": re.compile(rf"Number of inferences per second:\s*{NUMBER}"),
    "cpu_percent": re.compile(rf"Avg CPU usage:\s*{NUMBER}"),
    "peak_bytes": re.compile(rf"Peak working set size:\s*{NUMBER}"),
    "threads": re.compile(r"Setting intra_op_num_threads to (\d+)"),
    "runs": re.compile(r"^Runs:\s*(\d+)", re.MULTILINE),
}
_ORT_LATENCY = re.compile(rf"^(Min|Max|P50|P90|P95|P99|P999) Latency:\s*{NUMBER} s", re.MULTILINE)


def _num(text: str | None) -> float | None:
    """A printed number; an overflowing one (`1e999`) is a garbled log, refused as a BenchError."""
    if text is None:
        return None
    value = float(text)
    if not math.isfinite(value):
        raise BenchError(
            f"the tool printed an impossible number ({text})",
            hint="its output is garbled; rerun, and check the tool's log by hand",
        )
    return value


def _int(text: str) -> int:
    return int(_num(text))  # type: ignore[arg-type]


def _us_to_ms(text: str | None) -> float | None:
    value = _num(text)
    return round(value / 1000.0, 6) if value is not None else None


def _first(pattern: re.Pattern[str], text: str) -> str | None:
    match = pattern.search(text)
    return match.group(1) if match else None


def _document(runtime: str, versions: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": RUN_SCHEMA,
        "runtime": runtime,
        "versions": versions,
        "init_ms": None,
        "first_ms": None,
        "latencies_ns": None,  # these tools print summaries only
        "summary": None,
        "peak_rss_kb": None,
        "threads": None,
        "env": {},
        "notes": [],
    }


def _failure(tool: str, text: str) -> BenchError:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if re.search(r"error|fail|could not|no such", line, re.IGNORECASE)]
    tail = "\n".join((errors or lines)[-4:]) or "(no output)"
    return BenchError(
        f"{tool} printed no timing summary:\n{tail}",
        hint=f"run the same {tool} command by hand with `adb shell` to see why it stopped",
    )


def parse_benchmark_model(text: str) -> dict[str, Any]:
    """TFLite benchmark_model's log -> an "edgekd.run/1" document (times in ms, memory in KiB)."""
    timings = _TIMINGS.search(text)
    if timings is None:
        raise _failure("benchmark_model", text)
    init_us, first_us, warmup_avg_us, inference_avg_us = timings.groups()
    doc = _document("tflite-benchmark_model", {"runtime": None})
    doc["init_ms"] = _us_to_ms(init_us)
    doc["first_ms"] = _us_to_ms(first_us)
    counts = list(_COUNT_LINE.finditer(text[: timings.start()]))
    measured = counts[-1] if counts else None
    summary: dict[str, Any] = {"mean_ms": _us_to_ms(inference_avg_us), "warmup_mean_ms": _us_to_ms(warmup_avg_us)}
    if measured is not None and measured.group(6) is not None:
        count, _first_run, _curr, low, high, _avg, std, p5, median, p95 = measured.groups()
        summary.update(count=_int(count), std_ms=_us_to_ms(std), min_ms=_us_to_ms(low), max_ms=_us_to_ms(high))
        if median is not None:
            summary.update(p5_ms=_us_to_ms(p5), p50_ms=_us_to_ms(median), p95_ms=_us_to_ms(p95))
    if len(counts) >= 2:
        summary["warmup_count"] = _int(counts[-2].group(1))
    doc["summary"] = summary
    fields = {name: _first(pattern, text) for name, pattern in _BM_FIELDS.items()}
    doc["threads"] = int(fields["threads"]) if fields["threads"] else None
    memory: dict[str, float | None] = {"peak_mb": _num(fields["peak_mb"]), "vm_rss_mb": _num(fields["vm_rss_mb"])}
    line = _BM_MEMORY.search(text)
    if line is not None:
        kind = "delta" if line.group(1).startswith("Memory footprint delta") else "peak"
        memory[f"init_{kind}_mb"], memory[f"overall_{kind}_mb"] = _num(line.group(2)), _num(line.group(3))
    doc["memory"] = {key: value for key, value in memory.items() if value is not None}
    peak_mb = memory.get("peak_mb") or memory.get("overall_peak_mb")
    doc["peak_rss_kb"] = round(peak_mb * 1024) if peak_mb else None
    if peak_mb is None and "overall_delta_mb" in memory:
        doc["notes"].append("benchmark_model reported only the RSS delta from its start, not the peak RSS")
    doc["env"] = {
        "model_size_mb": _num(fields["model_size_mb"]),
        "session_ms": _num(fields["session_ms"]),
        "xnnpack": "XNNPACK delegate" in text or "TfLiteXNNPackDelegate" in text,
    }
    delegate = _DELEGATE.search(text)
    if delegate is not None:
        doc["env"]["delegate"] = {
            "name": delegate.group(3),
            "nodes": int(delegate.group(1)),
            "of": int(delegate.group(2)),
        }
    if "will not be executed by the delegate" in text:
        doc["notes"].append("part of the graph fell back from the delegate to the CPU")
    return doc


def parse_ort_perf_test(text: str) -> dict[str, Any]:
    """onnxruntime_perf_test's output -> an "edgekd.run/1" document (times in ms, memory in KiB)."""
    fields = {name: _first(pattern, text) for name, pattern in _ORT_FIELDS.items()}
    if fields["avg_ms"] is None or fields["count"] is None:
        raise _failure("onnxruntime_perf_test", text)
    doc = _document("onnxruntime_perf_test", {"runtime": None})
    session_s = _num(fields["session_s"])
    doc["init_ms"] = round(session_s * 1000.0, 6) if session_s is not None else None
    doc["first_ms"] = _num(fields["first_ms"])
    summary: dict[str, Any] = {"count": _int(fields["count"]), "mean_ms": _num(fields["avg_ms"])}
    for label, seconds in _ORT_LATENCY.findall(text):
        key = {"Min": "min_ms", "Max": "max_ms"}.get(label, f"{label.lower()}_ms")
        summary[key] = round(_num(seconds) * 1000.0, 6)  # type: ignore[operator]
    if fields["per_second"] is not None:
        summary["per_second"] = _num(fields["per_second"])
    doc["summary"] = summary
    doc["threads"] = int(fields["threads"]) if fields["threads"] else None
    peak = _num(fields["peak_bytes"])
    doc["peak_rss_kb"] = int(peak // 1024) if peak else None
    doc["env"] = {"cpu_percent": _num(fields["cpu_percent"]), "run_s": _num(fields["run_s"])}
    if "p50_ms" not in summary:
        doc["notes"].append("this onnxruntime_perf_test build prints no percentiles")
    return doc


PARSERS = {"benchmark_model": parse_benchmark_model, "ort_perf_test": parse_ort_perf_test}
