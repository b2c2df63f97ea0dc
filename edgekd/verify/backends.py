"""Host inference for every artifact format, so parity is measured in the runtimes devices use.

`predict(artifact, x)` takes float32 samples in the data set's layout (NCHW for images) and returns
float32 outputs of the artifact's first output. A multi-input ONNX model takes `x` as a dict of arrays
keyed by input name (same number of samples each). It transposes to NHWC where a TFLite input is NHWC,
quantizes int8/uint8 inputs and dequantizes int8/uint8 outputs with the tensor's own scale/zero point,
and runs models with a fixed batch one batch at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from edgekd.artifacts import Artifact, QuantParams
from edgekd.errors import ModelError

BATCH = 64  # samples per call for models with a dynamic batch dimension

Samples = np.ndarray | dict[str, np.ndarray]  # one array, or one per input name (multi-input ONNX)

# ONNX Runtime's input type strings -> the numpy dtype a feed must have.
_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def sample_count(x: Samples) -> int:
    """Number of samples in one array or in each array of a per-input dict."""
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


def predict(artifact: Artifact, x: Samples) -> np.ndarray:
    """Float32 outputs (N, ...) of `artifact` on float32 inputs `x` (N, ...) in the data's layout."""
    runners: dict[str, Callable[[Artifact, np.ndarray], np.ndarray]] = {
        "torch": _predict_torch,
        "onnx": _predict_onnx,
        "tflite": _predict_tflite,
    }
    if artifact.format not in runners:
        raise ModelError(
            f"cannot run {artifact.path.name}: format {artifact.format!r} is not a model",
            hint="give a .pt, .onnx or .tflite",
        )
    if isinstance(x, dict):
        if artifact.format != "onnx":
            raise ModelError(
                f"{artifact.path.name}: samples for several named inputs ({', '.join(x)}) can feed only an "
                f"ONNX model, not a {artifact.format} one",
                hint="compare multi-input models as ONNX (give an .onnx --reference)",
            )
        return _predict_onnx_feeds(artifact, onnx_session(artifact), x)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if len(x) == 0:
        return np.zeros((0,), dtype=np.float32)
    return runners[artifact.format](artifact, x)


def _batches(n: int, batch: int) -> list[slice]:
    return [slice(i, min(i + batch, n)) for i in range(0, n, batch)]


def _predict_torch(artifact: Artifact, x: np.ndarray) -> np.ndarray:
    import torch

    from edgekd.distill.models import load_torch_model

    model = load_torch_model(artifact)
    with torch.inference_mode():
        outs = [model(torch.from_numpy(x[s])).float().numpy() for s in _batches(len(x), BATCH)]
    return np.concatenate(outs).astype(np.float32)


def _predict_onnx(artifact: Artifact, x: np.ndarray) -> np.ndarray:
    session = onnx_session(artifact)
    specs = session.get_inputs()
    if len(specs) != 1:
        names = ", ".join(s.name for s in specs)
        raise ModelError(
            f"{artifact.path.name} has {len(specs)} inputs ({names}); one data array cannot feed them",
            hint=f"give an .npz with one array per input name ({names}) and optional labels y",
        )
    spec = specs[0]
    _check_rank(artifact, len(spec.shape), x)
    static = spec.shape[0] if isinstance(spec.shape[0], int) and spec.shape[0] > 0 else None
    expected = tuple(spec.shape[1:])
    if any(isinstance(e, int) and e != a for e, a in zip(expected, x.shape[1:])):
        raise ModelError(
            f"{artifact.path.name} expects inputs of shape {tuple(spec.shape)}, the data has {tuple(x.shape[1:])} per sample",
            hint="this model was made for another data set or input size",
        )
    batch = static or BATCH
    outs = []
    for s in _batches(len(x), batch):
        chunk = x[s]
        if static and len(chunk) != static:  # pad the last batch of a fixed-batch model
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], static - len(chunk), axis=0)])
        outs.append(session.run(None, {spec.name: chunk})[0][: s.stop - s.start])
    return np.concatenate(outs).astype(np.float32)


