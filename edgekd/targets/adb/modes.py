"""benchmark_model / onnxruntime_perf_test modes: the runner's command line becomes the tool's, and the
tool's output becomes an "edgekd.run/1" document, so bench orchestration stays the same for every mode.

The binaries are the user's (paths in targets.toml), pushed once per session (sha256 remembered by the
target) and made executable. After each run the phone is probed again so the document carries the
temperatures and thermal status *after* the run, like the runner's own env block.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgekd.errors import BenchError
from edgekd.targets.adb.parsers import RUN_SCHEMA, parse_benchmark_model, parse_ort_perf_test
from edgekd.targets.adb.probe import ABI_ARCH
from edgekd.targets.tools import TOOL, op_profile_document, runner_options, tool_argv

if TYPE_CHECKING:
    from edgekd.targets.adb.target import AdbTarget

RUNNER_NAME = "edgekd_runner.py"


@dataclass
class NativeRun:
    """The tool's argv on the phone and how to turn its output into the runner's JSON line.

    `profile_argv`, when set, is a second run of the tool with its op profiler on, made after the timed one
    (so the timed figures stay unprofiled, as in the runner); its output reaches `document` as `profile_text`."""

    argv: list[str]
    document: Callable[..., str]  # (text, returncode, profile_text=None) -> the runner's JSON line
    profile_argv: list[str] | None = None


def translate_runner_argv(target: AdbTarget, argv: list[str]) -> NativeRun | None:
    """None when `argv` is not a runner invocation (then it runs as given)."""
    if not any(arg.endswith(RUNNER_NAME) for arg in argv):
        return None
    mode = target.entry.mode
    options = runner_options(argv)
    if options.baseline:  # the tools cannot load a runtime without a model: no memory baseline
        note = f"no empty-model memory baseline in {mode} mode"
        return NativeRun(
            ["true"],
            lambda _text, _code, _profile=None: json.dumps(
                {
                    "schema": RUN_SCHEMA,
                    "runtime": TOOL[mode][0],
                    "versions": {},
                    "peak_rss_kb": None,
                    "latencies_ns": [],
                    "notes": [note],
                }
            ),
        )
    tool, suffix = TOOL[mode]
    if not str(options.model).endswith(suffix):
        other = "ort_perf_test" if suffix == ".tflite" else "benchmark_model"
        raise BenchError(
            f"{target.name} runs {tool}, which takes {suffix} models, not {options.model}",
            hint=f"benchmark only {suffix} artifacts on this target, or add a target with mode = '{other}' or 'runner'",
        )
    if (
        options.min_runs and mode == "ort_perf_test"
    ):  # refused, not ignored: -m duration and -m times exclude each other
        raise BenchError(
            f"{target.name} runs {tool}, which runs for a duration or a count, not both "
            f"(--min-runs {options.min_runs} with --duration)",
            hint="use mode = 'runner' or 'benchmark_model' on this phone for --mlperf / min_runs",
        )
    if options.shape:  # refused, not ignored: the tool would run the model's declared shape
        raise BenchError(
            f"{target.name} runs {tool}, which edgekd cannot give an input shape (--shape {options.shape[0]})",
            hint="benchmark a model exported with fixed input sizes, or use mode = 'runner' on this phone",
        )
    binary = push_tool(target, mode)
    model_sha = next((sha for sha, remote in target.pushed.items() if remote == options.model), None)
    tool_sha = next((sha for sha, remote in target.pushed.items() if remote == binary), "")

    def document(text: str, returncode: int, profile_text: str | None = None) -> str:
        try:
            doc = (parse_benchmark_model if mode == "benchmark_model" else parse_ort_perf_test)(text)
        except BenchError as exc:
            reason = exc.message + (f" (exit status {returncode})" if returncode else "")
            return json.dumps(
                {"schema": RUN_SCHEMA, "error": {"kind": "tool_failed", "message": reason, "hint": exc.hint}}
            )
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


def push_tool(target: AdbTarget, mode: str) -> str:
    """Push the user's binary once (the target remembers its sha256) and make it executable."""
    local = target.entry.benchmark_model if mode == "benchmark_model" else target.entry.onnxruntime_perf_test
    if local is None or not local.is_file():
        key = "benchmark_model" if mode == "benchmark_model" else "onnxruntime_perf_test"
        raise BenchError(
            f"{target.name}: the {key} binary {local} does not exist",
            hint=f"build or download it for the phone's ABI and set {key} in targets.toml",
        )
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
