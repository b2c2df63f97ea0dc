"""Int8 diagnosis: which layers make a quantized model drift from its float parent.

Both models are run on the same few samples with every intermediate tensor exposed; tensors are paired
(ONNX: by name, since ORT's QDQ graph keeps the float graph's tensor names; TFLite: by position among the
compute ops, since onnx2tf writes the same op sequence and only adds QUANTIZE/DEQUANTIZE at the edges).
For each pair the relative error ||q - f|| / ||f|| is computed in execution order; the layers where it
grows most over the previous layer are the ones to keep in float or recalibrate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekd.artifacts import Artifact

TOP_K = 3
SAMPLES = 8


def worst_layers(
    quantized: Artifact, float_model: Artifact, x: np.ndarray, *, top_k: int = TOP_K
) -> list[dict[str, Any]]:
    """The `top_k` layers where the int8 error grows most; [] when the formats can't be paired."""
    if isinstance(x, dict):  # named inputs of a multi-input model: layer pairing runs single-input models only
        return []
    x = np.ascontiguousarray(x[:SAMPLES], dtype=np.float32)
    if quantized.format == "onnx" and float_model.format == "onnx":
        pairs = _onnx_pairs(quantized, float_model, x)
    elif quantized.format == "tflite" and float_model.format == "tflite":
        pairs = _tflite_pairs(quantized, float_model, x)
    else:
        return []
    return rank_growth(pairs, top_k=top_k)


def rank_growth(pairs: list[tuple[str, str, np.ndarray, np.ndarray]], *, top_k: int = TOP_K) -> list[dict[str, Any]]:
    """`pairs` = (layer, op, quantized values, float values) in execution order -> top growth rows."""
    rows: list[dict[str, Any]] = []
    previous = 0.0
    for layer, op, q, f in pairs:
        if q.shape != f.shape or f.size == 0:
            continue
        norm = float(np.linalg.norm(f))
        error = float(np.linalg.norm(q.astype(np.float64) - f)) / norm if norm > 0 else 0.0
        rows.append({"layer": layer, "op": op, "relative_error": round(error, 6), "growth": round(error - previous, 6)})
        previous = error
    return sorted(rows, key=_growth, reverse=True)[:top_k]


def _growth(row: dict[str, Any]) -> float:
    return float(row["growth"])


def _expose_intermediates(path: Any) -> tuple[bytes, list[tuple[str, str]]]:
    """The model bytes with every float node output added as a graph output, and (tensor, op) in order."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    typed = {v.name: v for v in model.graph.value_info}
    existing = {o.name for o in model.graph.output}
    order: list[tuple[str, str]] = []
    for node in model.graph.node:
        for name in node.output:
            info = typed.get(name)
            if info is None or info.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
                continue
            if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
                continue
            order.append((name, node.op_type))
            if name not in existing:
                model.graph.output.append(info)
                existing.add(name)
    return model.SerializeToString(), order


def _onnx_run_all(path: Any, x: np.ndarray) -> tuple[dict[str, np.ndarray], list[tuple[str, str]]]:
    import onnxruntime as ort

    blob, order = _expose_intermediates(path)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor alive
    options.log_severity_level = 3
    session = ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])
    in_spec = session.get_inputs()[0]
    static = in_spec.shape[0] if isinstance(in_spec.shape[0], int) else None
    names = [o.name for o in session.get_outputs()]
    collected: dict[str, list[np.ndarray]] = {n: [] for n in names}
    step = static or len(x)
    for i in range(0, len(x) - (len(x) % step if static else 0), step):
        for name, value in zip(names, session.run(names, {in_spec.name: x[i : i + step]})):
            collected[name].append(np.asarray(value, dtype=np.float32))
    return {n: np.concatenate(v) for n, v in collected.items() if v}, order


def _onnx_pairs(
    quantized: Artifact, float_model: Artifact, x: np.ndarray
) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    q_values, _ = _onnx_run_all(quantized.path, x)
    f_values, order = _onnx_run_all(float_model.path, x)
    return [(name, op, q_values[name], f_values[name]) for name, op in order if name in q_values and name in f_values]


def _tflite_compute_outputs(path: Any, x: np.ndarray, nhwc: bool) -> list[tuple[str, str, list[np.ndarray]]]:
    """(tensor name, op, per-sample float values) for each compute op's output, in execution order."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_path=str(path),
        experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interpreter.allocate_tensors()
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    ops = [op for op in interpreter._get_ops_details() if op["op_name"] not in ("QUANTIZE", "DEQUANTIZE")]
    inp = interpreter.get_input_details()[0]
    collected: list[tuple[str, str, list[np.ndarray]]] = [
        (details[int(op["outputs"][0])]["name"], str(op["op_name"]), []) for op in ops
    ]
    for i in range(len(x)):
        sample = x[i : i + 1].transpose(0, 2, 3, 1) if (nhwc and x.ndim == 4) else x[i : i + 1]
        if np.dtype(inp["dtype"]).kind in "iu":
            scale, zero = inp["quantization"]
            info = np.iinfo(inp["dtype"])
            sample = np.clip(np.round(sample / scale) + zero, info.min, info.max)
        interpreter.set_tensor(inp["index"], sample.astype(inp["dtype"]))
        interpreter.invoke()
        for (name, _op, values), op in zip(collected, ops):
            detail = details[int(op["outputs"][0])]
            value = interpreter.get_tensor(detail["index"])
            if np.dtype(detail["dtype"]).kind in "iu" and detail["quantization"][0]:
                scale, zero = detail["quantization"]
                value = (value.astype(np.float32) - zero) * scale
            values.append(np.asarray(value, dtype=np.float32))
    return collected


def _tflite_pairs(
    quantized: Artifact, float_model: Artifact, x: np.ndarray
) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    q_nhwc = not (quantized.inputs and quantized.inputs[0].layout == "NCHW")
    f_nhwc = not (float_model.inputs and float_model.inputs[0].layout == "NCHW")
    q_ops = _tflite_compute_outputs(quantized.path, x, q_nhwc)
    f_ops = _tflite_compute_outputs(float_model.path, x, f_nhwc)
    if [op for _, op, _ in q_ops] != [op for _, op, _ in f_ops]:
        return []  # different op sequences: positions do not pair up
    return [(f_name, op, np.concatenate(qv), np.concatenate(fv)) for (_, op, qv), (f_name, _, fv) in zip(q_ops, f_ops)]