def _predict_onnx_feeds(artifact: Artifact, session: Any, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """First output of a (multi-input) ONNX model fed one array per input name, batch by batch."""
    specs = session.get_inputs()
    names = [spec.name for spec in specs]
    missing = [name for name in names if name not in feeds]
    if missing:
        raise ModelError(
            f"{artifact.path.name} needs inputs {', '.join(names)}; the samples lack {', '.join(missing)}",
            hint=f"give one array per input name: {', '.join(names)}",
        )
    counts = {len(feeds[name]) for name in names}
    if len(counts) != 1:
        raise ModelError(
            f"the samples for {', '.join(names)} differ in length ({sorted(counts)})",
            hint="give as many samples for every input",
        )
    arrays: dict[str, np.ndarray] = {}
    for spec in specs:
        array: np.ndarray = np.ascontiguousarray(feeds[spec.name], dtype=_ORT_DTYPES.get(spec.type, np.float32))
        _check_rank(artifact, len(spec.shape), array)
        if any(isinstance(e, int) and e != a for e, a in zip(spec.shape[1:], array.shape[1:])):
            raise ModelError(
                f"{artifact.path.name}'s input {spec.name} has shape {tuple(spec.shape)}, its samples "
                f"{tuple(array.shape[1:])} per sample",
                hint="give samples of the model's input shapes",
            )
        arrays[spec.name] = array
    n = counts.pop()
    static = {s.shape[0] for s in specs if isinstance(s.shape[0], int) and s.shape[0] > 0}
    batch = min(static) if static else BATCH
    outs = []
    for part in _batches(n, batch):
        chunk = {name: a[part] for name, a in arrays.items()}
        if static and part.stop - part.start != batch:  # pad the last batch of a fixed-batch model
            chunk = {name: np.concatenate([c, np.repeat(c[-1:], batch - len(c), axis=0)]) for name, c in chunk.items()}
        outs.append(session.run(None, chunk)[0][: part.stop - part.start])
    return np.concatenate(outs).astype(np.float32)


def onnx_session(artifact: Artifact, *, threads: int = 1) -> Any:
    """An ORT CPU session; a damaged file becomes a ModelError."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(artifact.path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ORT raises its own InvalidProtobuf/Fail/InvalidGraph types: re-raised typed
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"{artifact.path} cannot be loaded by ONNX Runtime: {first}",
            hint="the file is corrupt or truncated: re-export it",
        ) from None


def _check_rank(artifact: Artifact, rank: int, x: np.ndarray) -> None:
    if rank != x.ndim:
        raise ModelError(
            f"{artifact.path.name} takes rank-{rank} inputs, the data is rank {x.ndim} {tuple(x.shape)}",
            hint="this model was made for another data set",
        )


def quantize(x: np.ndarray, quant: QuantParams, dtype: np.dtype) -> np.ndarray:
    """real -> integer with the tensor's per-tensor scale/zero point, rounded and saturated."""
    info = np.iinfo(dtype)
    q = np.round(x / quant.scale[0]) + quant.zero_point[0]
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, quant: QuantParams) -> np.ndarray:
    return ((q.astype(np.float32) - quant.zero_point[0]) * quant.scale[0]).astype(np.float32)


def _predict_tflite(artifact: Artifact, x: np.ndarray) -> np.ndarray:
    from edgekd.verify.model_io import tflite_interpreter

    interpreter = tflite_interpreter(artifact.path)
    in_detail = interpreter.get_input_details()[0]
    out_detail = interpreter.get_output_details()[0]
    in_spec = artifact.inputs[0] if artifact.inputs else None
    _check_rank(artifact, len(in_detail["shape"]), x)
    if x.ndim == 4 and (in_spec is None or in_spec.layout != "NCHW"):
        x = x.transpose(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C) for onnx2tf's channels-last inputs
    expected = tuple(int(d) for d in in_detail["shape"][1:])
    if expected != tuple(x.shape[1:]):
        raise ModelError(
            f"{artifact.path.name} expects inputs of shape {tuple(int(d) for d in in_detail['shape'])}, "
            f"the data has {tuple(x.shape[1:])} per sample",
            hint="this model was made for another data set or input size",
        )
    in_dtype = np.dtype(in_detail["dtype"])
    out_dtype = np.dtype(out_detail["dtype"])
    in_quant = _quant_of(in_detail)
    out_quant = _quant_of(out_detail)
    outs = []
    for i in range(len(x)):  # onnx2tf/litert-torch models have batch 1
        sample = x[i : i + 1]
        if in_dtype.kind in "iu":
            sample = quantize(sample, in_quant, in_dtype)
        interpreter.set_tensor(in_detail["index"], sample.astype(in_dtype, copy=False))
        try:
            interpreter.invoke()
        except RuntimeError as exc:
            raise ModelError(
                f"{artifact.path.name} fails in LiteRT on sample {i}: {runtime_failure(exc)}",
                hint="the converted model is broken for this data; try another precision or converter",
            ) from None
        out = interpreter.get_tensor(out_detail["index"])
        outs.append(dequantize(out, out_quant) if out_dtype.kind in "iu" else out.astype(np.float32))
    return np.concatenate(outs)


def runtime_failure(exc: BaseException) -> str:
    """LiteRT's invoke error in one line, naming the failing op: 'DIV (node 62): div.cc:262 ...'."""
    import re

    text = " ".join(str(exc).split())
    node = re.search(r"Node number (\d+) \((\w+)\) failed", text)
    return f"op {node.group(2)} (node {node.group(1)}): {text[:300]}" if node else text[:300]


def _quant_of(detail: dict[str, Any]) -> QuantParams:
    scale, zero_point = detail["quantization"]
    return QuantParams(scale=(float(scale) or 1.0,), zero_point=(int(zero_point),))
