#!/usr/bin/env python3
"""edgekd device runner: load one model, time its inference, print one JSON document.

This single file is copied to the device (a Raspberry Pi, a phone with Python, this machine). It needs
only the standard library, numpy and one of ai_edge_litert / tflite_runtime / onnxruntime, runs on
Python >= 3.9 and never imports edgekd. The host computes statistics; the runner only measures.

Contract (schema "edgekd.run/1"):
    python3 edgekd_runner.py --model M --runtime auto|litert|tflite|ort --threads N --warmup W --runs R
        [--duration S] [--windows K] [--inputs in.npz] [--outputs out.npz] [--no-xnnpack] [--pin 0,1]
        [--seed 0] [--baseline] [--profile] [--min-runs N (with --duration)]
prints {"schema": "edgekd.run/1", "runtime", "versions", "init_ms", "first_ms", "latencies_ns",
"peak_rss_kb", "env", ...} on success, or {"schema": "edgekd.run/1", "error": {"kind", "message", "hint"}}
and exits with status 3 on a problem the user can fix. With --profile, after the timed (unprofiled) loop a
second session runs warm-up + runs under the runtime's own per-op profiler and the document adds
"op_profile" (per-node rows, see summarize_ort_trace), "profile_latencies_ns", "requested_providers" and
"providers"; a runtime without a profiler gives "profile_unavailable": the reason.
"""

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from array import array as sample_array

SCHEMA = "edgekd.run/1"
ERROR_EXIT = 3
PACKAGES = {"litert": "ai-edge-litert", "tflite": "tflite-runtime", "ort": "onnxruntime"}
MAX_RUNS = 1000000  # 8 MB of int64 samples and about 12 MB of JSON: far beyond any useful benchmark
#: Profiled runs at most (a trace holds three events per node and run; more adds nothing to the per-op means).
PROFILE_MAX_RUNS = 1000
NUMPY2_FIX = 'pip install "numpy<2" on the device, or pip install ai-edge-litert (built for numpy 2) instead'


class RunnerError(Exception):
    """A problem reported as a JSON error document. kind is a stable machine-readable word."""

    def __init__(self, kind, message, hint=None):
        Exception.__init__(self, message)
        self.kind = kind
        self.message = message
        self.hint = hint


class _JsonArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        raise RunnerError("bad_arguments", message, "run with --help for the runner's options")


# --- peak memory and environment (read outside the timed region) -----------------------------------


def ru_maxrss_kb():
    """getrusage's peak RSS in KiB (bytes on macOS). On Linux it also holds the launching process's
    high-water mark from before exec (the kernel keeps it across exec), so VmHWM is preferred."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak // 1024) if sys.platform == "darwin" else int(peak)


def proc_status_kb(field):
    """A `VmHWM`/`VmRSS` line of /proc/self/status in KiB, or None where there is no procfs."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def read_text(path):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return None


def thermal_zones():
    """The thermal zones' raw contents {"thermal_zone0": {"type": ..., "temp": millidegrees as text}}; the host
    decodes them (edgekd.targets.thermal.zone_temperatures, the one decoder for every target)."""
    zones = {}
    base = "/sys/class/thermal"
    try:
        names = sorted(name for name in os.listdir(base) if name.startswith("thermal_zone"))
    except OSError:
        return zones
    for zone in names:
        zones[zone] = {
            "type": read_text(os.path.join(base, zone, "type")),
            "temp": read_text(os.path.join(base, zone, "temp")),
        }
    return zones


def cpu_model():
    text = read_text("/proc/cpuinfo") or ""
    for key in ("model name", "Model", "Hardware", "cpu model", "Processor"):
        for line in text.splitlines():
            if line.split(":")[0].strip() == key and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.processor() or None


def affinity():
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def cpu_frequencies_khz(cores):
    """Current frequency per core we may run on, from cpufreq (None where it is not exposed)."""
    freqs = {}
    for core in cores or []:
        raw = read_text("/sys/devices/system/cpu/cpu%d/cpufreq/scaling_cur_freq" % core)
        if raw and raw.isdigit():
            freqs[str(core)] = int(raw)
    return freqs


def environment():
    cores = affinity()
    env = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "system": platform.system(),
        "release": platform.release(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "affinity": cores,
        "governor": read_text("/sys/devices/system/cpu/cpu%d/cpufreq/scaling_governor" % ((cores or [0])[0])),
        "freq_khz": cpu_frequencies_khz(cores),
        "thermal_zones": thermal_zones(),
    }
    try:
        env["loadavg"] = list(os.getloadavg())
    except (AttributeError, OSError):
        env["loadavg"] = None
    return env


# --- runtimes: each exposes inputs(), set_inputs(list), invoke(), outputs() -------------------------


