"""Views of per-op profiles: top-N ops, time by op type, and fp32 vs int8 by op type.

All views take `OpProfile`s (any runtime) and return plain rows (dicts), so the CLI, report.md and the HTML
report print the same numbers. Q/DQ nodes are counted from the ONNX file itself (onnx package), not from
the profile, since ORT fuses some of them away at run time.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from edgekd.errors import ModelError
from edgekd.profile.schema import OpProfile

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
#: ORT's quantized kernels -> the float op they replace, so fp32 and int8 rows meet on one op type.
INT8_KERNELS = {
    "QLinearConv": "Conv",
    "ConvInteger": "Conv",
    "QGemm": "Gemm",
    "QLinearMatMul": "MatMul",
    "MatMulInteger": "MatMul",
    "MatMulIntegerToFloat": "MatMul",
    "DynamicQuantizeMatMul": "MatMul",
    "QLinearAdd": "Add",
    "QLinearMul": "Mul",
    "QLinearSigmoid": "Sigmoid",
    "QLinearLeakyRelu": "LeakyRelu",
    "QLinearSoftmax": "Softmax",
    "QLinearConcat": "Concat",
    "QLinearAveragePool": "AveragePool",
    "QLinearGlobalAveragePool": "GlobalAveragePool",
    "QLinearReduceMean": "ReduceMean",
    "QLinearWhere": "Where",
    "QAttention": "Attention",
}
#: ORT's layout and fusion variants -> the op they implement (NHWC kernels, NCHWc-fused activations), so an int8
#: graph's NhwcMaxPool meets the fp32 graph's MaxPool.
LAYOUT_KERNELS = {
    "NhwcMaxPool": "MaxPool",
    "NhwcConv": "Conv",
    "FusedConv": "Conv",
    "FusedGemm": "Gemm",
    "FusedMatMul": "MatMul",
}
_XNNPACK_OPERATOR = re.compile(r"^(.+?) \([^)]*\)( .*)?$")  # "Convolution (NHWC, QC8) IGEMM" -> "Convolution"


def base_op_type(op_type: str) -> str:
    """The precision-free op type: ORT int8 kernels map to their float op, XNNPACK operators lose their
    layout/datatype and microkernel (`Convolution (NHWC, QC8) IGEMM` and `... (NHWC, F32) GEMM` -> Convolution)."""
    if op_type in INT8_KERNELS:
        return INT8_KERNELS[op_type]
    if op_type in LAYOUT_KERNELS:
        return LAYOUT_KERNELS[op_type]
    match = _XNNPACK_OPERATOR.match(op_type)
    return match.group(1) if match else op_type


#: An op type counts as faster/slower in the fp32-vs-int8 view when its time changes by more than this
#: fraction (0.10 = 10 %) and by more than the floor (`change_floor_ms`); smaller changes are "same".
CHANGE_MARGIN = 0.10
#: ms; about ORT's profiler cost per node (5-7 µs, bench/results/profile.json): smaller changes are noise.
CHANGE_FLOOR_MS = 0.005


def change_floor_ms(fp32: OpProfile, int8: OpProfile) -> float:
    """The smallest per-op-type change that counts: CHANGE_FLOOR_MS, or CHANGE_MARGIN of the larger model
    total when that is smaller, so a model of a few microseconds (the demo's TFLite files, 2-6 µs) still
    names the op types that make its int8 slower."""
    return min(CHANGE_FLOOR_MS, CHANGE_MARGIN * max(fp32.total_ms, int8.total_ms))


def top_ops(profile: OpProfile, n: int = 10) -> list[dict[str, Any]]:
    """The `n` rows costing most time, with their share of the profile's total."""
    total = profile.total_ms or 1.0
    rows = sorted(profile.rows, key=lambda row: row.ms, reverse=True)[: max(0, n)]
    return [{**row.to_dict(), "share": row.ms / total} for row in rows]


def by_op_type(profile: OpProfile, *, base: bool = False) -> list[dict[str, Any]]:
    """Time per op type (sum over its nodes), most expensive first: op_type, ms, nodes, calls, share, providers,
    kernels (the op types grouped). `base=True` groups by `base_op_type` (for precision comparisons)."""
    groups: dict[str, dict[str, Any]] = {}
    for row in profile.rows:
        key = base_op_type(row.op_type) if base else row.op_type
        group = groups.setdefault(
            key, {"op_type": key, "ms": 0.0, "nodes": 0, "calls": 0.0, "providers": [], "kernels": []}
        )
        if row.op_type not in group["kernels"]:
            group["kernels"].append(row.op_type)
        group["ms"] += row.ms
        group["nodes"] += 1
        group["calls"] += row.calls
        if row.provider not in group["providers"]:
            group["providers"].append(row.provider)
    total = profile.total_ms or 1.0
    return [
        {**group, "share": group["ms"] / total}
        for group in sorted(groups.values(), key=lambda g: g["ms"], reverse=True)
    ]


def count_op_types(onnx_path: str | Path) -> Counter[str]:
    """How many nodes of each op type the ONNX graph holds (main graph; subgraphs are not walked)."""
    import onnx

    path = Path(onnx_path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - onnx raises DecodeError/OSError variants for bad files
        raise ModelError(
            f"cannot read ONNX model {path}: {str(exc).splitlines()[0] if str(exc) else exc}", hint="give an .onnx file"
        ) from None
    return Counter(node.op_type for node in model.graph.node)


def count_qdq(onnx_path: str | Path) -> dict[str, int]:
    """QuantizeLinear / DequantizeLinear node counts of an ONNX file."""
    counts = count_op_types(onnx_path)
    return {op: counts.get(op, 0) for op in QDQ_OPS}


def compare_by_op_type(fp32: OpProfile, int8: OpProfile) -> list[dict[str, Any]]:
    """fp32 vs int8 per op type: op_type, fp32_ms, int8_ms, delta_ms (int8 - fp32), ratio, kernels, verdict.

    Op types are compared by `base_op_type`, so int8 kernels (QLinearConv) meet the float op they replace
    (Conv); `kernels_fp32`/`kernels_int8` list what ran. `verdict` is "slower"/"faster" when the int8 time
    differs by more than CHANGE_MARGIN and `change_floor_ms`, "same" otherwise, "int8 only" for op types the fp32 model does not run
    (QuantizeLinear, DequantizeLinear, a Relu ORT no longer fuses) and "fp32 only" for those int8 removed.
    Rows are ordered by delta_ms, the largest slowdown first, so the op types responsible for a slower int8
    model come first.
    """
    a = {row["op_type"]: row for row in by_op_type(fp32, base=True)}
    b = {row["op_type"]: row for row in by_op_type(int8, base=True)}
    floor = change_floor_ms(fp32, int8)
    rows = []
    for op_type in dict.fromkeys([*a, *b]):
        fp32_ms = a[op_type]["ms"] if op_type in a else None
        int8_ms = b[op_type]["ms"] if op_type in b else None
        if fp32_ms is None:
            verdict = "int8 only"
        elif int8_ms is None:
            verdict = "fp32 only"
        elif int8_ms > fp32_ms * (1 + CHANGE_MARGIN) and int8_ms - fp32_ms > floor:
            verdict = "slower"
        elif int8_ms < fp32_ms * (1 - CHANGE_MARGIN) and fp32_ms - int8_ms > floor:
            verdict = "faster"
        else:
            verdict = "same"
        rows.append(
            {
                "op_type": op_type,
                "fp32_ms": fp32_ms,
                "int8_ms": int8_ms,
                "delta_ms": (int8_ms or 0.0) - (fp32_ms or 0.0),
                "ratio": int8_ms / fp32_ms if fp32_ms and int8_ms is not None else None,
                "nodes_fp32": a[op_type]["nodes"] if op_type in a else 0,
                "nodes_int8": b[op_type]["nodes"] if op_type in b else 0,
                "kernels_fp32": a[op_type]["kernels"] if op_type in a else [],
                "kernels_int8": b[op_type]["kernels"] if op_type in b else [],
                "verdict": verdict,
            }
        )
    return sorted(rows, key=lambda row: row["delta_ms"], reverse=True)


def int8_summary(fp32: OpProfile, int8: OpProfile, int8_onnx: str | Path | None = None) -> dict[str, Any]:
    """Totals of the comparison and the op types named: `slower` (slower, or int8-only time such as Q/DQ,
    largest cost first), `faster`, `fp32_only` (removed by int8), plus the Q/DQ node count of the int8 file."""
    rows = compare_by_op_type(fp32, int8)
    summary: dict[str, Any] = {
        "fp32_ms": fp32.total_ms,
        "int8_ms": int8.total_ms,
        "slower": [r["op_type"] for r in rows if r["verdict"] in ("slower", "int8 only") and r["delta_ms"] > 0],
        "faster": [r["op_type"] for r in rows if r["verdict"] == "faster"],
        "fp32_only": [r["op_type"] for r in rows if r["verdict"] == "fp32 only"],
        "rows": rows,
    }
    if int8_onnx is not None:
        summary["qdq_nodes"] = count_qdq(int8_onnx)
    return summary
