"""op_resolver.h: a `tflite::MicroMutableOpResolver<N>` with exactly the model's operators.

The table below is what `tensorflow/lite/micro/micro_mutable_op_resolver.h` offers (tflite-micro main,
commit 90b983c, August 2026): TFLite builtin operator -> the resolver's Add…() method. A model operator
missing from it does not run on TFLite Micro ("Didn't find op for builtin opcode …"), so the bundle for a
microcontroller refuses it. The header cannot be compiled here without the TFLM sources, so `verify.py`
checks it structurally (check_op_resolver_header) and says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgekd.errors import HandoffError
from edgekd.handoff.c_array import c_comment, generated_banner
from edgekd.handoff.identifiers import BundleSymbols
from edgekd.handoff.tflite_reader import OperatorCode

TFLM_BUILTINS: dict[str, str] = {
    "ABS": "AddAbs",
    "ADD": "AddAdd",
    "ADD_N": "AddAddN",
    "ARG_MAX": "AddArgMax",
    "ARG_MIN": "AddArgMin",
    "ASSIGN_VARIABLE": "AddAssignVariable",
    "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul",
    "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
    "BROADCAST_ARGS": "AddBroadcastArgs",
    "BROADCAST_TO": "AddBroadcastTo",
    "CALL_ONCE": "AddCallOnce",
    "CAST": "AddCast",
    "CEIL": "AddCeil",
    "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D",
    "COS": "AddCos",
    "CUMSUM": "AddCumSum",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEQUANTIZE": "AddDequantize",
    "DIV": "AddDiv",
    "DYNAMIC_UPDATE_SLICE": "AddDynamicUpdateSlice",
    "ELU": "AddElu",
    "EMBEDDING_LOOKUP": "AddEmbeddingLookup",
    "EQUAL": "AddEqual",
    "EXP": "AddExp",
    "EXPAND_DIMS": "AddExpandDims",
    "FILL": "AddFill",
    "FLOOR": "AddFloor",
    "FLOOR_DIV": "AddFloorDiv",
    "FLOOR_MOD": "AddFloorMod",
    "FULLY_CONNECTED": "AddFullyConnected",
    "GATHER": "AddGather",
    "GATHER_ND": "AddGatherNd",
    "GREATER": "AddGreater",
    "GREATER_EQUAL": "AddGreaterEqual",
    "HARD_SWISH": "AddHardSwish",
    "IF": "AddIf",
    "L2_NORMALIZATION": "AddL2Normalization",
    "L2_POOL_2D": "AddL2Pool2D",
    "LEAKY_RELU": "AddLeakyRelu",
    "LESS": "AddLess",
    "LESS_EQUAL": "AddLessEqual",
    "LOG": "AddLog",
    "LOGICAL_AND": "AddLogicalAnd",
    "LOGICAL_NOT": "AddLogicalNot",
    "LOGICAL_OR": "AddLogicalOr",
    "LOGISTIC": "AddLogistic",
    "LOG_SOFTMAX": "AddLogSoftmax",
    "MAXIMUM": "AddMaximum",
    "MAX_POOL_2D": "AddMaxPool2D",
    "MEAN": "AddMean",
    "MINIMUM": "AddMinimum",
    "MIRROR_PAD": "AddMirrorPad",
    "MUL": "AddMul",
    "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual",
    "PACK": "AddPack",
    "PAD": "AddPad",
    "PADV2": "AddPadV2",
    "PRELU": "AddPrelu",
    "QUANTIZE": "AddQuantize",
    "READ_VARIABLE": "AddReadVariable",
    "REDUCE_ALL": "AddReduceAll",
    "REDUCE_MAX": "AddReduceMax",
    "REDUCE_MIN": "AddReduceMin",
    "RELU": "AddRelu",
    "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape",
    "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor",
    "REVERSE_V2": "AddReverseV2",
    "ROUND": "AddRound",
    "RSQRT": "AddRsqrt",
    "SELECT_V2": "AddSelectV2",
    "SHAPE": "AddShape",
    "SIN": "AddSin",
    "SLICE": "AddSlice",
    "SOFTMAX": "AddSoftmax",
    "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd",
    "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit",
    "SPLIT_V": "AddSplitV",
    "SQRT": "AddSqrt",
    "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference",
    "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub",
    "SUM": "AddSum",
    "SVDF": "AddSvdf",
    "TANH": "AddTanh",
    "TRANSPOSE": "AddTranspose",
    "TRANSPOSE_CONV": "AddTransposeConv",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
    "UNPACK": "AddUnpack",
    "VAR_HANDLE": "AddVarHandle",
    "WHILE": "AddWhile",
    "ZEROS_LIKE": "AddZerosLike",
}

#: Custom operators TFLM registers by name -> the resolver method that adds them.
TFLM_CUSTOM: dict[str, str] = {
    "CIRCULAR_BUFFER": "AddCircularBuffer",
    "TFLite_Detection_PostProcess": "AddDetectionPostprocess",
    "TFLM_DECODE": "AddDecode",
    "ethos-u": "AddEthosU",
    "SignalDelay": "AddDelay",
    "SignalEnergy": "AddEnergy",
    "SignalFftAutoScale": "AddFftAutoScale",
    "SignalFilterBank": "AddFilterBank",
    "SignalFilterBankLog": "AddFilterBankLog",
    "SignalFilterBankSquareRoot": "AddFilterBankSquareRoot",
    "SignalFramer": "AddFramer",
    "SignalIrfft": "AddIrfft",
    "SignalOverlapAdd": "AddOverlapAdd",
    "SignalPCAN": "AddPCAN",
    "SignalRfft": "AddRfft",
    "SignalStacker": "AddStacker",
    "SignalWindow": "AddWindow",
}

#: Tensor types TFLM kernels do not handle at all (fp16 weights need a float16-capable runtime).
TFLM_UNSUPPORTED_TYPES = frozenset({"FLOAT16", "BFLOAT16", "FLOAT64", "COMPLEX64", "COMPLEX128", "STRING"})

RESOLVER_INCLUDE = "tensorflow/lite/micro/micro_mutable_op_resolver.h"


@dataclass(frozen=True)
class ResolverEntry:
    op: str  # "CONV_2D" or "CUSTOM:SignalWindow"
    method: str | None  # "AddConv2D"; None when TFLM has no kernel for it


def resolver_entries(codes: list[OperatorCode]) -> list[ResolverEntry]:
    """One entry per distinct operator, in the model's first-use order."""
    entries = []
    for code in codes:
        method = (
            TFLM_CUSTOM.get(code.custom_name or "") if code.builtin == "CUSTOM" else TFLM_BUILTINS.get(code.builtin)
        )
        entries.append(ResolverEntry(code.label, method))
    return entries