class TfliteSession(object):
    """ai_edge_litert or tflite_runtime; XNNPACK off means the builtin resolver without default delegates."""

    def __init__(self, module, model, threads, xnnpack):
        kwargs = {"model_path": model, "num_threads": threads}
        resolver = getattr(module, "OpResolverType", None)
        if not xnnpack:
            if resolver is None:
                raise RunnerError(
                    "unsupported_option",
                    "this interpreter cannot disable XNNPACK",
                    "upgrade the runtime or benchmark with XNNPACK on",
                )
            kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            self.interpreter = module.Interpreter(**kwargs)
            self.interpreter.allocate_tensors()
        except (SystemError, ImportError, AttributeError) as exc:  # the extension itself is broken here
            raise runtime_broken(getattr(module, "__name__", "the runtime"), exc) from None
        except (ValueError, RuntimeError) as exc:
            raise RunnerError(
                "model_corrupt",
                "the interpreter cannot load %s: %s" % (model, exc),
                "re-export the model; check it is a complete .tflite file",
            ) from None
        self.module, self.model, self.kwargs = module, model, dict(kwargs)
        self.input_details = self.interpreter.get_input_details()
        self.output_details = self.interpreter.get_output_details()
        self.invoke = self.interpreter.invoke  # bound once: nothing but the call sits in the timed loop

    def profile(self, warmup, runs):
        """Op by op: the interpreter has no per-op profiler, so every operator runs as a model of its own (fed
        the values it sees in the whole model) and its median invoke, less the invoke cost of a model with no
        operator, is its time. Whole-model timings of the same session are recorded beside the rows."""
        return tflite_op_by_op(self, warmup, runs)

    def inputs(self):
        specs = []
        for detail in self.input_details:
            scale, zero_point = detail.get("quantization", (0.0, 0))
            shape = [int(d) for d in detail.get("shape_signature", detail["shape"])]
            specs.append(
                {
                    "name": detail["name"],
                    "shape": [d if d > 0 else None for d in shape],
                    "dtype": _dtype_name(detail["dtype"]),
                    "quant": {"scale": float(scale), "zero_point": int(zero_point)} if scale else None,
                }
            )
        return specs

    def set_inputs(self, arrays):
        for detail, array in zip(self.input_details, arrays):
            if list(array.shape) != list(detail["shape"]):
                self.interpreter.resize_tensor_input(detail["index"], list(array.shape))
                self.interpreter.allocate_tensors()
            self.interpreter.set_tensor(detail["index"], array)

    def outputs(self):
        return [(d["name"], self.interpreter.get_tensor(d["index"])) for d in self.output_details]


