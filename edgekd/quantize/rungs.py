"""Rungs 1-3 of the quantization ladder in ONNX Runtime: PTQ, per-op sensitivity, mixed precision."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgekd.errors import ConversionError
from edgekd.quantize import ort_backend, ort_candidates
from edgekd.quantize.ladder_state import SENSITIVITY_SCHEMA, RungContext, publish_model, tflite_rows, write_json

NOISE_SAMPLES = 2  # an accuracy gain smaller than this many validation samples does not rank an op
DEBUG_SAMPLES = 64  # samples run through the debug-augmented models (they output every tensor)
#: Rung 1's budget when the ladder does not pass one: no loss against fp32 at all (the strictest reading).
DEFAULT_RUNG1_DROP = 0.0


def _quantize(
    ctx: RungContext,
    name: str,
    config: dict[str, Any],
    exclude: Sequence[str] = (),
    only: Sequence[str] | None = None,
    int16: Sequence[str] = (),
) -> Path:
    """A QDQ model of one rung-1 configuration (method, scope and its float nodes, bias correction), with
    `exclude` nodes also float and `int16` nodes at 16-bit activations. `only`: just those nodes quantized
    (no bias correction: the error a node introduces alone)."""
    floats = list(dict.fromkeys([*config["scope_float"], *exclude]))
    scope = ort_candidates.SCOPES[config["scope"]]
    path = ort_backend.quantize_qdq(ctx.prepared, ctx.work / name, ctx.x_calib, config["method"], floats, only, int16,
                                    op_types=scope.op_types, float_outputs=scope.float_outputs)  # fmt: skip
    if config["bias_correction"] and only is None:
        path, _ = ort_candidates.correct_bias(ctx.prepared, path, path.with_suffix(".bc.onnx"), ctx.x_calib)
    return path


def _scope_float(ctx: RungContext, scope: ort_candidates.Scope) -> list[str]:
    """Weighted nodes a scope keeps float because ORT would not fuse them into an int8 kernel (it would run
    them in float after dequantizing their weights): found on ORT's optimized graph, until none is left."""
    floats: list[str] = []
    if scope.op_types is None:
        return floats
    for attempt in range(3):  # keeping one node float can leave a neighbour unfused: look again
        probe = ort_backend.quantize_qdq(ctx.prepared, ctx.work / f"scope.{attempt}.onnx", ctx.x_calib, "minmax",
                                         floats, op_types=scope.op_types, float_outputs=scope.float_outputs)  # fmt: skip
        more = [n for n in ort_candidates.unfused_nodes(probe, ctx.work) if n not in floats]
        if not more:
            break
        floats += more
    return floats


