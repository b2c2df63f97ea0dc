"""Stand-ins for TFLite's `benchmark_model` and ORT's `onnxruntime_perf_test` on the loopback phone.

There are no Android binaries here, so this script plays either tool (chosen by the name it is installed
under). It accepts the tools' documented flags, really times the model with the host's LiteRT / ONNX
Runtime, and prints the result in the tool's own output format (benchmark_model: TF 2.16 `INFO:` log
lines on stderr, C++ `%g`-style numbers; onnxruntime_perf_test: its summary and percentiles on stdout).
`write_standin(path, tool)` installs it with a shebang for this Python.

benchmark_model's `--enable_op_profiling=true` prints the op-profiling section in the tool's TF ≥ 2.9 format
(space-aligned `Run Order` / `Top by Computation Time` / `Summary by node type` tables, as in
tests/support/recordings/profile/efficientdet_lite0_int8_xnnpack_x86.txt): one row per node of the model;
with XNNPACK on, FULLY_CONNECTED / CONV_2D rows are XNNPACK operators (`Delegate/Fully Connected (NC, F32)
GEMM:n`) and the delegation log line is printed. LiteRT's Python interpreter has no per-op timer, so the
stand-in splits the measured mean evenly over the nodes: the format is the tool's, the per-op split is not.
"""

from __future__ import annotations

import itertools
import os
import resource
import statistics
import sys
import time
from pathlib import Path


def write_standin(path: Path, python: str = sys.executable) -> Path:
    """Copy this script to `path` (named benchmark_model or onnxruntime_perf_test), executable."""
    path.write_text(f"#!{python}\n" + Path(__file__).read_text())
    path.chmod(0o755)
    return path


def _g(value: float) -> str:
    return f"{value:g}"


def _flags(argv: list[str]) -> dict[str, str]:
    flags = {}
    for arg in argv:
        if arg.startswith("--") and "=" in arg:
            key, value = arg[2:].split("=", 1)
            flags[key] = value
    return flags


def _count_line(times_us: list[float]) -> str:
    ordered = sorted(times_us)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]
    std = statistics.pstdev(times_us) if len(times_us) > 1 else 0.0
    return (
        f"count={len(times_us)} first={int(times_us[0])} curr={int(times_us[-1])} min={int(ordered[0])} "
        f"max={int(ordered[-1])} avg={_g(statistics.fmean(times_us))} std={int(std)} p5={int(pick(0.05))} "
        f"median={int(pick(0.5))} p95={int(pick(0.95))}"
    )


#: XNNPACK's operator names for the builtins the stand-in delegates when --use_xnnpack=true.
XNNPACK_OPERATORS = {"FULLY_CONNECTED": "Fully Connected (NC, F32) GEMM", "CONV_2D": "Convolution (NHWC, F32) GEMM"}
_HEADER = (
    "                                     [node type]          [first]        [avg ms]            [%]          "
    "[cdf%]          [mem KB]        [times called]  [Name]"
)


def _nodes(interpreter, xnnpack: bool) -> list[tuple[str, str]]:
    """(node type, name) per executed node, as the tool's Run Order lists them."""
    names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    nodes = []
    for op in interpreter._get_ops_details():  # the only op listing LiteRT's Python API has
        if op["op_name"] == "DELEGATE":
            continue
        index = len(nodes)
        if xnnpack and op["op_name"] in XNNPACK_OPERATORS:
            operator = XNNPACK_OPERATORS[op["op_name"]]
            nodes.append((operator, f"Delegate/{operator}:{index}"))
        else:
            output = names.get(op["outputs"][0], "?") if len(op["outputs"]) else "?"
            nodes.append((op["op_name"], f"[{output}]:{op['index']}"))
    return nodes