class OrtSession(object):
    """onnxruntime with a fixed thread count; XNNPACK only where the build has its execution provider."""

    xnnpack_note = "this onnxruntime build has no XNNPACK execution provider; CPU provider used"

    def __init__(self, module, model, threads, xnnpack):
        options = module.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = module.ExecutionMode.ORT_SEQUENTIAL
        providers = ["CPUExecutionProvider"]
        self.xnnpack = bool(xnnpack and "XnnpackExecutionProvider" in module.get_available_providers())
        if self.xnnpack:
            providers.insert(0, ("XnnpackExecutionProvider", {"intra_op_num_threads": threads}))
        # what the session asks for (XNNPACK only where the build has it: a build without it is a note, above)
        self.requested = [p if isinstance(p, str) else p[0] for p in providers]
        self.module, self.model, self.options, self.providers = module, model, options, providers
        try:
            self.session = module.InferenceSession(model, sess_options=options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own Fail/InvalidProtobuf/InvalidGraph types: re-raised typed
            raise RunnerError(
                "model_corrupt",
                "onnxruntime cannot load %s: %s" % (model, exc),
                "re-export the model; check it is a complete .onnx file",
            ) from None
        self.feeds = {}
        self.results = None

    def profile(self, warmup, runs):
        """A second session with the same options and ORT's profiler on: warm-up + runs timed end to end,
        then the trace summarised per node. The trace file and its folder (ours) are removed after reading."""
        module = self.module
        options = module.SessionOptions()
        options.intra_op_num_threads = self.options.intra_op_num_threads
        options.inter_op_num_threads = 1
        options.execution_mode = module.ExecutionMode.ORT_SEQUENTIAL
        options.enable_profiling = True
        folder = tempfile.mkdtemp(prefix="edgekd-ortprof-", dir=_work_dir())
        options.profile_file_prefix = os.path.join(folder, "ort")
        trace = None
        try:
            session = module.InferenceSession(self.model, sess_options=options, providers=self.providers)
            run, feeds = session.run, self.feeds
            clock = time.perf_counter_ns
            for _ in range(warmup):
                run(None, feeds)
            latencies = sample_array("q", bytes(8 * runs))
            for slot in range(runs):
                t0 = clock()
                run(None, feeds)
                latencies[slot] = clock() - t0
            trace = session.end_profiling()
            with open(trace) as handle:
                events = json.load(handle)
        finally:
            for name in os.listdir(folder):
                os.remove(os.path.join(folder, name))
            os.rmdir(folder)
        return {
            "op_profile": summarize_ort_trace(events, warmup_runs=warmup),
            "profile_latencies_ns": latencies.tolist(),
            "requested_providers": self.requested,
            "providers": list(session.get_providers()),
        }

    def inputs(self):
        specs = []
        for node in self.session.get_inputs():
            # a symbolic dimension is its name ("height") or None: resolve_shapes() decides it, never 1 silently
            shape = [
                d if isinstance(d, int) and d > 0 else (d if isinstance(d, str) and d else None) for d in node.shape
            ]
            specs.append(
                {"name": node.name, "shape": shape, "dtype": _ORT_TYPES.get(node.type, node.type), "quant": None}
            )
        return specs

    def set_inputs(self, arrays):
        self.feeds = dict((node.name, array) for node, array in zip(self.session.get_inputs(), arrays))
        run, feeds = self.session.run, self.feeds

        def invoke():
            self.results = run(None, feeds)

        self.invoke = invoke

    def outputs(self):
        return [(node.name, value) for node, value in zip(self.session.get_outputs(), self.results or [])]


_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


def _dtype_name(dtype):
    import numpy as np

    return np.dtype(dtype).name


def runtime_broken(package, exc):
    """The RunnerError for a runtime that is installed but cannot work here (a wheel built for numpy 1.x
    under numpy 2 raises SystemError, at import or when the interpreter is made), naming the fix."""
    detail = "%s: %s" % (type(exc).__name__, str(exc).strip().splitlines()[-1] if str(exc).strip() else "")
    numpy_version = _numpy_version()
    if package.startswith("tflite_runtime") and numpy_version and int(numpy_version.split(".")[0]) >= 2:
        return RunnerError(
            "runtime_broken",
            "tflite-runtime cannot run with numpy %s on this device (it was built "
            "for numpy 1.x): %s" % (numpy_version, detail),
            NUMPY2_FIX,
        )
    return RunnerError(
        "runtime_broken",
        "%s is installed but fails here (numpy %s, python %s): %s"
        % (package, numpy_version or "?", platform.python_version(), detail),
        "reinstall it for this device's Python and numpy (pip install --force-reinstall %s)"
        % _PIP_NAMES.get(package.split(".")[0], package),
    )


def _numpy_version():
    module = sys.modules.get("numpy")
    return getattr(module, "__version__", None)


def import_runtime(name, model):
    """Resolve --runtime (auto picks by suffix) to (name, module, version); name the package if missing.

    A runtime that is present but broken (any exception at import, e.g. SystemError from a wheel built for
    numpy 1.x) is a `runtime_broken` error naming the fix, not a traceback."""
    wanted = name
    if name == "auto":
        wanted = "ort" if model.endswith(".onnx") else "litert"
    candidates = [wanted] + (["tflite"] if name == "auto" and wanted == "litert" else [])
    broken = None
    for candidate in candidates:
        try:
            if candidate == "litert":
                import ai_edge_litert as package
                from ai_edge_litert import interpreter as module
            elif candidate == "tflite":
                import tflite_runtime as package
                from tflite_runtime import interpreter as module
            else:
                import onnxruntime as module

                package = module
        except ImportError as exc:
            if getattr(exc, "name", None) and str(exc.name).split(".")[0] == _MODULES[candidate]:
                continue  # not installed: try the next candidate
            broken = broken or runtime_broken(_MODULES[candidate], exc)  # installed, but a dependency fails
            continue
        except Exception as exc:  # noqa: BLE001 - SystemError, AttributeError...: the wheel does not fit here
            broken = broken or runtime_broken(_MODULES[candidate], exc)
            continue
        return candidate, module, getattr(package, "__version__", "unknown")
    if broken is not None:
        raise broken
    packages = " or ".join(PACKAGES[c] for c in candidates)
    raise RunnerError(
        "runtime_missing",
        "runtime %s is not installed on this device (python %s)" % ("/".join(candidates), platform.python_version()),
        "pip install %s on the device" % packages,
    )


_MODULES = {"litert": "ai_edge_litert", "tflite": "tflite_runtime", "ort": "onnxruntime"}
_PIP_NAMES = dict((_MODULES[key], PACKAGES[key]) for key in _MODULES)


def open_session(runtime, module, model, threads, xnnpack):
    """A session for `model`. A backend given to main() (the host's torch runner) opens its own."""
    if hasattr(module, "open_session"):
        return module.open_session(model, threads, xnnpack)
    if runtime == "ort":
        return OrtSession(module, model, threads, xnnpack)
    return TfliteSession(module, model, threads, xnnpack)


# --- TFLite op by op -----------------------------------------------------------------------------------
#: Wall time spent timing one operator at most (runs are cut down for slow operators).
OP_BUDGET_NS = 300000000
#: Wall time spent warming one operator up at most: a slow operator stops warming after it (the requested warm-up
#: count times a slow operator was unbounded), once it has had OP_MIN_WARMUP runs (or all those requested).
OP_WARMUP_BUDGET_NS = 100000000
OP_MIN_WARMUP = 2
TFLITE_OP_STATISTIC = "median, invoke overhead subtracted"


def _tflite_schema(module):
    """LiteRT's flatbuffer schema and flatbuffers, or why op-by-op profiling cannot run here."""
    if not module.__name__.startswith("ai_edge_litert"):
        return None, "op-by-op profiling needs ai-edge-litert's flatbuffer schema (tflite-runtime has none)"
    try:
        import flatbuffers
        from ai_edge_litert import schema_py_generated as schema
    except ImportError as exc:
        return None, "op-by-op profiling needs %s" % exc
    return (schema, flatbuffers), None


def _builtin_names(schema):
    return dict((value, key) for key, value in vars(schema.BuiltinOperator).items() if not key.startswith("_"))


def _pack(schema, flatbuffers, model, subgraph, buffers):
    """A model of `model`'s operator codes with `subgraph` and its `buffers` only, as .tflite bytes."""
    out = schema.ModelT()
    out.version, out.description = model.version, "edgekd op-by-op profile"
    out.operatorCodes, out.subgraphs, out.buffers = model.operatorCodes, [subgraph], buffers
    builder = flatbuffers.Builder(1024)
    builder.Finish(out.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _single_op_subgraph(schema, model, graph, op):
    """The subgraph of `op` alone: the tensors it touches (constants keep their buffers); its variable inputs
    are the subgraph's inputs, its outputs the outputs. Returns (subgraph, its buffers, the fed tensors'
    indexes in the whole model)."""
    touched = [int(t) for t in list(op.inputs) + list(op.outputs) + list(op.intermediates or []) if int(t) >= 0]
    order = list(dict.fromkeys(touched))
    remap = dict((old, new) for new, old in enumerate(order))
    buffers, tensors = [schema.BufferT()], []
    for old in order:
        tensor = graph.tensors[old]
        source = model.buffers[tensor.buffer] if tensor.buffer else None
        copy = schema.TensorT()
        for key, value in vars(tensor).items():
            setattr(copy, key, value)
        if source is not None and source.data is not None and len(source.data):
            buffers.append(source)
            copy.buffer = len(buffers) - 1
        else:
            copy.buffer = 0
        tensors.append(copy)
    fed = [old for old in dict.fromkeys(int(t) for t in op.inputs if int(t) >= 0) if not tensors[remap[old]].buffer]
    single = schema.OperatorT()
    for key, value in vars(op).items():
        setattr(single, key, value)
    single.inputs = [remap[int(t)] if int(t) >= 0 else -1 for t in op.inputs]
    single.outputs = [remap[int(t)] for t in op.outputs]
    single.intermediates = [remap[int(t)] for t in (op.intermediates or [])] or None
    subgraph = schema.SubGraphT()
    subgraph.tensors, subgraph.operators, subgraph.name = tensors, [single], "op"
    subgraph.inputs, subgraph.outputs = [remap[old] for old in fed], list(single.outputs)
    return subgraph, buffers, fed


def _median_invoke_ns(invoke, warmup, runs, clock=time.perf_counter_ns):
    """(median ns of one invoke, runs timed): up to `warmup` runs first, within OP_WARMUP_BUDGET_NS (at least
    OP_MIN_WARMUP of them), then up to `runs` timed ones within OP_BUDGET_NS (at least 5)."""
    started = clock()
    for done in range(warmup):
        if done >= OP_MIN_WARMUP and clock() - started >= OP_WARMUP_BUDGET_NS:
            break
        invoke()
    t0 = clock()
    invoke()
    once = max(1, clock() - t0)
    runs = max(5, min(runs, OP_BUDGET_NS // once))
    samples = sample_array("q", bytes(8 * runs))
    for slot in range(runs):
        t0 = clock()
        invoke()
        samples[slot] = clock() - t0
    ordered = sorted(samples)
    return float(ordered[len(ordered) // 2]), runs


def _interpreter_for(session, content):
    kwargs = dict(session.kwargs)
    kwargs.pop("model_path", None)
    interpreter = session.module.Interpreter(model_content=content, **kwargs)
    interpreter.allocate_tensors()
    return interpreter


def _placement(interpreter, xnnpack):
    """Where a one-operator model ran: a DELEGATE node in the plan means the default delegate (XNNPACK) took
    the operator; without one it ran on TFLite's builtin kernels."""
    wrapper = getattr(interpreter, "_interpreter", None)
    if wrapper is None or not hasattr(wrapper, "NodeName"):
        return "?"
    names = [wrapper.NodeName(i) for i in range(wrapper.NumNodes())]
    return "XNNPACK" if xnnpack and "DELEGATE" in names else "CPU"


def _tensor_values(session):
    """Every tensor's value in one invoke of the whole model (the inputs the session holds)."""
    kwargs = dict(session.kwargs)
    kwargs["experimental_preserve_all_tensors"] = True
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LiteRT warns that preserving tensors is for debugging: it is
        whole = session.module.Interpreter(**kwargs)
    whole.allocate_tensors()
    for detail in session.input_details:
        whole.set_tensor(detail["index"], session.interpreter.get_tensor(detail["index"]))
    whole.invoke()
    values = {}
    for detail in whole.get_tensor_details():
        try:
            values[detail["index"]] = whole.get_tensor(detail["index"])
        except ValueError:  # a tensor without data (an optional input)
            continue
    return values


def tflite_op_by_op(session, warmup, runs):
    tools, reason = _tflite_schema(session.module)
    if tools is None:
        raise RunnerError("profile_unavailable", reason)
    schema, flatbuffers = tools
    with open(session.model, "rb") as handle:
        model = schema.ModelT.InitFromPackedBuf(bytearray(handle.read()), 0)
    if len(model.subgraphs) != 1:
        raise RunnerError(
            "profile_unavailable",
            "op-by-op profiling covers single-subgraph models; this one has %d (control flow)" % len(model.subgraphs),
        )
    graph, names = model.subgraphs[0], _builtin_names(schema)
    xnnpack = "experimental_op_resolver_type" not in session.kwargs
    values = _tensor_values(session)
    baseline = None
    rows = []
    for op in graph.operators:
        subgraph, buffers, fed = _single_op_subgraph(schema, model, graph, op)
        interpreter = _interpreter_for(session, _pack(schema, flatbuffers, model, subgraph, buffers))
        for detail, tensor in zip(interpreter.get_input_details(), fed):
            interpreter.set_tensor(detail["index"], values[tensor])
        if baseline is None:  # the same tensors with no operator: the cost of invoke itself
            subgraph.operators, subgraph.outputs = [], list(subgraph.inputs)
            empty = _interpreter_for(session, _pack(schema, flatbuffers, model, subgraph, buffers))
            for detail, tensor in zip(empty.get_input_details(), fed):
                empty.set_tensor(detail["index"], values[tensor])
            baseline, _ = _median_invoke_ns(empty.invoke, warmup, runs)
        median, measured = _median_invoke_ns(interpreter.invoke, warmup, runs)
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        op_type = names.get(builtin, "UNKNOWN_%d" % builtin)
        if op_type == "CUSTOM" and code.customCode:
            op_type = code.customCode.decode() if isinstance(code.customCode, bytes) else str(code.customCode)
        name = graph.tensors[int(op.outputs[0])].name
        rows.append(
            {
                "op": name.decode() if isinstance(name, bytes) else str(name),
                "op_type": op_type,
                "provider": _placement(interpreter, xnnpack),
                "ms": max(0.0, median - baseline) / 1e6,
                "calls": 1.0,
                "runs": measured,
            }
        )
    whole, measured = _median_invoke_ns(session.invoke, warmup, runs)
    version = getattr(sys.modules.get("ai_edge_litert"), "__version__", "")
    return {
        "op_profile": {
            "rows": rows,
            "runs": measured,
            "statistic": TFLITE_OP_STATISTIC,
            "invoke_overhead_ms": (baseline or 0.0) / 1e6,
            "whole_model_median_ms": whole / 1e6,
        },
        "profile_source": (
            "LiteRT %s op by op (each operator timed as a model of its own; the Python "
            "interpreter has no per-op profiler)" % version
        ).replace("  ", " "),
        "requested_providers": ["XNNPACK"] if xnnpack else ["CPU"],
        "providers": sorted(set(row["provider"] for row in rows)),
    }


# --- ORT profiler trace -> per-node rows ------------------------------------------------------------
# COPY of edgekd/profile/ort_trace.py (summarize_ort_trace, _runs, _middle_runs, _run_index) without type
# hints: the runner cannot import edgekd. The two must stay equal;
# tests/runner/test_runner_profile.py::test_runner_copy_of_the_trace_summary_equals_the_library checks it.

KERNEL_SUFFIX = "_kernel_time"
PROFILE_STATISTIC = "interquartile mean"


def _runs(events):
    """(start, end) us of every `model_run`, in time order."""
    runs = [
        (float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0)))
        for e in events
        if e.get("cat") == "Session" and e.get("name") == "model_run" and "ts" in e
    ]
    return sorted(runs)


def summarize_ort_trace(events, warmup_runs=0):
    """Per-node time per inference from ORT's trace, leaving out the first `warmup_runs` runs: a node's
    `ms` is its mean time per run over the middle half of the runs ranked by `model_run` time."""
    runs = _runs(events)[max(0, int(warmup_runs)) :]
    if not runs:
        return {"rows": [], "runs": 0, "run_ns": []}
    starts = [start for start, _ in runs]
    count = len(runs)
    totals = {}  # name -> [op_type, provider, per-run us, events]
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
        "statistic": PROFILE_STATISTIC,
    }


def _middle_runs(durations):
    """Indexes of the runs between the 25th and 75th percentile of duration (all runs when fewer than 4)."""
    order = sorted(range(len(durations)), key=durations.__getitem__)
    if len(order) < 4:
        return order
    quarter = len(order) // 4
    return order[quarter : len(order) - quarter]


def _run_index(starts, ts):
    """Index of the last run starting at or before `ts` (-1 if none): a binary search."""
    low, high = 0, len(starts)
    while low < high:
        middle = (low + high) // 2
        if starts[middle] <= ts:
            low = middle + 1
        else:
            high = middle
    return low - 1


def _work_dir():
    """Where the profiler may write its trace: the runner's own folder (the target's work dir), if writable."""
    here = os.path.dirname(os.path.abspath(__file__))
    return here if os.access(here, os.W_OK) else None


def profile_model(session, runtime, args, timed_runs):
    """The --profile part of the document: the session's per-op profile, or why there is none."""
    runs = min(PROFILE_MAX_RUNS, max(1, args.runs if args.duration is None else timed_runs))
    if not hasattr(session, "profile"):
        return {"profile_unavailable": "runtime %s has no per-op profiler in the runner" % runtime}
    try:
        result = session.profile(min(args.warmup, PROFILE_MAX_RUNS), runs)
    except RunnerError as exc:
        if exc.kind != "profile_unavailable":
            raise
        return {"profile_unavailable": exc.message}
    except Exception as exc:  # noqa: BLE001 - the timed figures stand; the profile's failure is reported beside them
        line = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
        return {"profile_unavailable": "the %s profiler failed: %s: %s" % (runtime, type(exc).__name__, line)}
    if args.duration is not None or runs < args.runs:
        result["profile_note"] = "profiled %d runs (of %d timed)" % (runs, timed_runs)
    return result


# --- inputs -------------------------------------------------------------------------------------------


def parse_shapes(values):
    """--shape NAME=1,3,32,32 (or just 1,3,32,32 for a one-input model), repeatable -> {name or "": shape}."""
    shapes = {}
    for value in values or []:
        name, _, dims = value.rpartition("=")
        try:
            shape = [int(d) for d in dims.replace("x", ",").split(",") if d.strip()]
        except ValueError:
            shape = []
        if not shape or any(d < 1 for d in shape):
            raise RunnerError(
                "bad_arguments",
                "--shape %r is not a shape" % value,
                "give NAME=1,3,32,32 (positive sizes), one --shape per input",
            )
        shapes[name] = shape
    return shapes


def resolve_shapes(specs, shapes, stored, recorded=None):
    """Fill each input's symbolic dimensions: from --shape, else the --inputs array, else the shape the
    model's sidecar recorded (--sidecar-shape, used only where it fits), else a leading (batch) dimension
    becomes 1 with a note. Any other unknown dimension is an error: a made-up 1x1 image would be
    benchmarked silently. Returns the notes."""
    notes = []
    recorded = recorded or {}
    unnamed = shapes.get("") if len(specs) == 1 else None
    if "" in shapes and len(specs) != 1:
        raise RunnerError(
            "bad_arguments",
            "--shape without a name, but the model has %d inputs (%s)"
            % (len(specs), ", ".join(s["name"] for s in specs)),
            "give NAME=1,3,32,32 per input",
        )
    unknown = sorted(set(shapes) - {""} - {s["name"] for s in specs})
    if unknown:
        raise RunnerError(
            "bad_arguments",
            "--shape names input %s, the model's inputs are %s"
            % (", ".join(unknown), ", ".join(s["name"] for s in specs)),
            "use the model's input names",
        )
    for index, spec in enumerate(specs):
        declared = list(spec["shape"])
        given = shapes.get(spec["name"], unnamed)
        source = "--shape"
        if given is None and stored is not None:
            key = spec["name"] if spec["name"] in stored else "arr_%d" % index
            if key in stored:
                given, source = list(stored[key].shape), "the --inputs array"
        if given is None and _fits(declared, recorded.get(spec["name"])) and declared != recorded[spec["name"]]:
            given = recorded[spec["name"]]
            notes.append(
                "input '%s': shape %s from the model's sidecar (the file declares %s)" % (spec["name"], given, declared)
            )
        if given is not None:
            if not _fits(declared, given):
                raise RunnerError(
                    "bad_inputs",
                    "input '%s' has shape %s from %s, the model expects %s" % (spec["name"], given, source, declared),
                    "give one sample with the model's shape (symbolic dimensions may take any size)",
                )
            spec["shape"] = [int(g) for g in given]
        elif any(not isinstance(d, int) for d in declared[1:]):
            raise RunnerError(
                "shape_unknown",
                "input '%s' has symbolic dimensions %s: the shape to benchmark "
                "cannot be known" % (spec["name"], declared),
                "give the sizes: edgekd bench --shape %s=%s (or an --inputs file with a real sample)"
                % (spec["name"], ",".join(_placeholder(d, i) for i, d in enumerate(declared))),
            )
        elif declared and not isinstance(declared[0], int):
            spec["shape"] = [1] + declared[1:]
            notes.append("input '%s': batch dimension %s set to 1" % (spec["name"], declared[0] or "?"))
        if spec["shape"] != declared:
            spec["declared_shape"] = declared
    return notes


def _placeholder(dim, index):
    """How a dimension is shown in the --shape the user should give: its size, 1 for a symbolic batch,
    else <name> to fill in."""
    if isinstance(dim, int):
        return str(dim)
    return "1" if index == 0 else "<%s>" % (dim or "size")


def _fits(declared, given):
    """Whether a concrete shape fills a declared one: same rank, equal wherever the model fixes a size."""
    return (
        given is not None
        and len(given) == len(declared)
        and all(not isinstance(d, int) or d == g for d, g in zip(declared, given))
    )


def generate_inputs(specs, seed):
    """Random inputs matching each input's dtype; quantized integer inputs are quantized N(0,1) samples."""
    import numpy as np

    rng = np.random.default_rng(seed)
    arrays = []
    for spec in specs:
        dtype = np.dtype(spec["dtype"])
        shape = spec["shape"]
        if dtype.kind == "f":
            arrays.append(rng.standard_normal(shape).astype(dtype))
        elif dtype.kind == "b":
            arrays.append(rng.integers(0, 2, size=shape).astype(bool))
        elif spec["quant"]:
            arrays.append(quantize(rng.standard_normal(shape).astype("float32"), spec["quant"], dtype))
        else:
            info = np.iinfo(dtype)
            low, high = max(info.min, -128), min(info.max, 127)
            arrays.append(rng.integers(low, high, size=shape, endpoint=True).astype(dtype))
    return arrays


def quantize(values, quant, dtype):
    import numpy as np

    info = np.iinfo(dtype)
    q = np.round(values / quant["scale"]) + quant["zero_point"]
    return np.clip(q, info.min, info.max).astype(dtype)


def read_inputs(path):
    """{key: array} of an .npz written by numpy.savez."""
    import numpy as np

    if not os.path.exists(path):
        raise RunnerError("inputs_missing", "inputs file %s does not exist" % path, "check the --inputs path")
    try:
        archive = np.load(path, allow_pickle=False)
        return dict((key, archive[key]) for key in archive.files)
    except (OSError, ValueError) as exc:
        raise RunnerError(
            "inputs_corrupt",
            "cannot read inputs file %s: %s" % (path, exc),
            "write it with numpy.savez(path, input_name=array)",
        ) from None


def load_inputs(stored, specs):
    """Arrays from an .npz keyed by input name (or arr_0.. in order); float arrays for quantized inputs
    are quantized with the tensor's scale/zero point (reported in notes); other mismatches are errors."""
    import numpy as np

    arrays, notes = [], []
    for index, spec in enumerate(specs):
        key = spec["name"] if spec["name"] in stored else "arr_%d" % index
        if key not in stored:
            raise RunnerError(
                "bad_inputs",
                "inputs file has no array for input '%s'" % spec["name"],
                "arrays found: %s; name them after the model's inputs" % ", ".join(sorted(stored)),
            )
        array = stored[key]
        if list(array.shape) != list(spec["shape"]):
            raise RunnerError(
                "bad_inputs",
                "input '%s' has shape %s, the model expects %s" % (spec["name"], list(array.shape), spec["shape"]),
                "give one sample with exactly the model's input shape",
            )
        expected = np.dtype(spec["dtype"])
        if array.dtype != expected:
            if array.dtype.kind == "f" and expected.kind in "iu" and spec["quant"]:
                array = quantize(array, spec["quant"], expected)
                notes.append(
                    "input '%s' quantized from %s to %s with the model's scale/zero point"
                    % (spec["name"], stored[key].dtype.name, expected.name)
                )
            else:
                raise RunnerError(
                    "bad_inputs",
                    "input '%s' has dtype %s, the model expects %s" % (spec["name"], array.dtype.name, expected.name),
                    "convert the array with .astype('%s')" % expected.name,
                )
        arrays.append(array)
    return arrays, notes


# --- the measurement ----------------------------------------------------------------------------------


def timed_loop(invoke, runs, duration_s, windows, min_runs=0):
    """Call invoke() `runs` times (or for `duration_s`, and at least `min_runs` times: MLPerf's single-stream
    rule is both); only the call is inside perf_counter_ns.

    Samples go into a preallocated int64 array (`runs` known) or a compact growing one (duration mode),
    never a list of Python ints. Returns latencies in ns and, with `windows`, the window boundaries with
    temperatures and core frequencies (where cpufreq is readable) read between windows, outside any timed
    call, so throttling shows up as a trend."""
    clock = time.perf_counter_ns
    latencies = sample_array("q", bytes(8 * runs)) if duration_s is None else sample_array("q")
    append = latencies.append
    bounds = []
    count = max(1, windows or 1)
    done = 0
    start = time.perf_counter()
    for window in range(count):
        first = done
        if duration_s is not None:
            deadline = start + duration_s * (window + 1) / count
            floor = min_runs * (window + 1) // count
            while time.perf_counter() < deadline or len(latencies) < floor:
                t0 = clock()
                invoke()
                append(clock() - t0)
            done = len(latencies)
        else:
            end = runs * (window + 1) // count
            for slot in range(done, end):
                t0 = clock()
                invoke()
                latencies[slot] = clock() - t0
            done = end
        if windows:
            bounds.append(
                {
                    "start": first,
                    "end": done,
                    "t_s": round(time.perf_counter() - start, 6),
                    "thermal_zones": thermal_zones(),
                    "freq_khz": cpu_frequencies_khz(affinity()),
                }
            )
    return latencies.tolist(), bounds


def measure(args, resolve_runtime=None):
    """Everything the runner reports, as a dict. Raises RunnerError on a problem the user can fix."""
    if args.pin:
        try:
            os.sched_setaffinity(0, set(int(c) for c in args.pin.split(",")))
        except (AttributeError, OSError, ValueError) as exc:
            raise RunnerError(
                "bad_arguments",
                "cannot pin to cores %s: %s" % (args.pin, exc),
                "give core numbers this device has, e.g. --pin 0",
            ) from None
    if not args.baseline and not os.path.isfile(args.model):
        raise RunnerError(
            "model_missing",
            "model %s does not exist on the device" % args.model,
            "push the model first (the host does this) or check the path",
        )
    try:
        import numpy as np
    except ImportError:
        raise RunnerError(
            "numpy_missing",
            "numpy is not installed on this device (python %s)" % platform.python_version(),
            "pip install numpy on the device",
        ) from None
    runtime, module, version = (resolve_runtime or import_runtime)(args.runtime, args.model)
    report = {
        "schema": SCHEMA,
        "runtime": runtime,
        "notes": [],
        "versions": {"runtime": version, "numpy": np.__version__, "python": platform.python_version()},
        "threads": args.threads,
        "xnnpack": bool(args.xnnpack),
    }
    if args.baseline:  # the empty model: interpreter + numpy loaded, nothing else, for the memory baseline
        report.update({"baseline": True, "latencies_ns": [], "init_ms": None, "first_ms": None})
    else:
        report.update(run_model(args, runtime, module, report))
    # VmHWM belongs to this process image only (reset by exec); ru_maxrss is the fallback without procfs.
    report["vmhwm_kb"] = proc_status_kb("VmHWM")
    report["ru_maxrss_kb"] = ru_maxrss_kb()
    report["peak_rss_kb"] = report["vmhwm_kb"] if report["vmhwm_kb"] is not None else report["ru_maxrss_kb"]
    report["env"] = environment()
    return report


def run_model(args, runtime, module, report):
    with open(args.model, "rb") as handle:
        sha256 = hashlib.sha256(handle.read()).hexdigest()
    t0 = time.perf_counter_ns()
    session = open_session(runtime, module, args.model, args.threads, args.xnnpack)
    init_ns = time.perf_counter_ns() - t0
    if hasattr(session, "xnnpack"):  # sessions that decide XNNPACK themselves say whether it is on
        report["xnnpack"] = session.xnnpack
        if args.xnnpack and not session.xnnpack:
            report["notes"].append(session.xnnpack_note)
    specs = session.inputs()
    stored = read_inputs(args.inputs) if args.inputs else None
    report["notes"].extend(resolve_shapes(specs, parse_shapes(args.shape), stored, parse_shapes(args.sidecar_shape)))
    if stored is not None:
        arrays, notes = load_inputs(stored, specs)
        report["notes"].extend(notes)
    else:
        arrays = generate_inputs(specs, args.seed)
    try:
        session.set_inputs(arrays)
        t0 = time.perf_counter_ns()
        session.invoke()
        first_ns = time.perf_counter_ns() - t0
    except (SystemError, ImportError) as exc:
        raise runtime_broken(getattr(module, "__name__", runtime), exc) from None
    except (ValueError, RuntimeError) as exc:
        raise RunnerError(
            "bad_inputs",
            "the model rejected its inputs: %s" % exc,
            "inputs must match the model's shapes and dtypes: %s" % specs,
        ) from None
    if args.outputs:
        import numpy as np

        np.savez(args.outputs, **dict(session.outputs()))
    rss_after_first = proc_status_kb("VmRSS")
    invoke = session.invoke
    for _ in range(args.warmup):
        invoke()
    latencies, windows = timed_loop(invoke, args.runs, args.duration, args.windows, args.min_runs or 0)
    if args.profile:  # after the timed loop, so the profiler never touches the figures above
        report.update(profile_model(session, runtime, args, len(latencies)))
    return {
        "model_sha256": sha256,
        "init_ms": init_ns / 1e6,
        "first_ms": first_ns / 1e6,
        "warmup": args.warmup,
        "latencies_ns": latencies,
        "windows": windows or None,
        "inputs": specs,
        "input_shapes": dict((spec["name"], spec["shape"]) for spec in specs),
        "rss_after_first_kb": rss_after_first,
    }


def parse_args(argv):
    parser = _JsonArgumentParser(prog="edgekd_runner.py", description="Time one model; print edgekd.run/1 JSON.")
    parser.add_argument("--model", default="")
    parser.add_argument("--runtime", default="auto", choices=["auto", "litert", "tflite", "ort"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--duration", type=float, default=None, help="seconds to run instead of --runs")
    parser.add_argument("--windows", type=int, default=None, help="split the run into K sustained windows")
    parser.add_argument(
        "--min-runs",
        dest="min_runs",
        type=int,
        default=None,
        help="with --duration: keep running until at least this many runs too",
    )
    parser.add_argument("--inputs", default=None, help=".npz with one array per model input")
    parser.add_argument("--outputs", default=None, help="write the first inference's outputs to this .npz")
    parser.add_argument("--no-xnnpack", dest="xnnpack", action="store_false")
    parser.add_argument("--pin", default=None, help="comma-separated cores to run on")
    parser.add_argument(
        "--shape",
        action="append",
        default=None,
        help="NAME=1,3,32,32: the size of an input's symbolic dimensions (repeat per input)",
    )
    parser.add_argument(
        "--sidecar-shape",
        action="append",
        default=None,
        help="NAME=1,3,32,32 recorded by edgekd: used for symbolic dimensions where it fits",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline", action="store_true", help="load the runtime only (memory baseline)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after the timed runs, profile per op (ORT's profiler) in a second session",
    )
    args = parser.parse_args(argv)
    if not args.baseline and not args.model:
        raise RunnerError("bad_arguments", "--model is required", "give the model path on the device")
    if args.threads < 1 or args.warmup < 0 or args.runs < 0:
        raise RunnerError("bad_arguments", "--threads must be >= 1, --warmup and --runs >= 0")
    if args.runs > MAX_RUNS or args.warmup > MAX_RUNS:
        raise RunnerError(
            "bad_arguments",
            "--runs/--warmup %d is more than %d" % (max(args.runs, args.warmup), MAX_RUNS),
            "use --duration for long runs, or repeat the benchmark",
        )
    if args.duration is not None and args.duration <= 0:
        raise RunnerError("bad_arguments", "--duration must be > 0 seconds")
    if args.min_runs is not None and (args.duration is None or not 1 <= args.min_runs <= MAX_RUNS):
        raise RunnerError(
            "bad_arguments",
            "--min-runs needs --duration and a count from 1 to %d" % MAX_RUNS,
            "give --duration SECONDS --min-runs N, or --runs N alone",
        )
    if args.windows is not None and args.windows < 2:
        raise RunnerError("bad_arguments", "--windows must be >= 2")
    return args


def main(argv=None, resolve_runtime=None):
    """Run and print the document. `resolve_runtime(name, model) -> (runtime, backend, version)` lets a
    host-side caller supply a backend with open_session() (edgekd's torch runner); devices use the default."""
    try:
        document = measure(parse_args(sys.argv[1:] if argv is None else argv), resolve_runtime)
        status = 0
    except RunnerError as exc:
        document = {"schema": SCHEMA, "error": {"kind": exc.kind, "message": exc.message, "hint": exc.hint}}
        status = ERROR_EXIT
    except MemoryError:
        document = {
            "schema": SCHEMA,
            "error": {
                "kind": "out_of_memory",
                "message": "the device ran out of memory",
                "hint": "try a smaller model or close other programs",
            },
        }
        status = ERROR_EXIT
    except Exception as exc:  # noqa: BLE001 - whatever else breaks on a device still ends in one JSON document
        line = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
        document = {
            "schema": SCHEMA,
            "error": {
                "kind": "runner_failed",
                "message": "the runner failed: %s: %s" % (type(exc).__name__, line),
                "hint": "python %s, numpy %s on the device; run the runner there by hand to see the traceback"
                % (platform.python_version(), _numpy_version() or "not loaded"),
            },
        }
        status = ERROR_EXIT
    sys.stdout.write("\n" + json.dumps(document) + "\n")
    sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())