def best_ptq(ctx: RungContext, tag: str, max_drop: float | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One QDQ model of `ctx.prepared` per calibration method x scope x bias correction (files `<tag>.*` in the
    work dir), measured; `ort_candidates.choose` keeps the fast tier's most accurate one within `max_drop`
    (else the most accurate). Rung 1 calls it on the fp32 model, rung 4 on the QAT-trained one."""
    budget = DEFAULT_RUNG1_DROP if max_drop is None else max_drop
    scope_float = {scope: _scope_float(ctx, ops) for scope, ops in ort_candidates.SCOPES.items()}
    candidates: list[dict[str, Any]] = []
    paths: list[Path] = []
    for method in ort_backend.METHODS:
        for scope in ort_candidates.SCOPES:
            config = {"method": method, "scope": scope, "scope_float": scope_float[scope], "bias_correction": False}
            path = _quantize(ctx, f"{tag}.{method}.{scope}.onnx", config)
            corrected, nodes = ort_candidates.correct_bias(
                ctx.prepared, path, path.with_suffix(".bc.onnx"), ctx.x_calib
            )
            for bias_correction, model in ((False, path), (True, corrected)):
                if bias_correction and not nodes:
                    continue  # nothing to correct: the same model as without
                candidates.append({**config, "bias_correction": bias_correction, "file": model.name,
                                   **ctx.figures(model)})  # fmt: skip
                paths.append(model)
    p50s, graphs = ort_candidates.p50_ms_by_graph(paths, ctx.x_val[0], ctx.runs)
    for candidate, p50, graph in zip(candidates, p50s, graphs, strict=True):
        candidate.update(p50_ms=round(p50, 5), graph=graph)
    return ort_candidates.choose(candidates, budget), candidates


def rung_ptq(ctx: RungContext, parent: str, max_drop: float | None = None) -> dict[str, Any]:
    """Rung 1: `best_ptq` of the fp32 model within `max_drop`, published as ptq.int8.onnx (and the TFLite rows)."""
    budget = DEFAULT_RUNG1_DROP if max_drop is None else max_drop
    best, candidates = best_ptq(ctx, "ptq", budget)
    dest = ctx.out / "ptq.int8.onnx"
    sha = publish_model(
        ctx.work / best["file"],
        dest,
        name="onnx_int8_ptq",
        parent=parent,
        config={"per_channel": True, "nodes_to_exclude": best["scope_float"], **config_of(best)},
    )
    ort = {k: best[k] for k in ("accuracy", "drop", "agreement", "p50_ms")}
    tflite, tflite_files = tflite_rows(ctx, ctx.model, "ptq", parent)
    return {
        "rung": 1,
        "name": "ptq",
        **config_of(best),
        "scope_float": best["scope_float"],
        "chosen_by": f"within drop {budget}: fastest p50 (+{ort_candidates.LATENCY_TOLERANCE:.0%}), most accurate; "
        "none within: most accurate",
        "excluded": best["scope_float"],
        "int16": [],
        "candidates": candidates,
        **ort,
        "model": dest.name,
        "runtimes": {"ort": {**ort, "model": dest.name}, **tflite},
        "files": {dest.name: sha, **tflite_files},
    }


def config_of(row: dict[str, Any]) -> dict[str, Any]:
    """The fields that reproduce a rung-1 model: method, scope (its op types) and bias correction."""
    scope = ort_candidates.SCOPES[row["scope"]]
    return {"method": row["method"], "scope": row["scope"], "op_types": scope.op_types,
            "float_outputs": scope.float_outputs, "bias_correction": row["bias_correction"]}  # fmt: skip


def _ptq_config(ptq: dict[str, Any]) -> dict[str, Any]:
    """Rung 1's chosen configuration, for rungs 2-3 (rows written before scopes existed: ORT's default)."""
    return {"method": ptq["method"], "scope": ptq.get("scope", "all"), "scope_float": ptq.get("scope_float", []),
            "bias_correction": ptq.get("bias_correction", False)}  # fmt: skip


def rung_sensitivity(ctx: RungContext, ptq: dict[str, Any]) -> dict[str, Any]:
    """Rung 2: per weighted node, the error its quantization introduces and the accuracy with only it float.

    Error is measured twice: `alone` (only this node quantized: the error it introduces by itself) and
    `in_ptq` (the rung-1 model, so upstream error is included, as qdq_loss_debug reports it).
    """
    config = _ptq_config(ptq)
    method = config["method"]
    debug_x = ctx.x_val[:DEBUG_SAMPLES]
    in_ptq = ort_backend.node_output_errors(ctx.prepared, ctx.out / ptq["model"], debug_x, ctx.work)
    ops = []
    for node, op_type in ort_backend.weighted_nodes(ctx.prepared):
        if node in config["scope_float"]:
            continue  # rung 1's scope already keeps it float: nothing to rank
        alone_model = _quantize(ctx, "alone.onnx", config, only=[node])
        alone = ort_backend.node_output_errors(ctx.prepared, alone_model, debug_x, ctx.work).get(node, {})
        variant = _quantize(ctx, "only_float.onnx", config, [node])
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
        **config_of(config),
        "scope_float": config["scope_float"],
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
    config = _ptq_config(sens)
    files: dict[int, Path] = {}
    plan = [(ranking[:k], []) if raise_to == "float" else ([], ranking[:k]) for k in range(1, len(ranking) + 1)]
    if raise_to == "int16":
        plan += [(ranking[:k], ranking[k:]) for k in range(1, len(ranking) + 1)]
    curve = []
    for step, (raised, int16) in enumerate(plan, start=1):
        path = files[step] = _quantize(ctx, f"mixed.{step}.onnx", config, raised, int16=int16)
        excluded = list(dict.fromkeys([*config["scope_float"], *raised]))  # every node left float
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
        files[best["step"]],
        dest,
        name="onnx_int8_mixed",
        parent=parent,
        config={
            **config_of(config),
            "per_channel": True,
            "nodes_to_exclude": best["excluded"],
            "int16_activations": best["int16"],
        },
    )
    return {
        "rung": 3,
        "name": "mixed_precision",
        **config_of(config),
        "max_drop": max_drop,
        "raise_to": raise_to,
        "curve": curve,
        **{k: best[k] for k in ("accuracy", "drop", "agreement", "p50_ms", "excluded", "int16")},
        "runtimes": {"ort": {**{k: best[k] for k in ("accuracy", "drop", "agreement", "p50_ms")}, "model": dest.name}},
        "model": dest.name,
        "files": {dest.name: sha},
    }