def _op_profile(log, nodes: list[tuple[str, str]], measured: list[float]) -> None:
    """The tool's op-profiling section for the regular runs (even split of the mean: see the module doc)."""
    mean_ms = statistics.fmean(measured) / 1000.0
    each = mean_ms / max(1, len(nodes))
    share = 100.0 / max(1, len(nodes))

    def rows(items: list[tuple[str, str]]) -> list[str]:
        return [
            f"{node_type:>48}{each:>17.3f}{each:>16.3f}{share:>14.3f}%{share * (i + 1):>15.3f}%"
            f"{0.0:>18.3f}{1:>17}       {name}"
            for i, (node_type, name) in enumerate(items)
        ]

    log("Operator-wise Profiling Info for Regular Benchmark Runs:")
    lines = [
        "============================== Run Order ==============================",
        _HEADER,
        *rows(nodes),
        "",
        "============================== Top by Computation Time ==============================",
        _HEADER,
        *rows(nodes),
        "",
        f"Number of nodes executed: {len(nodes)}",
    ]
    types: dict[str, int] = {}
    for node_type, _ in nodes:
        types[node_type] = types.get(node_type, 0) + 1
    lines += [
        "============================== Summary by node type ==============================",
        (
            "                                     [Node type]          [count]         [avg ms]          [avg %]"
            "         [cdf %]       [mem KB]        [times called]"
        ),
    ]
    total = 0.0
    for node_type, count in types.items():
        total += share * count
        lines.append(
            f"{node_type:>48}{count:>17}{each * count:>17.3f}{share * count:>16.3f}%{total:>15.3f}%"
            f"{0.0:>15.3f}{count:>17}"
        )
    lines += [
        "",
        f"Timings (microseconds): {_count_line(measured)}",
        "Memory (bytes): count=0",
        f"{len(nodes)} nodes observed",
        "",
        "",
    ]
    print("\n".join(lines), file=sys.stderr, flush=True)


def benchmark_model(argv: list[str]) -> int:
    flags = _flags(argv)
    log = lambda text="": print(f"INFO: {text}" if text else "", file=sys.stderr, flush=True)
    graph, threads = flags.get("graph", ""), int(flags.get("num_threads", "-1"))
    runs, warmup = int(flags.get("num_runs", "50")), int(flags.get("warmup_runs", "1"))
    log("STARTING!")
    log("Log parameter values verbosely: [0]")
    log(f"Min num runs: [{runs}]")
    log(f"Num threads: [{threads}]")
    log(f"Min warmup runs: [{warmup}]")
    log(f"Graph: [{graph}]")
    log(f"#threads used for CPU inference: [{threads}]")
    if not os.path.isfile(graph):
        print(f"ERROR: Could not open '{graph}'.", file=sys.stderr)
        print(f"ERROR: Failed to mmap model {graph}", file=sys.stderr)
        print("ERROR: Benchmarking failed.", file=sys.stderr)
        return 1
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    log(f"Loaded model {graph}")
    started = time.perf_counter()
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=graph, num_threads=max(1, threads))
    xnnpack = flags.get("use_xnnpack", "true") == "true"
    if xnnpack:
        log("Created TensorFlow Lite XNNPACK delegate for CPU.")
    interpreter.allocate_tensors()
    profiling = flags.get("enable_op_profiling") == "true"
    if profiling:
        log("Enable op profiling: [1]")
    nodes = _nodes(interpreter, xnnpack) if profiling else []
    delegated = sum(1 for _, name in nodes if name.startswith("Delegate/"))
    if delegated:
        log(
            f"Replacing {delegated} out of {len(nodes)} node(s) with delegate (TfLiteXNNPackDelegate) node, "
            f"yielding {1 if delegated == len(nodes) else 2} partitions for the whole graph."
        )
    init_us = (time.perf_counter() - started) * 1e6
    rss_init = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    log(f"The input model file size (MB): {_g(os.path.getsize(graph) / 1e6)}")
    log(f"Initialized session in {init_us / 1000:.3f}ms.")
    rng = np.random.default_rng(0)
    for detail in interpreter.get_input_details():
        info = np.iinfo(detail["dtype"]) if np.issubdtype(detail["dtype"], np.integer) else None
        data = rng.integers(info.min, info.max, detail["shape"]) if info else rng.standard_normal(detail["shape"])
        interpreter.set_tensor(detail["index"], data.astype(detail["dtype"]))

    def timed(count: int) -> list[float]:
        times = []
        for _ in range(count):
            begin = time.perf_counter()
            interpreter.invoke()
            times.append((time.perf_counter() - begin) * 1e6)
        return times

    log(
        f"Running benchmark for at least {warmup} iterations and at least 0.5 seconds but terminate if "
        "exceeding 150 seconds."
    )
    warm = timed(max(1, warmup))
    log(_count_line(warm))
    log()
    log(
        f"Running benchmark for at least {runs} iterations and at least {flags.get('min_secs', '1')} seconds but "
        "terminate if exceeding 150 seconds."
    )
    measured = timed(max(1, runs))
    log(_count_line(measured))
    log()
    log(
        f"Inference timings in us: Init: {int(init_us)}, First inference: {int(warm[0])}, "
        f"Warmup (avg): {_g(statistics.fmean(warm))}, Inference (avg): {_g(statistics.fmean(measured))}"
    )
    rss_end = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    log(
        "Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the "
        "actual memory footprint of the model at runtime. Take the information at your discretion."
    )
    log(
        f"Memory footprint delta from the start of the tool (MB): init={_g((rss_init - rss_start) / 1024)} "
        f"overall={_g((rss_end - rss_start) / 1024)}"
    )
    if flags.get("report_peak_memory_footprint") == "true":
        log(f"Overall peak memory footprint (MB) via periodic monitoring: {_g(rss_end / 1024)}")
    if profiling:
        _op_profile(log, nodes, measured)
    return 0


