"""Per-op profile of an ONNX model with ONNX Runtime's own profiler, on this machine.

Two sessions with the same options run the same inputs in alternation (so machine load hits both alike):
one plain, giving the end-to-end median the per-op rows are compared with, and one with
`enable_profiling`, whose trace `ort_trace.summarize_ort_trace` turns into rows. The profiler's own cost
is stated as the profiled vs plain median. Measured (bench/results/profile.json, x86, one thread): about
5-7 µs per node per inference, i.e. +13 % on a 0.5 ms 9-node model and +52 % on a 0.12 ms one, so per-op
rows of tiny models overstate their nodes a little; end-to-end figures must come from unprofiled runs.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from edgekd.errors import ModelError, UsageError
from edgekd.profile.ort_trace import summarize_ort_trace
from edgekd.profile.schema import OpProfile, OpRow

GraphOptimization = Literal["all", "extended", "basic", "none"]
_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


def _session_options(threads: int, optimization: GraphOptimization, profile_prefix: str | None) -> Any:
    import onnxruntime as ort

    levels = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    }
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = levels[optimization]
    options.log_severity_level = 3
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return options


def random_inputs(session: Any, seed: int = 0) -> tuple[dict[str, Any], list[str]]:
    """Seeded inputs for every model input; a symbolic leading (batch) dimension becomes 1, noted."""
    import numpy as np

    rng = np.random.default_rng(seed)
    feeds, notes = {}, []
    for spec in session.get_inputs():
        shape = list(spec.shape)
        for axis, dim in enumerate(shape):
            if isinstance(dim, int) and dim > 0:
                continue
            if axis != 0:
                raise UsageError(
                    f"input {spec.name!r} has a symbolic dimension {dim!r} at axis {axis} (shape {spec.shape})",
                    hint="pass inputs of the size to profile",
                )
            shape[axis] = 1
            notes.append(f"input {spec.name}: symbolic batch dimension {dim!r} profiled at 1")
        dtype = _DTYPES.get(spec.type)
        if dtype is None:
            raise UsageError(
                f"input {spec.name!r} has type {spec.type}, which random inputs do not cover",
                hint="pass the inputs to profile",
            )
        if dtype.startswith(("int", "uint")):
            feeds[spec.name] = rng.integers(0, 10, size=shape).astype(dtype)
        else:
            feeds[spec.name] = rng.standard_normal(shape).astype(dtype)
    return feeds, notes


def profile_onnx(
    model_path: str | Path,
    inputs: dict[str, Any] | None = None,
    runs: int = 50,
    threads: int = 1,
    *,
    warmup: int = 5,
    providers: list[str] | None = None,
    optimization: GraphOptimization = "all",
) -> OpProfile:
    """Profile `model_path` with ONNX Runtime: per-node ms per inference (interquartile mean) over `runs` runs.

    `providers` is the execution-provider list asked for (default: CPU only); providers this onnxruntime
    build does not have are left out and named in `notes`, and `providers` of the result says what the
    session really used, so the placement verdict can see a fallback.
    """
    import onnxruntime as ort

    path = Path(model_path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}", hint="give the path of an .onnx file")
    if runs < 1 or warmup < 0 or threads < 1:
        raise UsageError(f"runs must be ≥ 1, warmup ≥ 0 and threads ≥ 1 (got {runs}, {warmup}, {threads})")
    requested = list(providers or ["CPUExecutionProvider"])
    available = ort.get_available_providers()
    usable = [p for p in requested if p in available]
    notes = [
        f"{p} is not in this onnxruntime build (available: {', '.join(available)})"
        for p in requested
        if p not in available
    ]
    if "CPUExecutionProvider" not in usable:
        usable.append("CPUExecutionProvider")  # ORT always falls back to it; say so rather than hide it
    with tempfile.TemporaryDirectory(prefix="edgekd-ortprof-") as work:
        try:
            plain = ort.InferenceSession(str(path), _session_options(threads, optimization, None), providers=usable)
            profiled = ort.InferenceSession(
                str(path), _session_options(threads, optimization, f"{work}/ort"), providers=usable
            )
        except Exception as exc:  # noqa: BLE001 - ORT raises its own Fail/InvalidGraph types with the reason
            raise ModelError(f"onnxruntime cannot load {path.name}: {str(exc).splitlines()[0]}") from None
        if inputs is None:
            inputs, input_notes = random_inputs(plain)
            notes += input_notes
        plain_ns, profiled_ns = [], []
        for index in range(warmup + runs):
            for session, samples in ((plain, plain_ns), (profiled, profiled_ns)):
                start = time.perf_counter_ns()
                session.run(None, inputs)
                if index >= warmup:
                    samples.append(time.perf_counter_ns() - start)
        trace_file = profiled.end_profiling()
        events = json.loads(Path(trace_file).read_text())
    summary = summarize_ort_trace(events, warmup_runs=warmup)
    median = statistics.median(plain_ns) / 1e6
    profiled_median = statistics.median(profiled_ns) / 1e6
    return OpProfile(
        runtime="ort",
        model=path.name,
        source=f"onnxruntime {ort.__version__} profiler",
        rows=[OpRow(**row) for row in summary["rows"]],
        runs=summary["runs"],
        statistic=summary["statistic"],
        requested=requested,
        providers=list(profiled.get_providers()),
        median_ms=median,
        profiled_median_ms=profiled_median,
        overhead=overhead_text(profiled_median, median),
        notes=notes + [f"graph optimization: {optimization}"],
    )


def overhead_text(profiled_ms: float, plain_ms: float) -> str:
    """The profiler's cost in one phrase with the figures."""
    return (
        f"profiled median {profiled_ms:.3f} ms vs unprofiled {plain_ms:.3f} ms "
        f"({(profiled_ms / plain_ms - 1) * 100:+.1f} %)"
    )
