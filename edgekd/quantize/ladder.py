"""The accuracy-budgeted quantization ladder for ONNX Runtime (issue 14, rungs 1-3).

Budget: the absolute top-1 accuracy drop of the int8 model versus the fp32 ONNX model, both run in ORT on
the validation samples. The ladder stops at the first rung that holds it:

1. **PTQ**: static QDQ, per-channel weights; candidates are calibration method x op scope x bias correction
   (edgekd.quantize.ort_candidates), and `ort_candidates.choose` keeps the most accurate of the fastest ones
   within the budget (docs/QUANTIZATION.md).
2. **Sensitivity**: per Conv/MatMul/Gemm node, the error its quantization introduces (SQNR and cosine of
   its output, float vs QDQ) and the accuracy when only that node stays float -> `sensitivity.json`.
3. **Mixed precision**: keep the most sensitive nodes in float, greedily, until the budget holds; every
   step records accuracy, agreement with fp32 and ORT p50 latency (the accuracy-vs-latency curve).
4. **Quantization-aware distillation** (edgekd.quantize.qat), when QAT inputs (torch student, teacher,
   training samples) are given and a runtime is still outside the budget: exported to ORT QDQ and LiteRT int8.

Runtimes: with `runtimes` naming "litert" / "tflm", rung 1 also converts the fp32 model to full-int8 TFLite
(onnx2tf) and measures it in LiteRT / TensorFlow Lite Micro; rungs 2-3 then do the same for LiteRT through
ai-edge-quantizer on the fp32 .tflite (edgekd.quantize.litert_rungs: a `litert` section in sensitivity.json,
`aeq.int8.tflite` and `mixed.int8.tflite`), and rung 4 converts the QAT model. Rungs 2-3 run when any runtime
misses the budget at rung 1. Every row keeps its ORT figures at the top level and, per runtime, in `runtimes`.
`LadderResult.recommended` names, per runtime, the fastest rung within the budget.

Each rung writes its artifacts and a row in `ladder.json`. A row is reused when its `key` (a hash of the
inputs it was computed from) still matches, so a killed ladder resumes after its last finished rung.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.errors import ConversionError, DataError, ModelError, UsageError
from edgekd.quantize import litert_rungs, ort_backend
from edgekd.quantize import qat as qat_module
from edgekd.quantize.ladder_state import (
    LADDER_SCHEMA,
    PRODUCER,
    RungContext,
    key_of,
    now,
    read_ladder,
    refuse_foreign_outputs,
    still_valid,
    write_json,
)
from edgekd.quantize.qat import QatInputs
from edgekd.quantize.rungs import rung_mixed, rung_ptq, rung_sensitivity

__all__ = ["PRODUCER", "BudgetNotMetError", "LadderResult", "run_ladder"]


class BudgetNotMetError(ConversionError):
    """No rung of the ladder holds the accuracy budget; names the best rung reached and its drop."""

    def __init__(self, max_drop: float, best: dict[str, Any], others: list[dict[str, Any]] | None = None) -> None:
        excluded = best.get("excluded") or []
        int16 = best.get("int16") or []
        float_ops = f", {len(excluded)} op(s) float: {', '.join(excluded)}" if excluded else ""
        float_ops += f", {len(int16)} op(s) int16: {', '.join(int16)}" if int16 else ""
        where = "" if best.get("runtime", "ort") == "ort" else f" in {best['runtime']}"
        also = "".join(f"; in {o['runtime']} too: best rung {o['rung']} ({o['name']}) {_outcome(o)}"
                       for o in others or [])  # fmt: skip
        super().__init__(
            f"int8{where} cannot hold the accuracy budget (max drop {max_drop:.4f}): best rung {best['rung']} "
            f"({best['name']}{float_ops}) {_outcome(best)}{also}",
            hint="raise --max-drop, give more representative calibration samples, give the ladder QAT inputs "
            "(student, teacher, training samples), or keep the fp32 model; the curve is in ladder.json",
        )
        self.best = best


def _outcome(best: dict[str, Any]) -> str:
    """'drops 0.0123 (accuracy 0.9700)', or why the model could not run in that runtime."""
    if best.get("drop") is None:
        return f"could not run: {best.get('error', 'no result')}"
    why = f" ({best['conversion_error']})" if best.get("conversion_error") else ""
    return f"drops {best['drop']:.4f} (accuracy {best['accuracy']:.4f}){why}"


@dataclass(frozen=True)
class LadderResult:
    """The rung that holds the budget, its model file, and every row of ladder.json."""

    chosen: dict[str, Any]
    model: Path
    rows: list[dict[str, Any]]
    reused: list[int]  # rungs taken from an earlier run's ladder.json
    recommended: dict[str, dict[str, Any]]  # runtime -> {rung, name, model, accuracy, drop, agreement, p50_ms}


RAISE_TO = ("float", "int16")


def _check_shapes(
    inputs: tuple[Any, ...], x_val: np.ndarray, x_calib: np.ndarray, data: Path, calibration: Path
) -> None:
    """Validation and calibration samples must both fit the model's one input (batch dimension aside)."""
    if len(inputs) != 1:
        raise ConversionError(
            f"the quantization ladder handles one-input models; this one has {len(inputs)} inputs",
            hint="quantize multi-input models with `edgekd quantize` (no accuracy budget)",
        )
    expected = tuple(inputs[0].shape[1:])
    for path, x in ((data, x_val), (calibration, x_calib)):
        got = tuple(x.shape[1:])
        if len(got) != len(expected) or any(isinstance(e, int) and e != g for e, g in zip(expected, got)):
            raise DataError(
                f"samples in {Path(path).name} have shape {got} per sample; the model's input "
                f"{inputs[0].name!r} takes {expected}",
                hint="give samples preprocessed for this model (same layout and size as its input)",
            )


