"""The user's benchmark binaries (TFLite `benchmark_model`, ORT `onnxruntime_perf_test`) on any target.

The runner's command line is the one description of a benchmark: `runner_options` reads it back and
`tool_argv` writes the tool's equivalent (documented flags of each tool), so an adb phone in tool mode and
an SSH/local target profiling with benchmark_model run what the runner would have run.

`BenchmarkModelProfiler` is the SSH/local op profiler: when the inventory names a `benchmark_model`
binary for such a target (the key adb's tool mode uses), TFLite artifacts are profiled with
`--enable_op_profiling=true` there, and its tables (edgekd.profile.tflite_benchmark) become the per-op
rows of the bench result, as on a phone. The binary is pushed with the target's sha256 check, once per
session, and made executable; the argv goes through the target's run(), which quotes every word.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgekd.target_protocol import Target

#: benchmark_model's --max_secs with a run-count floor (min_runs): generous, so the floor is what ends the run.
MIN_RUNS_MAX_SECS = 3600.0
TOOL = {"benchmark_model": ("benchmark_model", ".tflite"), "ort_perf_test": ("onnxruntime_perf_test", ".onnx")}
#: Why onnxruntime_perf_test mode records no per-op profile (its -p trace would stay on the phone).
ORT_PERF_TEST_NO_PROFILE = (
    "onnxruntime_perf_test mode collects no per-op profile (its -p trace is written on the "
    "phone and not read back); use mode = 'runner' on this phone for ONNX Runtime's profiler"
)
PROFILE_FLAG = "--enable_op_profiling=true"


def runner_options(argv: Sequence[str]) -> argparse.Namespace:
    """The options of a runner command line that the tools have equivalents for."""
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
    options, _unknown = parser.parse_known_args(list(argv))
    return options


def tool_argv(mode: str, binary: str, options: argparse.Namespace) -> list[str]:
    """The tool's command line for the runner's options (documented flags of each tool)."""
    if mode == "benchmark_model":
        argv = [
            binary,
            f"--graph={options.model}",
            f"--num_threads={options.threads}",
            f"--warmup_runs={options.warmup}",
            "--warmup_min_secs=0",
            "--report_peak_memory_footprint=true",
            f"--use_xnnpack={'true' if options.xnnpack else 'false'}",
        ]
        if options.duration is not None and options.min_runs:  # both floors, as MLPerf's rule: the tool's own semantics
            return [
                *argv,
                f"--num_runs={options.min_runs}",
                f"--min_secs={options.duration}",
                f"--max_secs={max(MIN_RUNS_MAX_SECS, 10 * options.duration)}",
            ]
        if options.duration is not None:
            return [*argv, "--num_runs=1", f"--min_secs={options.duration}", f"--max_secs={options.duration}"]
        return [*argv, f"--num_runs={options.runs}", "--min_secs=0"]
    argv = [binary, "-e", "cpu", "-x", str(options.threads), "-I"]  # -I: random inputs, no test-data dir
    if options.duration is not None:
        argv += ["-m", "duration", "-t", str(max(1, round(options.duration)))]
    else:
        argv += ["-m", "times", "-r", str(max(1, options.runs))]
    return [*argv, options.model]


def op_profile_document(mode: str, text: str | None, options: argparse.Namespace) -> dict[str, Any]:
    """The profile part of a tool-mode document: `profile` (an OpProfile dict parsed from benchmark_model's
    op-profiling tables, with the profiled run's own median) or `profile_unavailable` with the reason."""
    from edgekd.errors import EdgekdError
    from edgekd.profile.tflite_benchmark import parse_benchmark_output
    from edgekd.targets.adb.parsers import parse_benchmark_model

    if mode != "benchmark_model":
        return {"profile_unavailable": ORT_PERF_TEST_NO_PROFILE}
    if not text:
        return {"profile_unavailable": "the profiled benchmark_model run failed or printed nothing"}
    try:
        profile = parse_benchmark_output(
            text,
            model=str(options.model).rsplit("/", 1)[-1],
            runtime="tflite",
            requested=["XNNPACK"] if options.xnnpack else [],
        )
        summary = parse_benchmark_model(text).get("summary") or {}
    except EdgekdError as exc:
        return {"profile_unavailable": f"benchmark_model {PROFILE_FLAG}: {exc.message}"}
    profile.profiled_median_ms = summary.get("p50_ms") or summary.get("mean_ms")
    return {"profile": profile.to_dict()}


def tool_identity(binary: Path | None, key: str = "benchmark_model") -> dict[str, str]:
    """A tool binary an entry names (under `key`), by path and content: what its figures depend on."""
    if binary is None:
        return {}
    from edgekd.fileio import sha256_file

    digest = sha256_file(binary) if binary.is_file() else "missing"
    return {key: str(binary), f"{key}_sha256": digest}


def tool_check(name: str, binary: Path | None) -> list[Any]:
    """`edgekd targets doctor`'s check of the benchmark_model binary an entry names (none when it names none)."""
    from edgekd.bench.doctor import Check

    if binary is None:
        return []
    if binary.is_file():
        return [Check("benchmark_model", True, f"{binary}: TFLite per-op profiles (bench --profile) come from it")]
    return [
        Check(
            "benchmark_model",
            False,
            f"{binary} does not exist",
            f"build or download benchmark_model for the device, or remove benchmark_model from targets.{name}",
        )
    ]


class BenchmarkModelProfiler:
    """Per-op profiles of TFLite models from the user's benchmark_model binary, run on `target`."""

    def __init__(self, target: Target, binary: Path) -> None:
        self.target = target
        self.binary = binary
        self._remote: str | None = None  # the pushed binary, for the target's current session

    def handles(self, model_format: str) -> bool:
        return model_format == "tflite"

    def _push(self) -> str:
        """Push the binary (the target checks its sha256 and sends identical files once) and chmod it."""
        from edgekd.errors import BenchError, TargetError

        if not self.binary.is_file():
            raise BenchError(
                f"{self.target.name}: the benchmark_model binary {self.binary} does not exist",
                hint=f"build or download benchmark_model for the device and set benchmark_model "
                f"of targets.{self.target.name} in targets.toml, or remove the key",
            )
        remote = self.target.push(self.binary)
        if remote != self._remote:
            done = self.target.run(["chmod", "755", remote], timeout=30)
            if done.returncode != 0:
                raise TargetError(f"{self.target.name}: cannot make {remote} executable: {done.stderr.strip()}")
            self._remote = remote
        return remote

    def profile(self, remote_model: str, runner_argv: Sequence[str], timeout: float) -> dict[str, Any]:
        """Run benchmark_model with op profiling on the pushed model, with the runner's threads, warm-up,
        runs (or duration) and XNNPACK choice; its tables parsed, or why there is no profile."""
        options = runner_options(runner_argv)
        options.model = remote_model
        if options.shape:  # the tool would profile the model's declared shape, not the one asked for
            return {
                "profile_unavailable": f"benchmark_model cannot be given an input shape (--shape "
                f"{options.shape[0]}); no per-op profile"
            }
        argv = [*tool_argv("benchmark_model", self._push(), options), PROFILE_FLAG]
        done = self.target.run(argv, timeout)
        text = done.stdout + done.stderr
        if done.returncode != 0:
            tail = " ".join(text.strip().splitlines()[-3:])[:300]
            return {
                "profile_unavailable": f"benchmark_model {PROFILE_FLAG} on {self.target.name} exited with "
                f"status {done.returncode}: {tail or 'no output'}"
            }
        document = op_profile_document("benchmark_model", text, options)
        if "profile" in document:
            # Its median is another program's (the binary, not the runner's interpreter): shown, but not
            # compared with the runner's median as if it were the profiler's overhead.
            median = document["profile"].pop("profiled_median_ms", None)
            document["profile_note"] = (
                f"per-op rows from benchmark_model {PROFILE_FLAG} on {self.target.name} (a separate process; the "
                "timed figures are the runner's"
                + (f"; the tool's own median while profiling: {median:.4g} ms)" if median else ")")
            )
        return document
