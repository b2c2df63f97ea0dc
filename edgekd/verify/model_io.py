"""Open model files safely and describe their interfaces as TensorSpecs.

Shared by the converters (to describe what they wrote) and the parity backends (to feed inputs of the
right layout and dtype). A corrupt, truncated or foreign file becomes a ModelError naming the file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekd.artifacts import QuantParams, TensorSpec
from edgekd.errors import ModelError

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

# ONNX TensorProto element types -> numpy dtype names (the ones a classifier can have at its edges).
_ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 10: "float16", 11: "float64"}


def load_onnx(path: Path, *, check: bool = True) -> onnx.ModelProto:
    """Parse an ONNX file; with `check`, also run onnx.checker so a damaged graph is refused early."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as exc:
        raise ModelError(
            f"{path} is not a readable ONNX file ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'decode failed'})",
            hint="the file is corrupt or truncated: re-export it (edgekd export) or rerun the export stage",
        ) from None
    if not model.graph.node or not model.graph.input:
        raise ModelError(f"{path} holds no ONNX graph", hint="the file is corrupt or not an ONNX model: re-export it")
    if check:
        try:
            onnx.checker.check_model(model)
        except onnx.checker.ValidationError as exc:
            raise ModelError(
                f"{path} is not a valid ONNX model: {str(exc).splitlines()[0]}", hint="re-export it"
            ) from None
    return model


def _onnx_shape(value_info: Any) -> tuple[int | str, ...]:
    dims: list[int | str] = []
    for dim in value_info.type.tensor_type.shape.dim:
        dims.append(int(dim.dim_value) if dim.HasField("dim_value") else (dim.dim_param or "?"))
    return tuple(dims)


def _layout(shape: tuple[int | str, ...], *, channels_last: bool = False) -> str | None:
    return {4: "NHWC" if channels_last else "NCHW", 3: "NCW", 2: "NC"}.get(len(shape))


def onnx_tensor_specs(model: onnx.ModelProto) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Graph inputs (minus initializers, which old exporters list as inputs) and outputs."""
    initializers = {init.name for init in model.graph.initializer}

    def spec(value_info: Any) -> TensorSpec:
        shape = _onnx_shape(value_info)
        dtype = _ONNX_DTYPES.get(value_info.type.tensor_type.elem_type, "unknown")
        return TensorSpec(name=value_info.name, shape=shape, dtype=dtype, layout=_layout(shape))

    inputs = tuple(spec(v) for v in model.graph.input if v.name not in initializers)
    outputs = tuple(spec(v) for v in model.graph.output)
    return inputs, outputs


def tflite_interpreter(path: Path, *, num_threads: int = 1, preserve_all_tensors: bool = False) -> Any:
    """A LiteRT interpreter with tensors allocated; a damaged file becomes a ModelError.

    LiteRT's C++ runtime prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." to file
    descriptor 2 when it allocates; that is captured (not the user's console), other lines go to the log."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        with native_stderr_captured():
            interpreter = Interpreter(
                model_path=str(path), num_threads=num_threads, experimental_preserve_all_tensors=preserve_all_tensors
            )
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(
            f"{path} is not a loadable TFLite model: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            hint="the file is corrupt, truncated or uses ops this LiteRT lacks: reconvert it",
        ) from None
    return interpreter


@contextlib.contextmanager
def native_stderr_captured() -> Iterator[None]:
    """Point file descriptor 2 at a temp file while native code runs; its INFO lines are dropped, anything
    else (warnings, errors) is passed on to the `logging` warning channel afterwards.

    Setting TF_CPP_MIN_LOG_LEVEL does not silence LiteRT 2.3's own logger (measured): only the descriptor can."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", errors="replace")
    for line in text.splitlines():
        if line.strip() and not line.startswith("INFO: "):
            log.warning("LiteRT: %s", line.strip())


def _tflite_spec(detail: dict[str, Any], layout: str | None) -> TensorSpec:
    import numpy as np

    shape = tuple(int(d) for d in detail["shape"])
    dtype = np.dtype(detail["dtype"]).name
    quant = None
    params = detail.get("quantization_parameters") or {}
    scales = [float(s) for s in params.get("scales", [])]
    if dtype in ("int8", "uint8", "int16") and scales:
        zero_points = [int(z) for z in params.get("zero_points", [])]
        axis = int(params.get("quantized_dimension", 0)) if len(scales) > 1 else None
        quant = QuantParams(scale=tuple(scales), zero_point=tuple(zero_points), axis=axis)
    return TensorSpec(name=detail["name"], shape=shape, dtype=dtype, layout=layout, quant=quant)


def tflite_tensor_specs(
    path: Path, *, image_layout: str = "NHWC"
) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Inputs/outputs of a .tflite file. `image_layout` names the layout of 4-D inputs: onnx2tf makes them
    channels-last (NHWC) unless asked to keep NCHW; the converter that wrote the file knows which."""
    interpreter = tflite_interpreter(path)

    def layout_of(detail: dict[str, Any]) -> str | None:
        return image_layout if len(detail["shape"]) == 4 else _layout(tuple(int(x) for x in detail["shape"]))

    inputs = tuple(_tflite_spec(d, layout_of(d)) for d in interpreter.get_input_details())
    outputs = tuple(_tflite_spec(d, layout_of(d)) for d in interpreter.get_output_details())
    return inputs, outputs


#: ONNX ops that only exist in quantized graphs (QDQ, dynamic and QOperator formats): a graph holding one is
#: int8 (onnx_precision), and they are integer kernels, not float nodes left in an int8 graph (verify.ops).
ONNX_QUANTIZED_OPS = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
        "QLinearConv",
        "QLinearMatMul",
        "MatMulInteger",
        "ConvInteger",
        "DynamicQuantizeMatMul",
        "QGemm",
        "QLinearAdd",
        "QLinearMul",
    }
)