def run_ladder(model: Path, data: Path, calibration: Path, out: Path, *, max_drop: float = 0.01,
               runs: int = 300, raise_to: str = "float", runtimes: Sequence[str] = ("ort",),
               qat: QatInputs | None = None, qat_always: bool = False) -> LadderResult:  # fmt: skip
    """Climb the rungs until each runtime's int8 model drops at most `max_drop`; everything lands in `out`.
    With `qat_always`, rung 4 runs (given `qat`) even when an earlier rung holds the budget (`edgekd qat`).

    The pipeline's quantize stage calls it as
    `run_ladder(fp32_onnx, validation_npz, calibration_npz, stage_workdir, max_drop=budget,
    runtimes=("ort", "litert", "tflm"), qat=QatInputs(student, teacher, train_npz))` and reads
    `result.recommended[runtime]["model"]` (a file name inside `stage_workdir`, with its sidecar).
    """
    import onnxruntime

    from edgekd import __version__
    from edgekd.fileio import sha256_file
    from edgekd.verify.model_io import load_onnx, onnx_tensor_specs

    model, out = Path(model), Path(out)
    if not np.isfinite(max_drop):
        raise UsageError(f"--max-drop must be a finite number, got {max_drop}", hint="e.g. --max-drop 0.01 (1 point)")
    if raise_to not in RAISE_TO:
        raise UsageError(
            f"--raise-to must be one of {', '.join(RAISE_TO)}, not {raise_to!r}",
            hint="float: sensitive ops stay fp32 (fast on CPU); int16: 16-bit activations (for NPUs)",
        )
    runtimes = _check_runtimes(runtimes)
    if qat is not None:
        qat_module.check(qat)
    if not model.is_file():
        raise ModelError(f"{model} does not exist or is not a file", hint="give the fp32 .onnx model")
    inputs, _ = onnx_tensor_specs(load_onnx(model))  # a corrupt or non-ONNX file is refused here
    x_val, y_val = ort_backend.load_samples(Path(data), labels=True)
    x_calib, _ = ort_backend.load_samples(Path(calibration), labels=False)
    assert y_val is not None  # labels=True: load_samples returned them or raised
    _check_shapes(inputs, x_val, x_calib, data, calibration)
    refuse_foreign_outputs(out)
    out.mkdir(parents=True, exist_ok=True)
    model_sha = sha256_file(model)
    # what every rung depends on: the three input files, the methods tried, and the code that ran them
    base_key = key_of(
        "base",
        model_sha,
        sha256_file(data),
        sha256_file(calibration),
        ort_backend.METHODS,
        onnxruntime.__version__,
        __version__,
    )
    ladder_path = out / "ladder.json"
    ladder = read_ladder(ladder_path)
    old_rows = {row.get("rung"): row for row in ladder["rows"]}
    work = Path(tempfile.mkdtemp(prefix=".ladder-work-", dir=out))
    try:
        with ort_backend.temp_dir_inside(work):
            prepared = ort_backend.prepare(model, work / "prepared.onnx")
            fp32_pred = ort_backend.predict(model, x_val)
            if qat is not None:
                qat_module.check_student(qat, x_val, fp32_pred, model.name)
            fp32 = ladder.get("fp32") if ladder.get("fp32", {}).get("key") == base_key else None
            if fp32 is None:
                fp32 = {
                    "key": base_key,
                    "accuracy": round(float((fp32_pred == y_val).mean()), 6),
                    "p50_ms": round(ort_backend.p50_ms(model, x_val[0], runs), 5),
                }
            ctx = RungContext(
                out, work, model, prepared, x_val, y_val, x_calib, fp32_pred, fp32["accuracy"], runs, runtimes
            )
            ladder = {
                "schema": LADDER_SCHEMA,
                "model": model.name,
                "model_sha256": model_sha,
                "max_drop": max_drop,
                "runtimes": list(runtimes),
                "validation_samples": len(x_val),
                "calibration_samples": len(x_calib),
                "fp32": fp32,
                "rows": [],
            }
            return _climb(ctx, model_sha, base_key, ladder_path, ladder, old_rows, max_drop, raise_to, qat, qat_always)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # made by mkdtemp above: ours alone


