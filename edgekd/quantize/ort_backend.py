"""The ONNX Runtime side of the quantization ladder: QDQ quantization with exclusions, accuracy, latency,
and per-node output error (qdq_loss_debug).

Everything here takes paths inside the ladder's work directory; nothing is written elsewhere (ORT's own
temporary files are redirected there by `temp_dir_inside`).
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.errors import ConversionError, DataError

#: Op types the ladder ranks and may keep in float (the ones carrying weights).
WEIGHTED_OPS = ("Conv", "MatMul", "Gemm")
#: Calibration methods compared by rung 1, in the order they are tried.
#: Each method with symmetric int8 activations (zero point 0) and with asymmetric ones ("+asym": the full
#: int8 range on one-sided tensors such as ReLU outputs, as LiteRT and NNCF quantize them).
#: "avgminmax": each activation's range is the mean of per-sample minima/maxima (ORT's MinMax with
#: CalibMovingAverage averages the per-batch ranges; batches of one sample) instead of the extremes over all
#: samples: rare extremes are clipped, as NNCF's default activation range (mean of per-sample min/max) does.
METHODS = (
    "minmax",
    "percentile",
    "entropy",
    "avgminmax",
    "minmax+asym",
    "percentile+asym",
    "entropy+asym",
    "avgminmax+asym",
)
#: Activations ORT's QDQ quantizer folds into the preceding node's output quantization (asymmetric only).
FUSED_ACTIVATIONS = ("Relu", "Clip")


@contextlib.contextmanager
def temp_dir_inside(directory: Path) -> Iterator[Path]:
    """Point Python's tempfile (which ORT's quantizer uses) at `directory` for the block, then restore it."""
    directory.mkdir(parents=True, exist_ok=True)
    previous = tempfile.tempdir
    tempfile.tempdir = str(directory)
    try:
        yield directory
    finally:
        tempfile.tempdir = previous


def _reader(input_name: str, x: np.ndarray, batch: int) -> Any:
    """A CalibrationDataReader over `x` in batches of `batch` (the last short batch is dropped when fixed)."""
    from onnxruntime.quantization import CalibrationDataReader

    class _ArrayReader(CalibrationDataReader):  # type: ignore[misc]  # untyped base from onnxruntime
        def __init__(self) -> None:
            self._batches = iter([x[i : i + batch] for i in range(0, len(x), batch) if len(x[i : i + batch]) == batch])

        def get_next(self) -> dict[str, np.ndarray] | None:
            chunk = next(self._batches, None)
            return None if chunk is None else {input_name: chunk}

    return _ArrayReader()


@dataclass(frozen=True)
class ModelInput:
    """The one input the ladder feeds: its name and the batch size the graph accepts (None: any)."""

    name: str
    batch: int | None

    @staticmethod
    def of(path: Path) -> ModelInput:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        initializers = {init.name for init in model.graph.initializer}
        inputs = [i for i in model.graph.input if i.name not in initializers]
        if len(inputs) != 1:
            raise ConversionError(
                f"the quantization ladder handles one-input models; {path.name} has {len(inputs)} inputs",
                hint="quantize multi-input models with `edgekd quantize` (no accuracy budget)",
            )
        dim = inputs[0].type.tensor_type.shape.dim
        batch = dim[0].dim_value if dim and dim[0].HasField("dim_value") and dim[0].dim_value > 0 else None
        return ModelInput(inputs[0].name, batch)


def prepare(src: Path, out: Path) -> Path:
    """ORT's pre-pass (via the onnx_quant converter), then a name for every node so exclusions can name it."""
    import onnx

    from edgekd.converters.onnx_quant import _preprocess

    prepared = _preprocess(src, out)
    model = onnx.load(str(prepared), load_external_data=False)
    seen: set[str] = set()
    for index, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{index}"
        seen.add(node.name)
    onnx.save(model, str(out))
    return out