def onnxruntime_perf_test(argv: list[str]) -> int:
    options, model = {}, argv[-1] if argv else ""
    for flag, value in itertools.pairwise(argv):
        if flag in ("-x", "-r", "-m", "-t", "-e"):
            options[flag] = value
    import numpy as np
    import onnxruntime as ort

    threads = int(options.get("-x", "0"))
    print(f"Setting intra_op_num_threads to {threads}")
    started = time.perf_counter()
    settings = ort.SessionOptions()
    settings.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(model, settings, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - printed like the tool does, then a failing exit
        print(f"Load Model from {model} failed:{exc}")
        return 1
    created = time.perf_counter() - started
    feeds = {
        i.name: np.random.default_rng(0)
        .standard_normal([d if isinstance(d, int) else 1 for d in i.shape])
        .astype(np.float32)
        for i in session.get_inputs()
    }
    begin = time.perf_counter()
    session.run(None, feeds)
    first_ms = int((time.perf_counter() - begin) * 1000)
    times, run_start = [], time.perf_counter()
    for _ in range(int(options.get("-r", "1000"))):
        begin = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - begin)
    run_s = time.perf_counter() - run_start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"Session creation time cost: {_g(created)} s")
    print(f"First inference time cost: {first_ms} ms")
    print(f"Total inference time cost: {_g(sum(times))} s")
    print(f"Total inference requests: {len(times)}")
    print(f"Average inference time cost: {_g(sum(times) / len(times) * 1000)} ms")
    print(f"Total inference run time: {_g(run_s)} s")
    print(f"Number of inferences per second: {_g(len(times) / run_s)} ")
    print("Avg CPU usage: 97 %")
    print(f"Peak working set size: {peak} bytes")
    print("Avg CPU usage:97")
    print(f"Peak working set size:{peak}")
    print(f"Runs:{len(times)}")
    ordered = sorted(times)
    for label, q in (
        ("Min", 0.0),
        ("Max", 1.0),
        ("P50", 0.5),
        ("P90", 0.9),
        ("P95", 0.95),
        ("P99", 0.99),
        ("P999", 0.999),
    ):
        print(f"{label} Latency: {_g(ordered[min(len(ordered) - 1, int(q * len(ordered)))])} s")
    return 0


if __name__ == "__main__":
    tool = Path(sys.argv[0]).name
    sys.exit(benchmark_model(sys.argv[1:]) if "benchmark_model" in tool else onnxruntime_perf_test(sys.argv[1:]))
