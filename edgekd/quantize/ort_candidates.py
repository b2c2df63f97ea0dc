"""Rung 1's candidates in ONNX Runtime and the one rule that picks among them.

A candidate is a QDQ model made with one calibration method, one *scope* (which ops get Q/DQ) and with or
without bias correction. Three things decide whether int8 pays in ORT and whether it keeps accuracy:

- **Scope.** ORT's CPU provider runs int8 only where its graph optimizer fuses a DequantizeLinear -> op ->
  QuantizeLinear group into an int8 kernel (QLinearConv, QGemm, QLinearMatMul, ...). A Q/DQ pair around an
  op with no int8 kernel (HardSigmoid, HardSwish, ReduceMean) is pure conversion cost, and a Conv whose
  group is not fused (ORT 1.32 leaves a Conv feeding HardSwish unfused) runs in float *after* dequantizing
  its weights on every inference. `SCOPES["int8_kernels"]` therefore quantizes only the weighted ops (plus
  Relu/Clip, which the output quantization absorbs) and keeps float every weighted node that ORT's own
  optimizer leaves unfused (`unfused_nodes`, read from the optimized graph ORT writes) -- derived from the
  graph, not from a list of model names. `SCOPES["int8_kernels_float_out"]` also leaves MatMul/Gemm outputs
  float (ORT has int8 kernels with float outputs for them). `SCOPES["all"]` is ORT's default (every op type
  it can quantize).
- **Bias correction** (`correct_bias`): per-channel weight rounding shifts each output channel's mean; the
  shift measured on the calibration samples (QDQ vs float output of the node, graph order, so each node is
  corrected with its inputs already corrected) is subtracted from the node's int32 bias. NNCF applies the
  same idea (FastBiasCorrection) by default; measured on the bench CNN it is worth 6 validation samples.
- **Calibration method** (`ort_backend.METHODS`).

`choose` is the rule: among the candidates within the budget, those whose p50 is within `LATENCY_TOLERANCE`
of the fastest form the fast tier and the most accurate of them is taken (then agreement, then p50); when
none holds the budget, the most accurate candidate (then agreement, then p50). Latency is a property of the
graph: candidates that differ only in scales and rounded weights share one measurement (`p50_ms_by_graph`),
and the distinct graphs are measured interleaved so background load hits them alike.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Scope:
    """Which ops a candidate quantizes: `op_types` (None: every type ORT's quantizer handles) and the op
    types whose outputs stay float (`float_outputs`, ORT's OpTypesToExcludeOutputQuantization)."""

    op_types: tuple[str, ...] | None
    float_outputs: tuple[str, ...] = ()


_KERNEL_OPS = ("Conv", "Gemm", "MatMul", "Relu", "Clip")
SCOPES: dict[str, Scope] = {
    "all": Scope(None),
    "int8_kernels": Scope(_KERNEL_OPS),
    # MatMul/Gemm with int8 inputs and a float output: ORT runs them as MatMulIntegerToFloat-style kernels
    # without the output's QuantizeLinear/DequantizeLinear pair (the bench's transformer block: -20 % p50)
    "int8_kernels_float_out": Scope(_KERNEL_OPS, ("MatMul", "Gemm")),
}
#: Candidates whose p50 is within this fraction of the fastest in-budget one count as equally fast: the most
#: accurate of them is chosen (p50 medians of a few hundred runs on a shared CPU differ by a few % run to run).
LATENCY_TOLERANCE = 0.05
#: Op types whose bias `correct_bias` adjusts (MatMul has no bias input; its Add is a separate node).
BIASED_OPS = ("Conv", "Gemm")


def choose(candidates: Sequence[dict[str, Any]], max_drop: float) -> dict[str, Any]:
    """The candidate rung 1 keeps: fast tier of the in-budget ones, most accurate; else the most accurate."""
    if not candidates:
        raise ValueError("choose() needs at least one candidate")

    def by_accuracy(c: dict[str, Any]) -> tuple[float, float, float]:
        return (c["accuracy"], c["agreement"], -c["p50_ms"])

    within = [c for c in candidates if c["drop"] <= max_drop]
    if not within:
        return max(candidates, key=by_accuracy)
    fastest = min(c["p50_ms"] for c in within)
    tier = [c for c in within if c["p50_ms"] <= fastest * (1 + LATENCY_TOLERANCE)]
    return max(tier, key=by_accuracy)


def _session(model: Any, optimized: Path | None = None) -> Any:
    """A single-threaded CPU session (as ort_backend.session) on a path or serialized bytes."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if optimized is not None:  # the layout-free level: the fusions are there, no hardware-specific NCHWc nodes
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(optimized)
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), options,
                                providers=["CPUExecutionProvider"])  # fmt: skip


def unfused_nodes(qdq_path: Path, work: Path) -> list[str]:
    """Weighted nodes of a QDQ model that ORT runs in float with dequantized weights (no int8 kernel fused).

    Read from the graph ORT's optimizer writes: a Conv/Gemm/MatMul still under its own name whose weight
    input is produced by a DequantizeLinear was not fused into QLinearConv/QGemm/QLinearMatMul.
    """
    import onnx

    optimized = work / "optimized.onnx"
    _session(qdq_path, optimized)
    graph = onnx.load(str(optimized), load_external_data=False).graph
    producer = {out: node.op_type for node in graph.node for out in node.output}
    return [
        node.name
        for node in graph.node
        if node.op_type in ("Conv", "Gemm", "MatMul")
        and len(node.input) > 1
        and producer.get(node.input[1]) == "DequantizeLinear"
    ]


def graph_signature(path: Path) -> str:
    """A hash of a model's graph without its initializer values: nodes (type, inputs, outputs, attributes)
    and the initializers' names, types and shapes. Two candidates with the same signature differ only in
    scales, zero points and rounded weights, so they run the same kernels: their latency is one figure."""
    import hashlib

    import onnx

    model = onnx.load(str(path), load_external_data=False)
    graph = onnx.GraphProto()
    graph.node.extend(model.graph.node)
    graph.input.extend(model.graph.input)
    graph.output.extend(model.graph.output)
    for init in model.graph.initializer:
        graph.initializer.append(onnx.TensorProto(name=init.name, data_type=init.data_type, dims=init.dims))
    return hashlib.sha256(graph.SerializeToString(deterministic=True)).hexdigest()[:12]


def p50_ms_by_graph(paths: Sequence[Path], sample: np.ndarray, runs: int) -> tuple[list[float], list[str]]:
    """p50 of each model, measured once per distinct graph (`graph_signature`), interleaved across graphs;
    returns the p50s and the signatures, in the order of `paths`."""
    signatures = [graph_signature(p) for p in paths]
    first = {sig: path for path, sig in reversed(list(zip(paths, signatures, strict=True)))}
    p50 = dict(zip(first, p50_ms_interleaved(list(first.values()), sample, runs), strict=True))
    return [p50[sig] for sig in signatures], signatures


def p50_ms_interleaved(paths: Sequence[Path], sample: np.ndarray, runs: int, rounds: int = 10) -> list[float]:
    """Median latency (ms) of each model, single thread, batch as the model takes; the runs are spread over
    `rounds` round-robin passes so a burst of background load falls on every candidate alike."""
    from edgekd.quantize.ort_backend import ModelInput

    sessions = [_session(p) for p in paths]
    feeds = []
    for path, sess in zip(paths, sessions, strict=True):
        spec = ModelInput.of(path)
        feeds.append({spec.name: np.repeat(sample[None], spec.batch or 1, axis=0)})
        for _ in range(20):  # warm-up
            sess.run(None, feeds[-1])
    times: list[list[int]] = [[] for _ in paths]
    per_round = max(1, runs // rounds)
    for _ in range(rounds):
        for i, (sess, feed) in enumerate(zip(sessions, feeds, strict=True)):
            for _ in range(per_round):
                start = time.perf_counter_ns()
                sess.run(None, feed)
                times[i].append(time.perf_counter_ns() - start)
    return [float(np.median(t)) / 1e6 for t in times]


def correct_bias(float_path: Path, qdq_path: Path, out: Path, x_calib: np.ndarray) -> tuple[Path, list[str]]:
    """Subtract from each quantized Conv/Gemm's int32 bias the mean per-channel output shift its int8 weights
    and inputs cause (QDQ minus float, on the calibration samples); nodes in graph order, so a node is
    measured with every earlier correction in place. Returns the corrected model and the corrected nodes.
    """
    import onnx
    from onnx import numpy_helper

    from edgekd.quantize.ort_backend import ModelInput

    float_model = onnx.load(str(float_path), load_external_data=False)
    model = onnx.load(str(qdq_path), load_external_data=False)
    float_out = {n.name: n.output[0] for n in float_model.graph.node if n.op_type in BIASED_OPS}
    inits = {i.name: i for i in model.graph.initializer}
    producers = {out: node for node in model.graph.node for out in node.output}
    # (node name, its output in the QDQ model, the float model's tensor, int32 bias initializer, bias scale)
    targets = []
    for node in model.graph.node:
        if node.op_type not in BIASED_OPS or node.name not in float_out or len(node.input) < 3:
            continue
        dq = producers.get(node.input[2])
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in inits or dq.input[1] not in inits:
            continue  # float bias: the node is not quantized
        targets.append((node.name, node.output[0], float_out[node.name], dq.input[0], dq.input[1]))
    if not targets:
        return qdq_path, []
    spec = ModelInput.of(float_path)
    batches = _batches(x_calib, spec.batch)
    float_means = _channel_means(float_model, [t[2] for t in targets], spec.name, batches)
    corrected = []
    for name, qdq_tensor, float_tensor, bias_name, scale_name in targets:
        shift = _channel_means(model, [qdq_tensor], spec.name, batches)[qdq_tensor] - float_means[float_tensor]
        scale = numpy_helper.to_array(inits[scale_name]).astype(np.float64)
        bias = numpy_helper.to_array(inits[bias_name]).astype(np.int64)
        steps = np.rint(shift / scale).astype(np.int64)
        if not steps.any():
            continue
        new = np.clip(bias - steps, np.iinfo(np.int32).min, np.iinfo(np.int32).max).astype(np.int32)
        inits[bias_name].CopyFrom(numpy_helper.from_array(new, bias_name))
        corrected.append(name)
    onnx.save(model, str(out))
    return out, corrected


def _batches(x: np.ndarray, batch: int | None) -> list[np.ndarray]:
    """Full batches of the size the model takes (dynamic batch: 32); a fixed-batch model drops the remainder."""
    size = batch or min(len(x), 32)
    return [x[i : i + size] for i in range(0, len(x), size) if len(x[i : i + size]) == size]


def _channel_means(
    model: Any, tensors: Sequence[str], input_name: str, batches: Sequence[np.ndarray]
) -> dict[str, Any]:
    """Per-channel (axis 1) mean of each tensor over the batches, from a copy of `model` that outputs them."""
    import onnx

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output}
    for name in tensors:
        if name not in known:
            probe.graph.output.append(onnx.ValueInfoProto(name=name))
    sess = _session(probe.SerializeToString())
    sums: dict[str, np.ndarray] = {}
    for chunk in batches:
        values = sess.run(list(tensors), {input_name: chunk})
        for name, value in zip(tensors, values, strict=True):
            arr = np.asarray(value, np.float64)
            per_channel = arr.reshape(arr.shape[0], arr.shape[1], -1).mean(axis=(0, 2))
            sums[name] = sums.get(name, 0) + per_channel
    return {name: total / len(batches) for name, total in sums.items()}
