"""benchmark_model / onnxruntime_perf_test modes: the runner's command line becomes the tool's, and the
tool's output becomes an "edgekd.run/1" document, so bench orchestration stays the same for every mode.

The binaries are the user's (paths in targets.toml), pushed once per session (sha256 remembered by the
target) and made executable. After each run the phone is probed again so the document carries the
temperatures and thermal status *after* the run, like the runner's own env block.
"""

from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgekd.errors import BenchError
from edgekd.targets.adb.parsers import RUN_SCHEMA, parse_benchmark_model, parse_ort_perf_test
from edgekd.targets.adb.probe import ABI_ARCH

if TYPE_CHECKING:
    from edgekd.targets.adb.target import AdbTarget

RUNNER_NAME = "edgekd_runner.py"
#: benchmark_model's --max_secs with a run-count floor (min_runs): generous, so the floor is what ends the run.
MIN_RUNS_MAX_SECS = 3600.0
TOOL = {"benchmark_model": ("benchmark_model", ".tflite"), "ort_perf_test": ("onnxruntime_perf_test", ".onnx")}


def _runner_options(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--model")
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--duration", type=float)
    parser.add_argument("--no-xnnpack", dest="xnnpack", action="store_false")
    parser.add_argument("--baseline", action="store_true")
    parser.add_argument("--shape", action="append", default=None)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--min-runs", dest="min_runs", type=int)
    # --seed/--pin/--windows have no tool equivalent; --sidecar-shape is only a fallback for the runner
    options, _unknown = parser.parse_known_args(argv)
    return options


@dataclass
class NativeRun:
    """The tool's argv on the phone and how to turn its output into the runner's JSON line.

    `profile_argv`, when set, is a second run of the tool with its op profiler on, made after the timed one
    (so the timed figures stay unprofiled, as in the runner); its output reaches `document` as `profile_text`."""

    argv: list[str]
    document: Callable[..., str]  # (text, returncode, profile_text=None) -> the runner's JSON line
    profile_argv: list[str] | None = None


#: Why onnxruntime_perf_test mode records no per-op profile (its -p trace would stay on the phone).
ORT_PERF_TEST_NO_PROFILE = ("onnxruntime_perf_test mode collects no per-op profile (its -p trace is written on the "
                            "phone and not read back); use mode = 'runner' on this phone for ONNX Runtime's profiler")


def tool_argv(mode: str, binary: str, options: argparse.Namespace) -> list[str]:
    """The tool's command line for the runner's options (documented flags of each tool)."""
    if mode == "benchmark_model":
        argv = [binary, f"--graph={options.model}", f"--num_threads={options.threads}",
                f"--warmup_runs={options.warmup}", "--warmup_min_secs=0",
                "--report_peak_memory_footprint=true", f"--use_xnnpack={'true' if options.xnnpack else 'false'}"]
        if options.duration is not None and options.min_runs:  # both floors, as MLPerf's rule: the tool's own semantics
            return [*argv, f"--num_runs={options.min_runs}", f"--min_secs={options.duration}",
                    f"--max_secs={max(MIN_RUNS_MAX_SECS, 10 * options.duration)}"]
        if options.duration is not None:
            return [*argv, "--num_runs=1", f"--min_secs={options.duration}", f"--max_secs={options.duration}"]
        return [*argv, f"--num_runs={options.runs}", "--min_secs=0"]
    argv = [binary, "-e", "cpu", "-x", str(options.threads), "-I"]  # -I: random inputs, no test-data dir
    if options.duration is not None:
        argv += ["-m", "duration", "-t", str(max(1, round(options.duration)))]
    else:
        argv += ["-m", "times", "-r", str(max(1, options.runs))]
    return [*argv, options.model]


def translate_runner_argv(target: AdbTarget, argv: list[str]) -> NativeRun | None:
    """None when `argv` is not a runner invocation (then it runs as given)."""
    if not any(arg.endswith(RUNNER_NAME) for arg in argv):
        return None
    mode = target.entry.mode
    options = _runner_options(argv)
    if options.baseline:  # the tools cannot load a runtime without a model: no memory baseline
        note = f"no empty-model memory baseline in {mode} mode"
        return NativeRun(["true"], lambda _text, _code, _profile=None: json.dumps(
            {"schema": RUN_SCHEMA, "runtime": TOOL[mode][0], "versions": {}, "peak_rss_kb": None,
             "latencies_ns": [], "notes": [note]}))
    tool, suffix = TOOL[mode]
    if not str(options.model).endswith(suffix):
        other = "ort_perf_test" if suffix == ".tflite" else "benchmark_model"
        raise BenchError(f"{target.name} runs {tool}, which takes {suffix} models, not {options.model}",
                         hint=f"benchmark only {suffix} artifacts on this target, or add a target with mode = "
                         f"'{other}' or 'runner'")
    if options.min_runs and mode == "ort_perf_test":  # refused, not ignored: -m duration and -m times exclude each other
        raise BenchError(f"{target.name} runs {tool}, which runs for a duration or a count, not both "
                         f"(--min-runs {options.min_runs} with --duration)",
                         hint="use mode = 'runner' or 'benchmark_model' on this phone for --mlperf / min_runs")
    if options.shape:  # refused, not ignored: the tool would run the model's declared shape
        raise BenchError(f"{target.name} runs {tool}, which edgekd cannot give an input shape (--shape {options.shape[0]})",
                         hint="benchmark a model exported with fixed input sizes, or use mode = 'runner' on this phone")
    binary = push_tool(target, mode)
    model_sha = next((sha for sha, remote in target.pushed.items() if remote == options.model), None)
    tool_sha = next((sha for sha, remote in target.pushed.items() if remote == binary), "")

    def document(text: str, returncode: int, profile_text: str | None = None) -> str:
        try:
            doc = (parse_benchmark_model if mode == "benchmark_model" else parse_ort_perf_test)(text)
        except BenchError as exc:
            reason = exc.message + (f" (exit status {returncode})" if returncode else "")
            return json.dumps({"schema": RUN_SCHEMA, "error": {"kind": "tool_failed", "message": reason,
                                                                 "hint": exc.hint}})
        doc.update(model_sha256=model_sha, xnnpack=options.xnnpack if mode == "benchmark_model" else None)
        doc["versions"] = {"runtime": f"{tool} sha256:{tool_sha[:12]}"}
        doc["env"].update(_env_after(target))
        if doc.get("threads") is None:
            doc["threads"] = options.threads
        if options.profile:
            doc.update(op_profile_document(mode, profile_text, options))
        return json.dumps(doc)

    argv = tool_argv(mode, binary, options)
    profiled = [*argv, "--enable_op_profiling=true"] if options.profile and mode == "benchmark_model" else None
    return NativeRun(argv, document, profiled)


def op_profile_document(mode: str, text: str | None, options: argparse.Namespace) -> dict[str, Any]:
    """The profile part of a tool-mode document: `profile` (an OpProfile dict parsed from benchmark_model's
    op-profiling tables, with the profiled run's own median) or `profile_unavailable` with the reason."""
    from edgekd.errors import EdgekdError
    from edgekd.profile.tflite_benchmark import parse_benchmark_output

    if mode != "benchmark_model":
        return {"profile_unavailable": ORT_PERF_TEST_NO_PROFILE}
    if not text:
        return {"profile_unavailable": "the profiled benchmark_model run failed or printed nothing"}
    try:
        profile = parse_benchmark_output(text, model=str(options.model).rsplit("/", 1)[-1], runtime="tflite",
                                         requested=["XNNPACK"] if options.xnnpack else [])
        summary = parse_benchmark_model(text).get("summary") or {}
    except EdgekdError as exc:
        return {"profile_unavailable": f"benchmark_model --enable_op_profiling=true: {exc.message}"}
    profile.profiled_median_ms = summary.get("p50_ms") or summary.get("mean_ms")
    return {"profile": profile.to_dict()}


def push_tool(target: AdbTarget, mode: str) -> str:
    """Push the user's binary once (the target remembers its sha256) and make it executable."""
    local = target.entry.benchmark_model if mode == "benchmark_model" else target.entry.onnxruntime_perf_test
    if local is None or not local.is_file():
        key = "benchmark_model" if mode == "benchmark_model" else "onnxruntime_perf_test"
        raise BenchError(f"{target.name}: the {key} binary {local} does not exist",
                         hint=f"build or download it for the phone's ABI and set {key} in targets.toml")
    already = len(target.pushed)
    remote = target.push(local)
    if len(target.pushed) > already:
        target._shell(f"chmod 755 {shlex.quote(remote)}")
    return remote


def _env_after(target: AdbTarget) -> dict[str, Any]:
    state = target.probe()
    big = target.big_cores(state)
    cluster = next((c for c in state.clusters if big and big[0] in c.cpus), None)
    return {
        "machine": ABI_ARCH.get(state.abi or "", state.abi),
        "cpu_model": state.props.get("ro.soc.model"),
        "cpu_count": state.cores,
        "affinity": big,
        "governor": cluster.governor if cluster else None,
        "freq_khz": {str(cpu): c.cur_khz for c in state.clusters for cpu in c.cpus if c.cur_khz},
        "temps_c": state.temperatures_c,
        "thermal_status": state.thermal_status_name(),
        "system": "Android",
        "release": state.props.get("ro.build.version.release"),
    }
