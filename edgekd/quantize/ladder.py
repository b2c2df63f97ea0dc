"""The accuracy-budgeted quantization ladder for ONNX Runtime (issue 14, rungs 1-3).

Budget: the absolute top-1 accuracy drop of the int8 model versus the fp32 ONNX model, both run in ORT on
the validation samples. The ladder stops at the first rung that holds it:

1. **PTQ**: static QDQ, per-channel weights; the calibration method (minmax / percentile / entropy) is the
   one with the best measured accuracy.
2. **Sensitivity**: per Conv/MatMul/Gemm node, the error its quantization introduces (SQNR and cosine of
   its output, float vs QDQ) and the accuracy when only that node stays float -> `sensitivity.json`.
3. **Mixed precision**: keep the most sensitive nodes in float, greedily, until the budget holds; every
   step records accuracy, agreement with fp32 and ORT p50 latency (the accuracy-vs-latency curve).

Each rung writes its artifacts and a row in `ladder.json`. A row is reused when its `key` (a hash of the
inputs it was computed from) still matches, so a killed ladder resumes after its last finished rung.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.errors import ConversionError, DataError, ModelError, UsageError
from edgekd.quantize import ort_backend

LADDER_SCHEMA = "edgekd.quant_ladder/1"
SENSITIVITY_SCHEMA = "edgekd.sensitivity/1"
PRODUCER = "quant_ladder"
NOISE_SAMPLES = 2  # an accuracy gain smaller than this many validation samples does not rank an op
DEBUG_SAMPLES = 64  # samples run through the debug-augmented models (they output every tensor)


class BudgetNotMetError(ConversionError):
    """No rung of the ladder holds the accuracy budget; names the best rung reached and its drop."""

    def __init__(self, max_drop: float, best: dict[str, Any]) -> None:
        excluded = best.get("excluded") or []
        int16 = best.get("int16") or []
        float_ops = f", {len(excluded)} op(s) float: {', '.join(excluded)}" if excluded else ""
        float_ops += f", {len(int16)} op(s) int16: {', '.join(int16)}" if int16 else ""
        super().__init__(
            f"int8 cannot hold the accuracy budget (max drop {max_drop:.4f}): best rung {best['rung']} "
            f"({best['name']}{float_ops}) drops {best['drop']:.4f} (accuracy {best['accuracy']:.4f})",
            hint="raise --max-drop, give more representative calibration samples, or keep the fp32 model; "
            "the curve is in ladder.json",
        )
        self.best = best


@dataclass(frozen=True)
class LadderResult:
    """The rung that holds the budget, its model file, and every row of ladder.json."""

    chosen: dict[str, Any]
    model: Path
    rows: list[dict[str, Any]]
    reused: list[int]  # rungs taken from an earlier run's ladder.json


@dataclass
class _Context:
    """What every rung needs: the prepared float model, the samples, the fp32 reference and the work dir."""

    out: Path
    work: Path
    prepared: Path
    x_val: np.ndarray
    y_val: np.ndarray
    x_calib: np.ndarray
    fp32_pred: np.ndarray
    fp32_accuracy: float
    runs: int

    def measure(self, path: Path) -> dict[str, Any]:
        """Accuracy, drop vs fp32, top-1 agreement with fp32 and p50 latency of one model."""
        pred = ort_backend.predict(path, self.x_val)
        accuracy = float((pred == self.y_val).mean())
        return {
            "accuracy": round(accuracy, 6),
            "drop": round(self.fp32_accuracy - accuracy, 6),
            "agreement": round(float((pred == self.fp32_pred).mean()), 6),
            "p50_ms": round(ort_backend.p50_ms(path, self.x_val[0], self.runs), 5),
        }


def _hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _read_ladder(path: Path) -> dict[str, Any]:
    """An earlier ladder.json, or an empty one when absent or not ours (it is then rewritten)."""
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and data.get("schema") == LADDER_SCHEMA and isinstance(data.get("rows"), list):
            return data
    return {"schema": LADDER_SCHEMA, "rows": []}


def _write_json(path: Path, data: dict[str, Any], *, name: str, parent: str | None) -> str:
    from edgekd.artifacts import write_artifact

    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    return write_artifact(path, text.encode(), name=name, format="json", parent=parent, producer=PRODUCER).sha256


def _publish_model(src: Path, dest: Path, *, name: str, parent: str, config: dict[str, Any]) -> str:
    """Copy a candidate from the work dir to its final name atomically and describe it with a sidecar."""
    from edgekd.artifacts import create_artifact
    from edgekd.fileio import atomic_path
    from edgekd.verify.model_io import load_onnx, onnx_tensor_specs

    with atomic_path(dest, suffix=".onnx") as tmp:
        shutil.copyfile(src, tmp)
    inputs, outputs = onnx_tensor_specs(load_onnx(dest))
    return create_artifact(dest, name=name, format="onnx", precision="int8", inputs=inputs, outputs=outputs,
                           parent=parent, producer=PRODUCER, config=config).sha256


def _still_valid(row: dict[str, Any], key: str, out: Path) -> bool:
    """A finished row can be reused: same input key, and every file it names is unchanged."""
    from edgekd.fileio import sha256_file

    if row.get("key") != key:
        return False
    for file, sha in row.get("files", {}).items():
        path = out / file
        if not path.is_file() or sha256_file(path) != sha:
            return False
    return True


def _rung_ptq(ctx: _Context, parent: str) -> dict[str, Any]:
    """Rung 1: one QDQ model per calibration method; keep the most accurate (ties: the earlier method)."""
    candidates = []
    for method in ort_backend.METHODS:
        path = ort_backend.quantize_qdq(ctx.prepared, ctx.work / f"ptq.{method}.onnx", ctx.x_calib, method)
        candidates.append({"method": method, **ctx.measure(path)})
    best = max(candidates, key=lambda c: (c["accuracy"], c["agreement"]))
    dest = ctx.out / "ptq.int8.onnx"
    sha = _publish_model(ctx.work / f"ptq.{best['method']}.onnx", dest, name="onnx_int8_ptq", parent=parent,
                         config={"method": best["method"], "per_channel": True, "nodes_to_exclude": []})
    return {"rung": 1, "name": "ptq", "method": best["method"], "excluded": [], "int16": [], "candidates": candidates,
            **{k: best[k] for k in ("accuracy", "drop", "agreement", "p50_ms")},
            "model": dest.name, "files": {dest.name: sha}}


def _rung_sensitivity(ctx: _Context, ptq: dict[str, Any]) -> dict[str, Any]:
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
        ops.append({"node": node, "op_type": op_type, "output": alone.get("output"),
                    "weight_sqnr_db": alone.get("weight_sqnr_db"),
                    "alone": {"sqnr_db": alone.get("output_sqnr_db"), "cosine": alone.get("output_cosine"),
                              "worst_channel_sqnr_db": alone.get("worst_channel_sqnr_db")},
                    "in_ptq": {"sqnr_db": in_ptq.get(node, {}).get("output_sqnr_db"),
                               "cosine": in_ptq.get(node, {}).get("output_cosine"),
                               "worst_channel_sqnr_db": in_ptq.get(node, {}).get("worst_channel_sqnr_db")},
                    "accuracy_if_float": round(accuracy, 6),
                    "accuracy_gain": round(accuracy - ptq["accuracy"], 6)})
    # Most sensitive first: the largest accuracy gain when kept float, counted only beyond noise (a gain of
    # fewer than NOISE_SAMPLES validation samples is 0); then the lowest worst-channel SQNR when quantized alone.
    noise = NOISE_SAMPLES / len(ctx.y_val)
    ops.sort(key=lambda o: (-(o["accuracy_gain"] if o["accuracy_gain"] >= noise else 0.0),
                            _or_inf(o["alone"]["worst_channel_sqnr_db"]), _or_inf(o["alone"]["sqnr_db"])))
    for rank, op in enumerate(ops, start=1):
        op["rank"] = rank
    path = ctx.out / "sensitivity.json"
    sha = _write_json(path, {"schema": SENSITIVITY_SCHEMA, "method": method, "ptq_accuracy": ptq["accuracy"],
                             "fp32_accuracy": ctx.fp32_accuracy, "debug_samples": len(debug_x), "ops": ops},
                      name="sensitivity", parent=ptq["files"][ptq["model"]])
    return {"rung": 2, "name": "sensitivity", "method": method, "ranking": [o["node"] for o in ops],
            "excluded": [], "int16": [], **{k: ptq[k] for k in ("accuracy", "drop", "agreement", "p50_ms")},
            "most_sensitive": ops[0]["node"] if ops else None, "files": {path.name: sha}}


def _or_inf(value: float | None) -> float:
    return float("inf") if value is None else value


def _rung_mixed(ctx: _Context, sens: dict[str, Any], max_drop: float, parent: str, raise_to: str) -> dict[str, Any]:
    """Rung 3: raise the top-k sensitive nodes (to float, or to int16 activations) for k = 1, 2, ... until the
    budget holds. With int16, when even every node at int16 misses it, the same order continues in float."""
    ranking: list[str] = sens["ranking"]
    plan = [(ranking[:k], []) if raise_to == "float" else ([], ranking[:k]) for k in range(1, len(ranking) + 1)]
    if raise_to == "int16":
        plan += [(ranking[:k], ranking[k:]) for k in range(1, len(ranking) + 1)]
    curve = []
    for step, (excluded, int16) in enumerate(plan, start=1):
        path = ort_backend.quantize_qdq(ctx.prepared, ctx.work / f"mixed.{step}.onnx", ctx.x_calib, sens["method"],
                                        excluded, int16=int16)
        curve.append({"step": step, "excluded": excluded, "int16": int16, **ctx.measure(path)})
        if curve[-1]["drop"] <= max_drop:
            break
    if not curve:
        raise ConversionError("quantization ladder: the model has no Conv/MatMul/Gemm node to raise",
                              hint="nothing to trade: keep the fp32 model")
    holding = [s for s in curve if s["drop"] <= max_drop]
    best = holding[0] if holding else min(curve, key=lambda s: (s["drop"], s["step"]))
    dest = ctx.out / "mixed.int8.onnx"
    sha = _publish_model(ctx.work / f"mixed.{best['step']}.onnx", dest, name="onnx_int8_mixed", parent=parent,
                         config={"method": sens["method"], "per_channel": True, "nodes_to_exclude": best["excluded"],
                                 "int16_activations": best["int16"]})
    return {"rung": 3, "name": "mixed_precision", "method": sens["method"], "max_drop": max_drop,
            "raise_to": raise_to, "curve": curve,
            **{k: best[k] for k in ("accuracy", "drop", "agreement", "p50_ms", "excluded", "int16")},
            "model": dest.name, "files": {dest.name: sha}}


RAISE_TO = ("float", "int16")
OUTPUT_FILES = ("ladder.json", "ptq.int8.onnx", "sensitivity.json", "mixed.int8.onnx")


def _refuse_foreign_outputs(out: Path) -> None:
    """The ladder overwrites only files it wrote: a same-named file without its sidecar is the user's."""
    for name in OUTPUT_FILES:
        file = out / name
        side = out / f"{name}.json"
        ours = False
        with contextlib.suppress(OSError, ValueError):
            ours = json.loads(side.read_text(encoding="utf-8")).get("producer", "").startswith(PRODUCER)
        if file.exists() and not ours:
            raise UsageError(f"{file} exists and was not written by the quantization ladder",
                             hint="choose another --out directory (the ladder never overwrites a file it did not write)")


