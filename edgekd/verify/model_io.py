"""Open model files safely and describe their interfaces as TensorSpecs.

Shared by the converters (to describe what they wrote) and the parity backends (to feed inputs of the
right layout and dtype). A corrupt, truncated or foreign file becomes a ModelError naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekd.artifacts import QuantParams, TensorSpec
from edgekd.errors import ModelError

if TYPE_CHECKING:
    import onnx

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
            raise ModelError(f"{path} is not a valid ONNX model: {str(exc).splitlines()[0]}", hint="re-export it") from None
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
    """A LiteRT interpreter with tensors allocated; a damaged file becomes a ModelError."""
    from ai_edge_litert.interpreter import Interpreter

    try:
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