def _check_runtimes(runtimes: Sequence[str]) -> tuple[str, ...]:
    from edgekd.quantize import litert_backend

    chosen = tuple(dict.fromkeys(runtimes))
    unknown = [r for r in chosen if r not in litert_backend.RUNTIMES]
    if unknown or "ort" not in chosen:
        raise UsageError(f"ladder runtimes must include ort and come from {', '.join(litert_backend.RUNTIMES)}; got "
                         f"{', '.join(chosen) or 'none'}", hint="e.g. runtimes=('ort', 'litert', 'tflm')")  # fmt: skip
    for runtime, missing in (("litert", litert_backend.available), ("tflm", litert_backend.tflm_available)):
        reason = missing() if runtime in chosen else None
        if reason:
            raise UsageError(f"the {runtime} rows cannot be made here: {reason}", hint=f"install it or drop {runtime}")
    return chosen


def _within(rows: list[dict[str, Any]], runtime: str, max_drop: float) -> list[dict[str, Any]]:
    """(rung row, that runtime's figures) of every rung with a model for `runtime`, as merged dicts."""
    return [{**row, **row["runtimes"][runtime], "runtime": runtime} for row in rows
            if runtime in row.get("runtimes", {}) and _drop(row, runtime) <= max_drop]  # fmt: skip


def _drop(row: dict[str, Any], runtime: str) -> float:
    """The row's drop in `runtime`; +inf when the model could not run there (its row has an `error`)."""
    drop = row["runtimes"][runtime]["drop"]
    return float("inf") if drop is None else float(drop)