def _check_shapes(inputs: tuple, x_val: np.ndarray, x_calib: np.ndarray, data: Path, calibration: Path) -> None:
    """Validation and calibration samples must both fit the model's one input (batch dimension aside)."""
    if len(inputs) != 1:
        raise ConversionError(f"the quantization ladder handles one-input models; this one has {len(inputs)} inputs",
                              hint="quantize multi-input models with `edgekd quantize` (no accuracy budget)")
    expected = tuple(inputs[0].shape[1:])
    for path, x in ((data, x_val), (calibration, x_calib)):
        got = tuple(x.shape[1:])
        if len(got) != len(expected) or any(isinstance(e, int) and e != g for e, g in zip(expected, got)):
            raise DataError(f"samples in {Path(path).name} have shape {got} per sample; the model's input "
                            f"{inputs[0].name!r} takes {expected}",
                            hint="give samples preprocessed for this model (same layout and size as its input)")


def run_ladder(model: Path, data: Path, calibration: Path, out: Path, *, max_drop: float = 0.01,
               runs: int = 300, raise_to: str = "float") -> LadderResult:
    """Climb rungs 1-3 until the int8 model's accuracy drop is at most `max_drop`; everything lands in `out`."""
    import onnxruntime

    from edgekd import __version__
    from edgekd.fileio import sha256_file
    from edgekd.verify.model_io import load_onnx, onnx_tensor_specs

    model, out = Path(model), Path(out)
    if not np.isfinite(max_drop):
        raise UsageError(f"--max-drop must be a finite number, got {max_drop}", hint="e.g. --max-drop 0.01 (1 point)")
    if raise_to not in RAISE_TO:
        raise UsageError(f"--raise-to must be one of {', '.join(RAISE_TO)}, not {raise_to!r}",
                         hint="float: sensitive ops stay fp32 (fast on CPU); int16: 16-bit activations (for NPUs)")
    if not model.is_file():
        raise ModelError(f"{model} does not exist or is not a file", hint="give the fp32 .onnx model")
    inputs, _ = onnx_tensor_specs(load_onnx(model))  # a corrupt or non-ONNX file is refused here
    x_val, y_val = ort_backend.load_samples(Path(data), labels=True)
    x_calib, _ = ort_backend.load_samples(Path(calibration), labels=False)
    _check_shapes(inputs, x_val, x_calib, data, calibration)
    _refuse_foreign_outputs(out)
    out.mkdir(parents=True, exist_ok=True)
    model_sha = sha256_file(model)
    # what every rung depends on: the three input files, the methods tried, and the code that ran them
    base_key = _hash("base", model_sha, sha256_file(data), sha256_file(calibration), ort_backend.METHODS,
                     onnxruntime.__version__, __version__)
    ladder_path = out / "ladder.json"
    ladder = _read_ladder(ladder_path)
    old_rows = {row.get("rung"): row for row in ladder["rows"]}
    work = Path(tempfile.mkdtemp(prefix=".ladder-work-", dir=out))
    try:
        with ort_backend.temp_dir_inside(work):
            return _climb(model, model_sha, base_key, out, work, ladder_path, ladder, old_rows,
                          x_val, y_val, x_calib, max_drop, runs, raise_to)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # made by mkdtemp above: ours alone


