"""Rungs 1-3 of the quantization ladder in ONNX Runtime: PTQ, per-op sensitivity, mixed precision."""

from __future__ import annotations

from typing import Any

from edgekd.errors import ConversionError
from edgekd.quantize import ort_backend
from edgekd.quantize.ladder_state import SENSITIVITY_SCHEMA, RungContext, publish_model, tflite_rows, write_json

NOISE_SAMPLES = 2  # an accuracy gain smaller than this many validation samples does not rank an op
DEBUG_SAMPLES = 64  # samples run through the debug-augmented models (they output every tensor)


def rung_ptq(ctx: RungContext, parent: str) -> dict[str, Any]:
    """Rung 1: one QDQ model per calibration method; keep the most accurate (ties: the earlier method)."""
    candidates = []
    for method in ort_backend.METHODS:
        path = ort_backend.quantize_qdq(ctx.prepared, ctx.work / f"ptq.{method}.onnx", ctx.x_calib, method)
        candidates.append({"method": method, **ctx.measure(path)})
    best = max(candidates, key=lambda c: (c["accuracy"], c["agreement"]))
    dest = ctx.out / "ptq.int8.onnx"
    sha = publish_model(
        ctx.work / f"ptq.{best['method']}.onnx",
        dest,
        name="onnx_int8_ptq",
        parent=parent,
        config={"method": best["method"], "per_channel": True, "nodes_to_exclude": []},
    )
    ort = {k: best[k] for k in ("accuracy", "drop", "agreement", "p50_ms")}
    tflite, tflite_files = tflite_rows(ctx, ctx.model, "ptq", parent)
    return {
        "rung": 1,
        "name": "ptq",
        "method": best["method"],
        "excluded": [],
        "int16": [],
        "candidates": candidates,
        **ort,
        "model": dest.name,
        "runtimes": {"ort": {**ort, "model": dest.name}, **tflite},
        "files": {dest.name: sha, **tflite_files},
    }


def rung_sensitivity(ctx: RungContext, ptq: dict[str, Any]) -> dict[str, Any]:
    """Rung 2: per weighted node, the error its quantization introduces and the accuracy with only it float.

    Error is measured twice: `alone` (only this node quantized: the error it introduces by itself) and
    `in_ptq` (the rung-1 model, so upstream error is included, as qdq_loss_debug reports it).
    """
    method = ptq["method"]
    debug_x = ctx.x_val[:DEBUG_SAMPLES]
    in_ptq = ort_backend.node_output_errors(ctx.prepared, ctx.out / ptq["model"], debug_x, ctx.work)
    ops = []
    for node, op_type in ort_backend.weighted_nodes(ctx.prepared):
        alone_model = ort_backend.quantize_qdq(ctx.prepared, ctx.work / "alone.onnx", ctx.x_calib, method, only=[node])
        alone = ort_backend.node_output_errors(ctx.prepared, alone_model, debug_x, ctx.work).get(node, {})
        variant = ort_backend.quantize_qdq(ctx.prepared, ctx.work / "only_float.onnx", ctx.x_calib, method, [node])
        accuracy = float((ort_backend.predict(variant, ctx.x_val) == ctx.y_val).mean())
        ops.append(
            {
                "node": node,
                "op_type": op_type,
                "output": alone.get("output"),
                "weight_sqnr_db": alone.get("weight_sqnr_db"),
                "alone": {
                    "sqnr_db": alone.get("output_sqnr_db"),
                    "cosine": alone.get("output_cosine"),
                    "worst_channel_sqnr_db": alone.get("worst_channel_sqnr_db"),
                },
                "in_ptq": {
                    "sqnr_db": in_ptq.get(node, {}).get("output_sqnr_db"),
                    "cosine": in_ptq.get(node, {}).get("output_cosine"),
                    "worst_channel_sqnr_db": in_ptq.get(node, {}).get("worst_channel_sqnr_db"),
                },
                "accuracy_if_float": round(accuracy, 6),
                "accuracy_gain": round(accuracy - ptq["accuracy"], 6),
            }
        )
    # Most sensitive first: the largest accuracy gain when kept float, counted only beyond noise (a gain of
    # fewer than NOISE_SAMPLES validation samples is 0); then the lowest worst-channel SQNR when quantized alone.
    noise = NOISE_SAMPLES / len(ctx.y_val)
    ops.sort(
        key=lambda o: (
            -(o["accuracy_gain"] if o["accuracy_gain"] >= noise else 0.0),
            _or_inf(o["alone"]["worst_channel_sqnr_db"]),
            _or_inf(o["alone"]["sqnr_db"]),
        )
    )
    for rank, op in enumerate(ops, start=1):
        op["rank"] = rank
    path = ctx.out / "sensitivity.json"
    sha = write_json(
        path,
        {
            "schema": SENSITIVITY_SCHEMA,
            "method": method,
            "ptq_accuracy": ptq["accuracy"],
            "fp32_accuracy": ctx.fp32_accuracy,
            "debug_samples": len(debug_x),
            "ops": ops,
        },
        name="sensitivity",
        parent=ptq["files"][ptq["model"]],
    )
    return {
        "rung": 2,
        "name": "sensitivity",
        "method": method,
        "ranking": [o["node"] for o in ops],
        "excluded": [],
        "int16": [],
        **{k: ptq[k] for k in ("accuracy", "drop", "agreement", "p50_ms")},
        "most_sensitive": ops[0]["node"] if ops else None,
        "files": {path.name: sha},
    }