def unsupported_ops(entries: list[ResolverEntry]) -> list[str]:
    return [entry.op for entry in entries if entry.method is None]


def require_tflm_support(entries: list[ResolverEntry], tensor_types: set[str], *, model: str) -> None:
    """Raise a HandoffError naming every operator and tensor type TFLite Micro cannot run."""
    missing = unsupported_ops(entries)
    bad_types = sorted(tensor_types & TFLM_UNSUPPORTED_TYPES)
    if not missing and not bad_types:
        return
    parts = []
    if missing:
        parts.append(f"operator{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    if bad_types:
        parts.append(f"tensor type{'s' if len(bad_types) > 1 else ''} {', '.join(bad_types)}")
    raise HandoffError(
        f"{model} uses {' and '.join(parts)} that TensorFlow Lite Micro does not support",
        hint="use full int8 (or fp32) and TFLM-supported layers (e.g. ReLU instead of GELU), "
        'or set [handoff] platform = "linux" / "android" to bundle for a full TFLite runtime',
    )


def render_op_resolver_header(
    entries: list[ResolverEntry], symbols: BundleSymbols, *, source: str, edgekd_version: str
) -> str:
    """The header: a resolver type with the exact op count and one inline function adding each op."""
    supported = [entry for entry in entries if entry.method]
    guard = symbols.header_guard("op_resolver_h")
    lines = [
        generated_banner(source, edgekd_version).rstrip("\n"),
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        f'#include "{RESOLVER_INCLUDE}"',
        "",
        f"// The {len(supported)} operator{'s' if len(supported) != 1 else ''} {source} uses, nothing more:",
        *(f"//   {c_comment(entry.op)}" for entry in supported),
        f"using {symbols.resolver_type} = tflite::MicroMutableOpResolver<{len(supported)}>;",
        "",
        "// Returns kTfLiteOk when every operator was added.",
        f"inline TfLiteStatus {symbols.resolver_function}({symbols.resolver_type}& resolver) {{",
        *(f"  if (resolver.{entry.method}() != kTfLiteOk) return kTfLiteError;" for entry in supported),
        "  return kTfLiteOk;",
        "}",
        "",
    ]
    skipped = [c_comment(entry.op) for entry in entries if not entry.method]
    if skipped:  # only for linux/android bundles, where TFLM is not the runtime
        lines += [
            f"// Not available in TFLite Micro (this bundle targets a full TFLite runtime): {', '.join(skipped)}",
            "",
        ]
    lines += [f"#endif  // {guard}", ""]
    return "\n".join(lines)


_TEMPLATE = re.compile(r"tflite::MicroMutableOpResolver<\s*(\d+)\s*>")
_ADD_CALL = re.compile(r"resolver\.(Add[A-Za-z0-9]+)\(\)")


def check_op_resolver_header(text: str, entries: list[ResolverEntry], symbols: BundleSymbols) -> dict:
    """Structural check of op_resolver.h (it needs TFLM headers to compile, which are not on the host).

    Checks: the include, one resolver template whose N equals the number of Add calls, the Add calls are
    exactly the expected methods (each once, all existing in TFLM), balanced braces, header guard.
    """
    problems = []
    expected = [entry.method for entry in entries if entry.method]
    counts = [int(n) for n in _TEMPLATE.findall(text)]
    calls = _ADD_CALL.findall(text)
    if f'#include "{RESOLVER_INCLUDE}"' not in text:
        problems.append(f'missing #include "{RESOLVER_INCLUDE}"')
    if len(counts) != 1:
        problems.append(f"expected one MicroMutableOpResolver<N>, found {len(counts)}")
    elif counts[0] != len(calls):
        problems.append(f"MicroMutableOpResolver<{counts[0]}> but {len(calls)} Add calls")
    if sorted(calls) != sorted(expected):
        problems.append(f"Add calls {calls} differ from the model's operators {expected}")
    if len(set(calls)) != len(calls):
        problems.append("an operator is added twice (AddX fails the second time)")
    known = set(TFLM_BUILTINS.values()) | set(TFLM_CUSTOM.values())
    if unknown := [call for call in calls if call not in known]:
        problems.append(f"not TFLM resolver methods: {unknown}")
    if text.count("{") != text.count("}"):
        problems.append("unbalanced braces")
    guard = symbols.header_guard("op_resolver_h")
    if f"#ifndef {guard}" not in text or f"#define {guard}" not in text:
        problems.append("missing header guard")
    if symbols.resolver_function not in text:
        problems.append(f"missing {symbols.resolver_function}()")
    if problems:
        raise HandoffError(
            "op_resolver.h failed its structural check: " + "; ".join(problems),
            hint="this is a bug in edgekd's generator; please report it with the model",
        )
    return {
        "check": "structural (TFLM headers not on the host; not compiled)",
        "op_count": len(calls),
        "methods": calls,
    }