def weighted_nodes(path: Path) -> list[tuple[str, str]]:
    """(node name, op type) of every Conv/MatMul/Gemm, in graph order."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return [(n.name, n.op_type) for n in model.graph.node if n.op_type in WEIGHTED_OPS]


def quantize_qdq(
    prepared: Path,
    out: Path,
    x_calib: np.ndarray,
    method: str,
    exclude: Sequence[str] = (),
    only: Sequence[str] | None = None,
    int16: Sequence[str] = (),
    op_types: Sequence[str] | None = None,
    float_outputs: Sequence[str] = (),
) -> Path:
    """Static QDQ int8: per-channel weights, int8 activations (symmetric; asymmetric with a "+asym" method);
    `exclude` nodes stay float.

    With `only`, just those nodes are quantized (to measure the error one node introduces on its own).
    `int16` nodes get 16-bit activations (inputs and output; ORT then moves the model to opset 21).
    `op_types` limits quantization to those op types (None: every type ORT's quantizer handles);
    `float_outputs` op types keep float outputs (their inputs and weights are quantized).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from edgekd.converters.onnx_quant import _first_line, _quiet

    spec = ModelInput.of(prepared)
    base = method.removesuffix("+asym")
    averaged = base == "avgminmax"  # per-sample ranges averaged: one sample per batch (unless the graph fixes it)
    batch = spec.batch or (1 if averaged else min(len(x_calib), 32))
    methods = {
        "minmax": CalibrationMethod.MinMax,
        "avgminmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    try:
        with _quiet():
            quantize_static(
                str(prepared),
                str(out),
                _reader(spec.name, x_calib, batch),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=methods[base],
                op_types_to_quantize=list(op_types) if op_types is not None else None,
                nodes_to_exclude=list(exclude),
                nodes_to_quantize=list(only) if only is not None else None,
                extra_options={
                    "ActivationSymmetric": not method.endswith("+asym"),
                    "CalibMovingAverage": averaged,
                    "OpTypesToExcludeOutputQuantization": list(float_outputs),
                    **_int16_overrides(prepared, int16),
                },
            )
    except Exception as exc:  # noqa: BLE001 - ORT raises ValueError/RuntimeError/Fail from deep inside
        raise ConversionError(f"quantization ladder: static QDQ ({method}) failed: {_first_line(exc)}") from None
    return out


def _int16_overrides(prepared: Path, nodes: Sequence[str]) -> dict[str, Any]:
    """ORT TensorQuantOverrides making the activations (non-constant inputs and outputs) of `nodes` int16."""
    if not nodes:
        return {}
    import onnx
    from onnxruntime.quantization import QuantType

    graph = onnx.load(str(prepared), load_external_data=False).graph
    constants = {init.name for init in graph.initializer}
    tensors: list[str] = []
    for node in graph.node:
        if node.name in nodes:
            tensors += [t for t in (*node.input, *node.output) if t and t not in constants and t not in tensors]
    return {"TensorQuantOverrides": {t: [{"quant_type": QuantType.QInt16}] for t in tensors}}


def session(path: Path) -> Any:
    """A single-threaded CPU session: the same settings for accuracy and latency."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def predict(path: Path, x: np.ndarray) -> np.ndarray:
    """Class predictions (argmax of the first output) for every sample of `x`."""
    sess = session(path)
    spec = ModelInput.of(path)
    batch = spec.batch or 64
    preds = []
    for start in range(0, len(x), batch):
        chunk = x[start : start + batch]
        real = len(chunk)
        if real < batch and spec.batch is not None:  # fixed batch: pad with the last sample, drop its outputs
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - real, axis=0)])
        logits = np.asarray(sess.run(None, {spec.name: chunk})[0])
        preds.append(logits.reshape(len(chunk), -1)[:real].argmax(axis=1))
    return np.concatenate(preds)


def p50_ms(path: Path, sample: np.ndarray, runs: int, warmup: int = 20) -> float:
    """Median latency in ms of one single-threaded inference over `runs` runs (a measurement, not a gate)."""
    sess = session(path)
    spec = ModelInput.of(path)
    feed = {spec.name: np.repeat(sample[None], spec.batch or 1, axis=0)}
    for _ in range(warmup):
        sess.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        sess.run(None, feed)
        times.append(time.perf_counter_ns() - start)
    return float(np.median(times)) / 1e6


def _cosine(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    left = np.concatenate([np.ravel(t) for t in a]).astype(np.float64)
    right = np.concatenate([np.ravel(t) for t in b]).astype(np.float64)
    denom = float(np.linalg.norm(left) * np.linalg.norm(right))
    return float(left @ right / denom) if denom > 0 else float("nan")


def node_output_errors(float_path: Path, qdq_path: Path, x: np.ndarray, work: Path) -> dict[str, dict[str, Any]]:
    """Per weighted node: SQNR (dB) and cosine of its output, float vs QDQ model, plus its weight SQNR.

    In the QDQ model the node's own output tensor keeps its name *before* its QuantizeLinear; the value the
    next node sees is `<name>_DequantizeLinear_Output`, so that one is compared when it exists.
    Also the worst channel's SQNR: a whole-tensor SQNR is dominated by a large channel and hides the small
    channels a per-tensor scale crushes. Uses onnxruntime.quantization.qdq_loss_debug: both models are augmented to output their intermediate
    tensors; in the QDQ model a node's output name is kept by the DequantizeLinear after it.
    """
    import onnx
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_signal_to_quantization_noice_ratio,
        compute_weight_error,
        create_weight_matching,
        modify_model_output_intermediate_tensors,
    )
    from onnxruntime.quantization.quant_utils import DEQUANT_OUTPUT_SUFFIX

    spec = ModelInput.of(float_path)
    batch = spec.batch or min(len(x), 32)
    float_aug, qdq_aug = work / "float.debug.onnx", work / "qdq.debug.onnx"
    modify_model_output_intermediate_tensors(
        str(float_path), str(float_aug), op_types_for_saving=[*WEIGHTED_OPS, *FUSED_ACTIVATIONS]
    )
    modify_model_output_intermediate_tensors(
        str(qdq_path), str(qdq_aug), op_types_for_saving=[*WEIGHTED_OPS, "DequantizeLinear"]
    )
    float_acts = collect_activations(str(float_aug), _reader(spec.name, x, batch))
    qdq_acts = collect_activations(str(qdq_aug), _reader(spec.name, x, batch))
    weight_sqnr = compute_weight_error(create_weight_matching(str(float_path), str(qdq_path)))
    graph = onnx.shape_inference.infer_shapes(onnx.load(str(float_path), load_external_data=False)).graph
    channels = {
        v.name: v.type.tensor_type.shape.dim[1].dim_value
        for v in [*graph.value_info, *graph.output]
        if len(v.type.tensor_type.shape.dim) >= 2 and v.type.tensor_type.shape.dim[1].dim_value > 0
    }
    uses = [(tensor, node) for node in graph.node for tensor in node.input]
    count = Counter(tensor for tensor, _ in uses)
    consumers = {tensor: node for tensor, node in uses if count[tensor] == 1}  # tensors with one consumer
    errors: dict[str, dict[str, Any]] = {}
    for node in graph.node:
        if node.op_type not in WEIGHTED_OPS:
            continue
        name = node.output[0]
        weight = node.input[1] if len(node.input) > 1 else None
        row: dict[str, Any] = {
            "output": name,
            "output_sqnr_db": None,
            "output_cosine": None,
            "worst_channel_sqnr_db": None,
            "weight_sqnr_db": _finite(weight_sqnr.get(weight)) if weight else None,
        }
        seen = qdq_acts.get(name + DEQUANT_OUTPUT_SUFFIX, qdq_acts.get(name))
        if seen is None and name in consumers and consumers[name].op_type in FUSED_ACTIVATIONS:
            # asymmetric QDQ folds a Conv's Relu/Clip into its output quantization: the tensor both models
            # still have is the activation's output, so the node is judged there
            name = consumers[name].output[0]
            row["output"] = name
            seen = qdq_acts.get(name + DEQUANT_OUTPUT_SUFFIX, qdq_acts.get(name))
        if name in float_acts and seen is not None:
            row["output_sqnr_db"] = _finite(compute_signal_to_quantization_noice_ratio(float_acts[name], seen))
            row["output_cosine"] = _finite(_cosine(float_acts[name], seen))
            if name in channels:
                row["worst_channel_sqnr_db"] = _finite(
                    _worst_channel_sqnr(float_acts[name], seen, batch, channels[name])
                )
        errors[node.name] = row
    return errors


def _worst_channel_sqnr(ref: Sequence[np.ndarray], got: Sequence[np.ndarray], batch: int, channels: int) -> float:
    """Lowest per-channel SQNR (dB); the debug model outputs each tensor flattened, batch by batch."""

    # each flat array is one batch: (batch * C * spatial,) -> (C, batch * spatial)
    def by_channel(arrays: Sequence[np.ndarray]) -> np.ndarray:
        return np.concatenate(
            [a.reshape(batch, channels, -1).transpose(1, 0, 2).reshape(channels, -1) for a in arrays], axis=1
        ).astype(np.float64)

    left, right = by_channel(ref), by_channel(got)
    eps = np.finfo(np.float64).eps
    signal = np.maximum(np.linalg.norm(left, axis=1), eps)
    noise = np.maximum(np.linalg.norm(left - right, axis=1), eps)
    return float((20 * np.log10(signal / noise)).min())


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


def load_samples(path: Path, *, labels: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """`x` (float32) and, when `labels`, `y` (int) from an .npz; typed errors for anything else."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            x = archive["x"].astype(np.float32, copy=False)
            y = archive["y"] if labels else None
    except FileNotFoundError:
        raise DataError(f"{path} does not exist", hint="check the path") from None
    except KeyError as exc:
        raise DataError(
            f"{path} has no array {exc}", hint="save the samples as x=... and labels as y=... (np.savez)"
        ) from None
    except (OSError, ValueError) as exc:
        raise DataError(
            f"{path} is not a readable .npz: {exc}", hint="write it with np.savez(path, x=..., y=...)"
        ) from None
    if len(x) == 0 or not np.isfinite(x).all():
        raise DataError(f"{path}: 'x' is empty or holds NaN/Inf", hint="give finite, preprocessed float samples")
    if y is not None and (y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer)):
        raise DataError(
            f"{path}: 'y' must be one integer label per sample ({len(x)}), got {y.dtype} {y.shape}",
            hint="store class indices, not one-hot vectors",
        )
    return x, y