def _or_inf(value: float | None) -> float:
    return float("inf") if value is None else value


def rung_mixed(ctx: RungContext, sens: dict[str, Any], max_drop: float, parent: str, raise_to: str) -> dict[str, Any]:
    """Rung 3: raise the top-k sensitive nodes (to float, or to int16 activations) for k = 1, 2, ... until the
    budget holds. With int16, when even every node at int16 misses it, the same order continues in float."""
    ranking: list[str] = sens["ranking"]
    plan = [(ranking[:k], []) if raise_to == "float" else ([], ranking[:k]) for k in range(1, len(ranking) + 1)]
    if raise_to == "int16":
        plan += [(ranking[:k], ranking[k:]) for k in range(1, len(ranking) + 1)]
    curve = []
    for step, (excluded, int16) in enumerate(plan, start=1):
        path = ort_backend.quantize_qdq(
            ctx.prepared, ctx.work / f"mixed.{step}.onnx", ctx.x_calib, sens["method"], excluded, int16=int16
        )
        curve.append({"step": step, "excluded": excluded, "int16": int16, **ctx.measure(path)})
        if curve[-1]["drop"] <= max_drop:
            break
    if not curve:
        raise ConversionError(
            "quantization ladder: the model has no Conv/MatMul/Gemm node to raise",
            hint="nothing to trade: keep the fp32 model",
        )
    holding = [s for s in curve if s["drop"] <= max_drop]
    best = holding[0] if holding else min(curve, key=lambda s: (s["drop"], s["step"]))
    dest = ctx.out / "mixed.int8.onnx"
    sha = publish_model(
        ctx.work / f"mixed.{best['step']}.onnx",
        dest,
        name="onnx_int8_mixed",
        parent=parent,
        config={
            "method": sens["method"],
            "per_channel": True,
            "nodes_to_exclude": best["excluded"],
            "int16_activations": best["int16"],
        },
    )
    return {
        "rung": 3,
        "name": "mixed_precision",
        "method": sens["method"],
        "max_drop": max_drop,
        "raise_to": raise_to,
        "curve": curve,
        **{k: best[k] for k in ("accuracy", "drop", "agreement", "p50_ms", "excluded", "int16")},
        "runtimes": {"ort": {**{k: best[k] for k in ("accuracy", "drop", "agreement", "p50_ms")}, "model": dest.name}},
        "model": dest.name,
        "files": {dest.name: sha},
    }