def tflite_precision(path: Path) -> str:
    """fp32, fp16, dynamic_range or int8, read from a .tflite file's tensor types (never its name).

    int8: some op *produces* an 8/16-bit integer tensor (activations are integer; float I/O is allowed).
    dynamic_range: integer weights, float activations (hybrid kernels). fp16: float16 weights. Else fp32."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        interpreter = Interpreter(
            model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
    except (ValueError, RuntimeError) as exc:
        raise ModelError(
            f"{path} is not a readable TFLite model: {str(exc).splitlines()[0] if str(exc) else exc!r}",
            hint="the file is corrupt or truncated: reconvert it",
        ) from None
    dtypes = {int(d["index"]): np.dtype(d["dtype"]).name for d in interpreter.get_tensor_details()}
    produced = {int(i) for op in interpreter._get_ops_details() for i in op["outputs"]}  # LiteRT's only op listing
    integer = {"int8", "uint8", "int16"}
    if any(dtypes.get(i) in integer for i in produced):
        return "int8"
    if integer & set(dtypes.values()):
        return "dynamic_range"
    return "fp16" if "float16" in dtypes.values() else "fp32"


def onnx_precision(model: onnx.ModelProto) -> str:
    """int8 (quantization ops or 8-bit weights), fp16 (float16 weights or inputs) or fp32, from the graph itself."""
    if any(node.op_type in ONNX_QUANTIZED_OPS for node in model.graph.node):
        return "int8"
    weight_types = {init.data_type for init in model.graph.initializer}
    if weight_types & {2, 3}:  # UINT8, INT8
        return "int8"
    input_types = {v.type.tensor_type.elem_type for v in model.graph.input}
    return "fp16" if 10 in weight_types | input_types else "fp32"  # 10: FLOAT16


def model_precision(artifact: Any) -> str:
    """The one decision of an artifact's precision from its own tensors: TFLite and ONNX files are read,
    torch models are fp32 (edgekd's torch artifacts are float)."""
    if artifact.format == "tflite":
        return tflite_precision(artifact.path)
    if artifact.format == "onnx":
        return onnx_precision(load_onnx(artifact.path, check=False))
    return "fp32"