def _climb(ctx: RungContext, model_sha: str, base_key: str, ladder_path: Path, ladder: dict[str, Any],
           old_rows: dict[Any, dict[str, Any]], max_drop: float, raise_to: str, qat: QatInputs | None,
           qat_always: bool) -> LadderResult:  # fmt: skip
    out = ctx.out
    rows: list[dict[str, Any]] = ladder["rows"]
    reused: list[int] = []

    def finish(rung: int, key: str, make: Any, *, chained: bool = True) -> dict[str, Any]:
        old = old_rows.get(rung)
        if old is not None and not (chained and rows_changed) and still_valid(old, key, out):
            rows.append(old)
            reused.append(rung)
        else:
            start = time.perf_counter()
            row = make()
            rows.append({**row, "seconds": round(time.perf_counter() - start, 3), "key": key, "finished_at": now()})
        write_json(ladder_path, ladder, name="quant_ladder", parent=model_sha)
        return rows[-1]

    def holding() -> bool:
        return all(_within(rows, runtime, max_drop) for runtime in ctx.runtimes)

    rows_changed = False  # once a rung is recomputed, every later rung is too
    # the budget is part of every key: rung 1 picks the fastest candidate within it, rung 2 adds LiteRT's
    # sensitivity only where rung 1 misses it, rung 3 climbs until it holds
    key1 = key_of(base_key, "ptq", ctx.runtimes, litert_rungs.VERSION, max_drop)
    ptq = finish(1, key1, lambda: rung_ptq(ctx, model_sha, max_drop))
    rows_changed = 1 not in reused
    if not holding():  # rungs 2-3 in ORT, and in LiteRT/TFLM through ai-edge-quantizer when asked
        key2 = key_of(key1, ptq["files"])
        sens = finish(2, key2, lambda: litert_rungs.with_sensitivity(ctx, rung_sensitivity(ctx, ptq), ptq, max_drop))
        rows_changed = rows_changed or 2 not in reused
        key3 = key_of(key2, sens["files"], raise_to)
        finish(
            3,
            key3,
            lambda: litert_rungs.with_mixed(
                ctx, rung_mixed(ctx, sens, max_drop, ptq["files"][ptq["model"]], raise_to), sens, max_drop, raise_to
            ),
        )
    if (qat_always or not holding()) and qat is not None:
        # rung 4 depends on the inputs and the QAT settings only (not on rungs 2-3 or the budget)
        key4 = key_of(base_key, "qat", ctx.runtimes, qat.key(qat_module.state_hash(qat.student)))
        finish(4, key4, lambda: qat_module.rung_qat(ctx, qat, model_sha), chained=False)
    recommended, not_met = {}, {}
    for runtime in ctx.runtimes:
        within = _within(rows, runtime, max_drop)
        if not within:
            candidates = [r for r in rows if runtime in r.get("runtimes", {})]
            best = min(candidates, key=lambda r: (_drop(r, runtime), r["rung"]))
            not_met[runtime] = {**best, **best["runtimes"][runtime], "runtime": runtime}
            continue
        fastest = min(within, key=lambda r: (r["p50_ms"] if r["p50_ms"] is not None else 0.0, r["rung"]))
        recommended[runtime] = {
            k: fastest[k] for k in ("rung", "name", "model", "accuracy", "drop", "agreement", "p50_ms")
        }
    ladder["recommended"] = recommended  # the runtimes that hold, also when another one does not
    if not_met:
        ladder["not_met"] = {
            r: {k: b.get(k) for k in ("rung", "name", "drop", "accuracy", "error")} for r, b in not_met.items()
        }
        write_json(ladder_path, ladder, name="quant_ladder", parent=model_sha)
        aeq_errors = [f"rung {r['rung']}: {r['litert_error']}" for r in rows if r.get("litert_error")]
        for runtime, best in not_met.items():  # LiteRT rungs 2-3 that could not run are part of the answer
            if runtime != "ort" and aeq_errors:
                best["conversion_error"] = "; ".join(filter(None, [best.get("conversion_error"), *aeq_errors]))
        first, *others = not_met.values()
        raise BudgetNotMetError(max_drop, first, others)
    chosen = next(r for r in rows if r["rung"] == recommended["ort"]["rung"])
    return _done(ladder, ladder_path, chosen, recommended, reused, model_sha, out)


def _done(ladder: dict[str, Any], path: Path, chosen: dict[str, Any], recommended: dict[str, dict[str, Any]],
          reused: list[int], model_sha: str, out: Path) -> LadderResult:  # fmt: skip
    ladder["chosen"] = {"rung": chosen["rung"], "model": chosen["model"]}
    ladder["recommended"] = recommended
    write_json(path, ladder, name="quant_ladder", parent=model_sha)
    return LadderResult(
        chosen=chosen, model=out / chosen["model"], rows=list(ladder["rows"]), reused=reused, recommended=recommended
    )