def _climb(model: Path, model_sha: str, base_key: str, out: Path, work: Path, ladder_path: Path,
           ladder: dict[str, Any], old_rows: dict[Any, dict[str, Any]], x_val: np.ndarray, y_val: np.ndarray,
           x_calib: np.ndarray, max_drop: float, runs: int, raise_to: str) -> LadderResult:
    prepared = ort_backend.prepare(model, work / "prepared.onnx")
    fp32_pred = ort_backend.predict(model, x_val)
    fp32 = ladder.get("fp32") if ladder.get("fp32", {}).get("key") == base_key else None
    if fp32 is None:
        fp32 = {"key": base_key, "accuracy": round(float((fp32_pred == y_val).mean()), 6),
                "p50_ms": round(ort_backend.p50_ms(model, x_val[0], runs), 5)}
    ctx = _Context(out, work, prepared, x_val, y_val, x_calib, fp32_pred, fp32["accuracy"], runs)
    ladder = {"schema": LADDER_SCHEMA, "model": model.name, "model_sha256": model_sha, "max_drop": max_drop,
              "validation_samples": len(x_val), "calibration_samples": len(x_calib), "fp32": fp32, "rows": []}
    rows: list[dict[str, Any]] = ladder["rows"]
    reused: list[int] = []

    def finish(rung: int, key: str, make: Any) -> dict[str, Any]:
        old = old_rows.get(rung)
        if old is not None and not rows_changed and _still_valid(old, key, out):
            rows.append(old)
            reused.append(rung)
        else:
            start = time.perf_counter()
            row = make()
            rows.append({**row, "seconds": round(time.perf_counter() - start, 3), "key": key, "finished_at": _now()})
        _write_json(ladder_path, ladder, name="quant_ladder", parent=model_sha)
        return rows[-1]

    rows_changed = False  # once a rung is recomputed, every later rung is too
    key1 = _hash(base_key, "ptq")
    ptq = finish(1, key1, lambda: _rung_ptq(ctx, model_sha))
    rows_changed = 1 not in reused
    if ptq["drop"] <= max_drop:
        return _done(ladder, ladder_path, ptq, out, reused, model_sha)
    key2 = _hash(key1, ptq["files"])
    sens = finish(2, key2, lambda: _rung_sensitivity(ctx, ptq))
    rows_changed = rows_changed or 2 not in reused
    key3 = _hash(key2, sens["files"], max_drop, raise_to)
    mixed = finish(3, key3, lambda: _rung_mixed(ctx, sens, max_drop, ptq["files"][ptq["model"]], raise_to))
    if mixed["drop"] <= max_drop:
        return _done(ladder, ladder_path, mixed, out, reused, model_sha)
    best = min((r for r in rows if r["rung"] != 2), key=lambda r: (r["drop"], r["rung"]))
    raise BudgetNotMetError(max_drop, best)


def _done(ladder: dict[str, Any], path: Path, chosen: dict[str, Any], out: Path, reused: list[int],
          model_sha: str) -> LadderResult:
    ladder["chosen"] = {"rung": chosen["rung"], "model": chosen["model"]}
    _write_json(path, ladder, name="quant_ladder", parent=model_sha)
    return LadderResult(chosen=chosen, model=out / chosen["model"], rows=list(ladder["rows"]), reused=reused)
