"""Read what the handoff needs from a .tflite flatbuffer: operators, tensors, interface, schema version.

The schema bindings come from `ai_edge_litert` (the host interpreter edgekd already depends on for TFLite),
or from `tflite_micro` when only that is installed; both ship the generated `schema_py_generated` module.
Nothing here runs the model.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from edgekd.artifacts import QuantParams, TensorSpec
from edgekd.errors import HandoffError, ModelError

_SCHEMA_MODULES = (
    "ai_edge_litert.schema_py_generated",
    "tflite_micro.tensorflow.lite.micro.python.schema_py_generated",
)

#: TFLite TensorType name -> (numpy dtype name, bytes per element). STRING/RESOURCE/VARIANT have no fixed size.
TENSOR_TYPES: dict[str, tuple[str, int]] = {
    "FLOAT32": ("float32", 4),
    "FLOAT16": ("float16", 2),
    "FLOAT64": ("float64", 8),
    "BFLOAT16": ("bfloat16", 2),
    "INT8": ("int8", 1),
    "UINT8": ("uint8", 1),
    "INT16": ("int16", 2),
    "UINT16": ("uint16", 2),
    "INT32": ("int32", 4),
    "UINT32": ("uint32", 4),
    "INT64": ("int64", 8),
    "UINT64": ("uint64", 8),
    "BOOL": ("bool", 1),
    "INT4": ("int4", 1),
    "COMPLEX64": ("complex64", 8),
    "COMPLEX128": ("complex128", 16),
}


@dataclass(frozen=True)
class OperatorCode:
    """One distinct operator the model uses: a builtin name ("CONV_2D") or a custom op's name."""

    builtin: str  # "CUSTOM" for custom ops
    version: int
    custom_name: str | None = None

    @property
    def label(self) -> str:
        return f"CUSTOM:{self.custom_name}" if self.builtin == "CUSTOM" else self.builtin


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a subgraph, with what the arena planner needs to know about it."""

    index: int
    name: str
    shape: tuple[int, ...]
    type_name: str  # TFLite TensorType name: "INT8", "FLOAT32", ...
    constant: bool  # backed by a non-empty buffer in the flatbuffer (weights): not in the arena
    variable: bool
    quant: QuantParams | None

    @property
    def nbytes(self) -> int:
        count = 1
        for dim in self.shape:
            count *= max(int(dim), 1)
        return count * TENSOR_TYPES.get(self.type_name, ("", 4))[1]


@dataclass(frozen=True)
class OperatorUse:
    """One node of a subgraph: which operator code, which tensors in and out (-1 = optional, absent)."""

    opcode_index: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    intermediates: tuple[int, ...] = ()


@dataclass(frozen=True)
class SubgraphInfo:
    tensors: tuple[TensorInfo, ...]
    operators: tuple[OperatorUse, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class TfliteModel:
    """The parts of a .tflite model the bundle describes, checks and plans memory for."""

    schema_version: int
    operator_codes: tuple[OperatorCode, ...]
    subgraphs: tuple[SubgraphInfo, ...]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    input_tensor_names: tuple[str, ...]  # the flatbuffer's own tensor names, beside the signature names
    output_tensor_names: tuple[str, ...]
    metadata: dict[str, str]

    @property
    def main(self) -> SubgraphInfo:
        return self.subgraphs[0]

    def used_operator_codes(self) -> list[OperatorCode]:
        """Operator codes referenced by at least one node, in first-use order, without duplicates."""
        seen: dict[str, OperatorCode] = {}
        for subgraph in self.subgraphs:
            for op in subgraph.operators:
                code = self.operator_codes[op.opcode_index]
                seen.setdefault(code.label, code)
        return list(seen.values())

    def tensor_types(self) -> set[str]:
        return {t.type_name for sub in self.subgraphs for t in sub.tensors}


def schema_module() -> ModuleType:
    """The generated TFLite schema bindings from whichever runtime package is installed."""
    for name in _SCHEMA_MODULES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise HandoffError(
        "cannot read .tflite files: neither ai-edge-litert nor tflite-micro is installed",
        hint="pip install 'edgekd[tflite]' (ai-edge-litert) or 'edgekd[micro]' (tflite-micro)",
    )


def _enum_names(enum_class: type) -> dict[int, str]:
    return {value: key for key, value in vars(enum_class).items() if not key.startswith("_") and isinstance(value, int)}


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _quant(params: Any) -> QuantParams | None:
    if params is None or params.scale is None or len(params.scale) == 0:
        return None
    zero_points = [int(z) for z in params.zeroPoint] if params.zeroPoint is not None else [0] * len(params.scale)
    axis = int(params.quantizedDimension) if len(params.scale) > 1 else None
    return QuantParams(tuple(float(s) for s in params.scale), tuple(zero_points), axis)


def read_tflite(path: Path) -> TfliteModel:
    """Parse a .tflite file; a file that is not a TFLite flatbuffer becomes a ModelError."""
    data = Path(path).read_bytes()
    return parse_tflite(data, source=str(path))


def parse_tflite(data: bytes, *, source: str = "<bytes>") -> TfliteModel:
    schema = schema_module()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError(f"{source} is not a TFLite model (no 'TFL3' identifier)", hint="give a .tflite file")
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(data), 0))
    except Exception as exc:  # noqa: BLE001 - flatbuffers raises plain errors (IndexError, struct.error, ...) on truncated input
        raise ModelError(f"{source} is not a readable TFLite model: {exc}", hint="the file may be truncated") from None
    op_names = _enum_names(schema.BuiltinOperator)
    type_names = _enum_names(schema.TensorType)
    codes = tuple(
        OperatorCode(
            builtin=op_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), f"UNKNOWN_{code.builtinCode}"),
            version=int(code.version or 1),
            custom_name=_text(code.customCode) or None,
        )
        for code in (model.operatorCodes or [])
    )
    buffers = model.buffers or []
    subgraphs = tuple(_subgraph(sub, buffers, type_names) for sub in (model.subgraphs or []))
    if not subgraphs:
        raise ModelError(f"{source} has no subgraph", hint="the converter produced an empty model")
    names_in, names_out = _signature_names(model)
    main = subgraphs[0]
    inputs = tuple(_spec(main.tensors[i], names_in.get(i)) for i in main.inputs)
    outputs = tuple(_spec(main.tensors[i], names_out.get(i)) for i in main.outputs)
    metadata = {}
    for entry in model.metadata or []:
        raw = buffers[entry.buffer].data if entry.buffer < len(buffers) else None
        text = bytes(raw).split(b"\0", 1)[0].decode("ascii", errors="replace") if raw is not None else ""
        metadata[_text(entry.name)] = text if text.isprintable() else f"<{len(raw) if raw is not None else 0} bytes>"
    return TfliteModel(
        schema_version=int(model.version),
        operator_codes=codes,
        subgraphs=subgraphs,
        inputs=inputs,
        outputs=outputs,
        input_tensor_names=tuple(main.tensors[i].name for i in main.inputs),
        output_tensor_names=tuple(main.tensors[i].name for i in main.outputs),
        metadata=metadata,
    )


def _subgraph(sub: Any, buffers: list[Any], type_names: dict[int, str]) -> SubgraphInfo:
    tensors = []
    for index, tensor in enumerate(sub.tensors or []):
        buffer = buffers[tensor.buffer] if 0 < tensor.buffer < len(buffers) else None
        has_data = buffer is not None and (
            (buffer.data is not None and len(buffer.data) > 0) or int(getattr(buffer, "size", 0) or 0) > 0
        )
        tensors.append(
            TensorInfo(
                index=index,
                name=_text(tensor.name),
                shape=tuple(int(d) for d in (tensor.shape if tensor.shape is not None else ())),
                type_name=type_names.get(tensor.type, f"TYPE_{tensor.type}"),
                constant=has_data,
                variable=bool(tensor.isVariable),
                quant=_quant(tensor.quantization),
            )
        )
    operators = tuple(
        OperatorUse(
            opcode_index=int(op.opcodeIndex),
            inputs=tuple(int(i) for i in (op.inputs if op.inputs is not None else ())),
            outputs=tuple(int(i) for i in (op.outputs if op.outputs is not None else ())),
            intermediates=tuple(int(i) for i in (op.intermediates if op.intermediates is not None else ())),
        )
        for op in (sub.operators or [])
    )
    return SubgraphInfo(
        tensors=tuple(tensors),
        operators=operators,
        inputs=tuple(int(i) for i in (sub.inputs if sub.inputs is not None else ())),
        outputs=tuple(int(i) for i in (sub.outputs if sub.outputs is not None else ())),
    )


def _signature_names(model: Any) -> tuple[dict[int, str], dict[int, str]]:
    """Tensor index -> signature name ("image", "probs") of the first signature of subgraph 0."""
    for signature in model.signatureDefs or []:
        if int(signature.subgraphIndex or 0) == 0:
            return (
                {int(t.tensorIndex): _text(t.name) for t in signature.inputs or []},
                {int(t.tensorIndex): _text(t.name) for t in signature.outputs or []},
            )
    return {}, {}


def _spec(tensor: TensorInfo, signature_name: str | None) -> TensorSpec:
    dtype = TENSOR_TYPES.get(tensor.type_name, (tensor.type_name.lower(), 0))[0]
    return TensorSpec(name=signature_name or tensor.name, shape=tensor.shape, dtype=dtype, quant=tensor.quant)
