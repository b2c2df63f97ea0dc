"""Op audit of a model file: which ops, how many, how many layout transposes, and what will not run where.

For TFLite files: the ops TensorFlow Lite Micro has no kernel for (a firmware build would fail on them).
For ORT int8 files: the compute nodes left in float (no quantized input), where int8 speed and size are lost.
Stored in report.json under `ops`.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from edgekd.artifacts import Artifact
from edgekd.verify.model_io import ONNX_QUANTIZED_OPS

if TYPE_CHECKING:
    import onnx

# Builtin ops with a kernel in TensorFlow Lite Micro, read from the `Register_*` symbols of the pinned
# tflite-micro build (python/tflite_micro/_runtime.so) (GELU, for one, is absent).
_TFLM_SYMBOLS = """ABS ADD ADD_N ARG_MAX ARG_MIN ASSIGN_VARIABLE AVERAGE_POOL_2D BATCH_MATMUL BATCH_TO_SPACE_ND BROADCAST_ARGS
    BROADCAST_TO CALL_ONCE CAST CEIL CONCATENATION CONV_2D COS CUMSUM DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE
    DETECTION_POSTPROCESS DIV DYNAMIC_UPDATE_SLICE ELU EMBEDDING_LOOKUP EQUAL EXP EXPAND_DIMS FILL FLOOR FLOOR_DIV
    FLOOR_MOD FULLY_CONNECTED GATHER GATHER_ND GREATER GREATER_EQUAL HARD_SWISH IF L2_NORMALIZATION L2_POOL_2D
    LEAKY_RELU LESS LESS_EQUAL LOG LOGICAL_AND LOGICAL_NOT LOGICAL_OR LOGISTIC LOG_SOFTMAX MAXIMUM MAX_POOL_2D MEAN
    MINIMUM MIRROR_PAD MUL NEG NOT_EQUAL PACK PAD PADV2 PRELU QUANTIZE READ_VARIABLE REDUCE_ALL REDUCE_MAX REDUCE_MIN
    RELU RELU6 RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR REVERSE_V2 ROUND RSQRT SELECT_V2 SHAPE SIN SLICE
    SOFTMAX SPACE_TO_BATCH_ND SPACE_TO_DEPTH SPLIT SPLIT_V SQRT SQUARE SQUARED_DIFFERENCE SQUEEZE STRIDED_SLICE SUB
    SUM SVDF TANH TRANSPOSE TRANSPOSE_CONV UNIDIRECTIONAL_SEQUENCE_LSTM UNPACK VAR_HANDLE WHILE ZEROS_LIKE"""
TFLM_BUILTIN_OPS = frozenset(_TFLM_SYMBOLS.split())

# TFLM runs full-int8 and fp32 models; fp16 weights and hybrid (dynamic-range) kernels are not supported.
_TFLM_PRECISIONS = ("fp32", "int8")

# ONNX ops that move or reshape data and do no arithmetic worth quantizing.
_ONNX_DATA_MOVEMENT = frozenset(
    {
        "Reshape",
        "Flatten",
        "Transpose",
        "Squeeze",
        "Unsqueeze",
        "Shape",
        "Gather",
        "Concat",
        "Constant",
        "Identity",
        "Cast",
        "Slice",
        "Split",
        "Expand",
        "ConstantOfShape",
        "Range",
    }
)


def audit(artifact: Artifact) -> dict[str, Any]:
    """Op counts and deployment warnings for an ONNX or TFLite artifact; {} for other formats."""
    if artifact.format == "onnx":
        return audit_onnx(artifact)
    if artifact.format == "tflite":
        return audit_tflite(artifact)
    return {}


def audit_onnx(artifact: Artifact) -> dict[str, Any]:
    from edgekd.verify.model_io import load_onnx

    model = load_onnx(artifact.path, check=False)
    counts = Counter(node.op_type for node in model.graph.node)
    result: dict[str, Any] = {
        "runtime": "onnxruntime",
        "ops": dict(sorted(counts.items())),
        "total": sum(counts.values()),
        "transpose_count": counts.get("Transpose", 0),
    }
    if artifact.precision == "int8":
        left = float_nodes(model)
        result["float_nodes"] = left
        result["float_node_count"] = len(left)
    return result


def float_nodes(model: onnx.ModelProto) -> list[dict[str, str]]:
    """Compute nodes of a QDQ or dynamic-int8 graph that still run in float: none of their inputs come
    from a DequantizeLinear (QDQ) and they are not integer kernels themselves (dynamic)."""
    dequantized = {out for node in model.graph.node if node.op_type == "DequantizeLinear" for out in node.output}
    left = []
    for node in model.graph.node:
        if node.op_type in ONNX_QUANTIZED_OPS or node.op_type in _ONNX_DATA_MOVEMENT:
            continue
        if not any(name in dequantized for name in node.input):
            left.append({"name": node.name, "op": node.op_type})
    return left


def tflite_ops(path: Any) -> list[str]:
    """Builtin (or custom) op names of a .tflite file in execution order, without delegates applied."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edgekd.errors import ModelError

    try:
        interpreter = Interpreter(
            model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
    except (ValueError, RuntimeError) as exc:
        raise ModelError(
            f"{path} is not a readable TFLite model: {str(exc).splitlines()[0] if str(exc) else exc!r}"
        ) from None
    return [str(op["op_name"]) for op in interpreter._get_ops_details()]


def audit_tflite(artifact: Artifact) -> dict[str, Any]:
    ops = tflite_ops(artifact.path)
    counts = Counter(ops)
    unsupported = sorted(op for op in counts if op not in TFLM_BUILTIN_OPS)
    notes = []
    if artifact.precision not in _TFLM_PRECISIONS:
        notes.append(
            f"TFLite Micro does not run {artifact.precision} models (fp16 weights / hybrid kernels); use int8 or fp32"
        )
    if any(op.startswith("Flex") or op == "CUSTOM" for op in counts):
        notes.append("the model needs TensorFlow (Flex) or custom ops: it runs only with the Flex delegate")
    return {
        "runtime": "litert",
        "ops": dict(sorted(counts.items())),
        "total": len(ops),
        "transpose_count": counts.get("TRANSPOSE", 0),
        "tflm_unsupported": unsupported,
        "tflm_compatible": not unsupported and artifact.precision in _TFLM_PRECISIONS,
        "notes": notes,
    }
