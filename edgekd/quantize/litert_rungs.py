"""Rungs 2-3 of the quantization ladder for LiteRT/TFLM, through Google's ai-edge-quantizer (AEQ).

AEQ quantizes the fp32 .tflite that rung 1's onnx2tf conversion made (`ptq.fp32.tflite`), from a recipe: a list
of (regex on an op's output tensor name, algorithm, op config), later entries winning. That is exactly selective
quantization: one op kept float (`no_quantize`) or raised to 16-bit activations (the a16w8 config, TFLite's 16x8).
The ladder calibrates once (min/max of every tensor on the calibration samples) and re-quantizes per variant.

- Rung 2 (`sensitivity`): per computing op (every op but the layout ones: reshape, transpose, pad, split...; unlike
  ORT's rung, which ranks Conv/MatMul/Gemm, a pooling or softmax output can be what int8 breaks), the SNR and cosine of
  its output in the all-int8 AEQ model against the float model (AEQ's `validate`, per tensor) and the LiteRT
  accuracy when only that op stays float. The all-int8 AEQ model is itself a candidate (`aeq.int8.tflite`).
- Rung 3 (`mixed`): the most sensitive ops raised greedily (to float, or to int16 activations first) until the
  LiteRT drop holds the budget; every step's accuracy, agreement and LiteRT p50 in the curve. The kept model
  (`mixed.int8.tflite`) is also run in TensorFlow Lite Micro where asked (its error recorded when TFLM lacks a kernel).
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.errors import ConversionError, ModelError
from edgekd.quantize import litert_backend
from edgekd.quantize.ladder_state import RungContext, publish_model

#: TFLite ops that only move values: they take their producer's quantization, so they follow its precision
#: (raised with it) and are not ranked themselves. QUANTIZE/DEQUANTIZE are not ranked either.
LAYOUT_OPS = ("RESHAPE", "TRANSPOSE", "SQUEEZE", "EXPAND_DIMS", "PAD", "PADV2", "SPLIT", "SPLIT_V", "SLICE",
              "STRIDED_SLICE", "QUANTIZE", "DEQUANTIZE")  # fmt: skip
NOISE_SAMPLES = 2  # as ORT's rung 2: a gain smaller than this many validation samples does not rank an op
DEBUG_SAMPLES = 32  # samples AEQ's validate runs through both models (it keeps every tensor)
CALIBRATION_SAMPLES = 256
FP32_FILE = "ptq.fp32.tflite"
#: Activation ranges compared by rung 2: the min/max over every calibration sample, or AEQ's default (a moving
#: average of each sample's min/max, smoothing 0.95: narrower, it clips rare large values).
CALIBRATIONS = ("minmax", "moving_average")


def available() -> str | None:
    """None, or why the LiteRT rungs 2-3 cannot run here."""
    try:
        import ai_edge_quantizer  # noqa: F401
    except ImportError as exc:
        return f"ai-edge-quantizer is not installed ({exc})"
    return None


def _config(bits: int) -> dict[str, Any]:
    """AEQ's static op config: int8 per-channel symmetric weights, `bits` activations (16: symmetric, TFLite 16x8)."""
    return {
        "activation_tensor_config": {"num_bits": bits, "symmetric": bits == 16, "granularity": "TENSORWISE",
                                     "dtype": "INT"},
        "weight_tensor_config": {"num_bits": 8, "symmetric": True, "granularity": "CHANNELWISE", "dtype": "INT"},
        "compute_precision": "INTEGER",
        "explicit_dequantize": False,
        "skip_checks": False,
        "min_weight_elements": 0,
    }  # fmt: skip


def recipe(float_ops: Sequence[str] = (), int16_ops: Sequence[str] = (), float_input: str | None = None,
           int16_input: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """An AEQ recipe: everything int8 (a8w8), `int16_ops` with 16-bit activations, `float_ops` not quantized,
    and the model input `float_input` (a tensor name) left float, or `int16_input` quantized to 16 bits."""
    entries: list[dict[str, Any]] = [
        {"regex": ".*", "operation": "*", "algorithm_key": "min_max_uniform_quantize", "op_config": _config(8)}
    ]
    for op in int16_ops:
        entries.append({"regex": _exact(op), "operation": "*", "algorithm_key": "min_max_uniform_quantize",
                        "op_config": _config(16)})  # fmt: skip
    for op in float_ops:
        entries.append({"regex": _exact(op), "operation": "*", "algorithm_key": "no_quantize"})
    if float_input is not None:
        entries.append({"regex": _exact(float_input), "operation": "INPUT", "algorithm_key": "no_quantize"})
    if int16_input is not None:
        entries.append({"regex": _exact(int16_input), "operation": "INPUT", "algorithm_key": "min_max_uniform_quantize",
                        "op_config": _config(16)})  # fmt: skip
    return entries


def _exact(tensor_name: str) -> str:
    """AEQ matches a recipe's regex against an op's scope: its output tensor names, each followed by ';'."""
    return "^" + re.escape(tensor_name) + ";$"


class Selective:
    """One calibrated AEQ quantizer over the fp32 .tflite; `make` writes a variant with its sidecar."""

    def __init__(self, fp32: Path, x_calib: np.ndarray, calibration: str = "minmax") -> None:
        from ai_edge_litert.interpreter import Interpreter
        from ai_edge_quantizer import calibrator, quantizer, recipe_manager
        from ai_edge_quantizer.utils import qsv_utils

        from edgekd.artifacts import load_artifact

        self.fp32 = fp32
        self.artifact = load_artifact(fp32)  # onnx2tf's description: input layout
        signatures = Interpreter(str(fp32)).get_signature_list()
        if len(signatures) != 1:
            raise ConversionError(f"{fp32.name} has {len(signatures)} signatures; the LiteRT rungs take one",
                                  hint="the ladder handles one-input, one-signature models")  # fmt: skip
        self.signature, spec = next(iter(signatures.items()))
        self.input = spec["inputs"][0]
        interpreter = Interpreter(str(fp32))
        tensors = interpreter.get_tensor_details()
        index = interpreter.get_input_details()[0]["index"]
        self.input_tensor = str(tensors[index]["name"])
        ops = interpreter._get_ops_details()  # op type, input and output tensor indices, in graph order
        consumers: dict[int, list[dict[str, Any]]] = {}
        for op in ops:
            for i in op["inputs"]:
                consumers.setdefault(int(i), []).append(op)

        def name(op: dict[str, Any]) -> str:
            return str(tensors[int(op["outputs"][0])]["name"])  # AEQ's scope of an op: its output tensor

        def downstream(tensor: int) -> tuple[list[str], set[str]]:
            """(layout ops reached from `tensor` through layout ops only, the computing ops they lead to)"""
            layout: list[str] = []
            computing: set[str] = set()
            stack = [tensor]
            while stack:
                for op in consumers.get(stack.pop(), []):
                    if op["op_name"] in LAYOUT_OPS:
                        layout.append(name(op))
                        stack.extend(int(o) for o in op["outputs"])
                    else:
                        computing.add(name(op))
            return layout, computing

        #: (output tensor name, op type) of every computing op, in graph order: what the rungs rank and raise
        self.ops = [(name(op), str(op["op_name"])) for op in ops if op["op_name"] not in LAYOUT_OPS]
        #: op -> the layout ops after it, raised with it (a float op's reshape would re-quantize its output)
        self.followers = {
            name(op): downstream(int(op["outputs"][0]))[0] for op in ops if op["op_name"] not in LAYOUT_OPS
        }
        #: the computing ops reading the model input: when all of them stay float, so does the input
        self.input_layout, self.input_readers = downstream(index)
        self._quantizer = quantizer.Quantizer(str(fp32), recipe())
        if calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {CALIBRATIONS}, not {calibration!r}")  # edgekd's own call
        self.calibration = calibration
        update = qsv_utils.min_max_update if calibration == "minmax" else qsv_utils.moving_average_update
        calibrate = calibrator.Calibrator(fp32.read_bytes(), num_threads=1, qsv_update_func=update)
        manager = recipe_manager.RecipeManager()
        manager.load_quantization_recipe(recipe())  # every tensor's range: any variant can use it
        with _quiet():
            calibrate.calibrate(self.feed(x_calib[:CALIBRATION_SAMPLES]), manager)
        self._calibration = calibrate.get_model_qsvs()

    def feed(self, x: np.ndarray) -> dict[str, list[dict[str, np.ndarray]]]:
        """AEQ's sample format: one dict per sample, batch 1, in the .tflite's layout."""
        spec = self.artifact.inputs[0] if self.artifact.inputs else None
        if x.ndim == 4 and (spec is None or spec.layout != "NCHW"):
            x = x.transpose(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C): onnx2tf's channels-last input
        return {self.signature: [{self.input: sample[None].astype(np.float32)} for sample in x]}

    def make(self, dest: Path, float_ops: Sequence[str] = (), int16_ops: Sequence[str] = ()) -> Path:
        """Quantize with `float_ops` float and `int16_ops` at 16x8; the .tflite and a sidecar at `dest`.

        A model input read only by float ops stays float: an int8 input would lose what those ops keep (a raw,
        unnormalised channel sets the input's one scale)."""
        from edgekd.artifacts import create_artifact

        readers = self.input_readers
        float_input = self.input_tensor if readers and readers <= set(float_ops) else None
        int16_input = self.input_tensor if readers and not float_input and readers <= {*float_ops, *int16_ops} else None
        floats = [*float_ops, *(f for op in float_ops for f in self.followers.get(op, []))]
        floats += self.input_layout if float_input else []
        int16s = [*int16_ops, *(f for op in int16_ops for f in self.followers.get(op, []))]
        int16s += self.input_layout if int16_input else []
        int16s = [i for i in int16s if i not in floats]
        self._quantizer.load_quantization_recipe(recipe(floats, int16s, float_input, int16_input))
        try:
            with _quiet():
                made = self._quantizer.quantize(self._calibration, enable_progress_report=False)
        except (ValueError, RuntimeError, KeyError) as exc:  # AEQ refuses a recipe it cannot apply: say which
            raise ConversionError(f"ai-edge-quantizer could not quantize {self.fp32.name} (float: {list(float_ops)}, "
                                  f"int16: {list(int16_ops)}): {exc}", hint="keep the ladder's other rungs") from exc  # fmt: skip
        from edgekd.verify.model_io import tflite_tensor_specs

        assert made.quantized_model is not None  # quantize() always returns the model it made
        dest.write_bytes(bytes(made.quantized_model))
        spec = self.artifact.inputs[0] if self.artifact.inputs else None
        layout = spec.layout if spec is not None and spec.layout == "NCHW" else "NHWC"
        inputs, outputs = tflite_tensor_specs(dest, image_layout=layout)  # this file's dtypes and quantization
        create_artifact(dest, name=dest.stem.replace(".", "_"), format="tflite", precision="int8",
                        inputs=inputs, outputs=outputs, producer="quant_ladder",
                        config={"quantizer": "ai-edge-quantizer", "float_ops": list(float_ops),
                                "int16_ops": list(int16_ops),
                                "input": "float" if float_input else "int16" if int16_input else "int8"})  # fmt: skip
        return dest

    def tensor_errors(self, x: np.ndarray) -> dict[str, dict[str, float]]:
        """Per tensor of the last model made: SNR (dB) and cosine against the float model (AEQ's validate)."""
        from ai_edge_quantizer.quantizer import ValidationErrorMetric

        metrics = [ValidationErrorMetric.SNR, ValidationErrorMetric.COSINE_SIMILARITY]
        with _quiet():
            result = self._quantizer.validate(self.feed(x), error_metrics=metrics, num_threads=1)
        merged: dict[str, dict[str, float]] = {}
        for key in result.available_signature_keys():
            found = result.get_signature_comparison_result(key)
            for group in (found.intermediate_tensors, found.output_tensors):
                merged.update({name: dict(values) for name, values in group.items()})
        return merged


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """AEQ prints progress bars and reports on stdout/stderr: keep them off the user's console."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def _measure(ctx: RungContext, path: Path, runtimes: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    return litert_backend.measure(path, ctx.x_val, ctx.y_val, ctx.fp32_pred, ctx.fp32_accuracy, ctx.runs, runtimes)


def tflite_runtimes(ctx: RungContext) -> tuple[str, ...]:
    return tuple(r for r in ctx.runtimes if r in ("litert", "tflm"))


def sensitivity(ctx: RungContext, parent: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, str]]:
    """Rung 2 for LiteRT: (the `litert` section of sensitivity.json, the rows of `aeq.int8.tflite`, its files)."""
    candidates: list[tuple[float, float, int, Selective, Path]] = []
    failed: list[str] = []
    for calibration in CALIBRATIONS:
        try:
            selective = Selective(ctx.out / FP32_FILE, ctx.x_calib, calibration)
            path = selective.make(ctx.work / f"aeq.{calibration}.tflite")
            pred = litert_backend.predict(path, ctx.x_val)
        except (ConversionError, ModelError) as exc:
            failed.append(f"{calibration}: {exc.message}")
            continue
        accuracy, agreement = float((pred == ctx.y_val).mean()), float((pred == ctx.fp32_pred).mean())
        candidates.append((accuracy, agreement, -len(candidates), selective, path))
    if not candidates:
        raise ConversionError(f"ai-edge-quantizer made no int8 model LiteRT runs ({'; '.join(failed)})",
                              hint="the LiteRT rows of rung 1 stand; keep the fp32 .tflite or use ORT")  # fmt: skip
    base_accuracy, _, _, selective, baseline = max(candidates, key=lambda c: c[:3])  # ties: the earlier one
    selective.make(baseline)  # the quantizer's last model is the one validate compares
    errors = selective.tensor_errors(ctx.x_val[:DEBUG_SAMPLES])
    ops: list[dict[str, Any]] = []
    for name, op_type in selective.ops:
        found = errors.get(name, {})
        op = {"node": name, "op_type": op_type, "runtime": "litert", "sqnr_db": _decibels(found.get("snr")),
              "cosine": _finite(found.get("cosine_similarity"))}  # fmt: skip
        try:
            variant = selective.make(ctx.work / "aeq.only_float.tflite", float_ops=[name])
            accuracy = float((litert_backend.predict(variant, ctx.x_val) == ctx.y_val).mean())
        except (ConversionError, ModelError) as exc:  # this op cannot be raised alone: ranked last, not raised
            ops.append({**op, "accuracy_if_float": None, "accuracy_gain": None, "error": exc.message})
            continue
        ops.append({**op, "accuracy_if_float": round(accuracy, 6), "accuracy_gain": round(accuracy - base_accuracy, 6)})
    noise = NOISE_SAMPLES / len(ctx.y_val)
    ops.sort(key=lambda o: ("error" in o, -(o["accuracy_gain"] if (o["accuracy_gain"] or 0.0) >= noise else 0.0),
                            _or_inf(o["sqnr_db"])))  # fmt: skip
    for rank, op in enumerate(ops, start=1):
        op["rank"] = rank
    dest = ctx.out / "aeq.int8.tflite"
    sha = publish_model(baseline, dest, name="tflite_int8_aeq", parent=parent,
                        config={"quantizer": "ai-edge-quantizer", "recipe": "a8w8",
                                "calibration": selective.calibration})  # fmt: skip
    rows = _measure(ctx, dest, tflite_runtimes(ctx))
    section = {"runtime": "litert", "quantizer": f"ai-edge-quantizer {_version()}", "model": dest.name,
               "calibration": selective.calibration,
               "calibrations": [{"method": c[3].calibration, "accuracy": round(c[0], 6), "agreement": round(c[1], 6)}
                                for c in candidates],
               "accuracy": round(base_accuracy, 6), "debug_samples": min(DEBUG_SAMPLES, len(ctx.x_val)), "ops": ops}  # fmt: skip
    return section, rows, {dest.name: sha}


def mixed(ctx: RungContext, ranking: list[str], max_drop: float, raise_to: str, parent: str, calibration: str
          ) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:  # fmt: skip
    """Rung 3 for LiteRT: raise the top-k ops of `ranking` for k = 1, 2, ... until LiteRT's drop holds; with
    int16, when every op at 16x8 still misses, the same order continues in float. (rows per runtime, files)"""
    selective = Selective(ctx.out / FP32_FILE, ctx.x_calib, calibration)
    plan = [(ranking[:k], []) if raise_to == "float" else ([], ranking[:k]) for k in range(1, len(ranking) + 1)]
    if raise_to == "int16":
        plan += [(ranking[:k], ranking[k:]) for k in range(1, len(ranking) + 1)]
    curve: list[dict[str, Any]] = []
    for step, (float_ops, int16_ops) in enumerate(plan, start=1):
        path = ctx.work / f"mixed.{step}.tflite"
        try:
            selective.make(path, float_ops, int16_ops)
        except ConversionError as exc:
            curve.append({"step": step, "excluded": float_ops, "int16": int16_ops, "error": exc.message})
            continue
        figures = _measure(ctx, path, ("litert",))["litert"]
        curve.append({"step": step, "excluded": float_ops, "int16": int16_ops,
                      **{k: figures[k] for k in ("accuracy", "drop", "agreement", "p50_ms")}})  # fmt: skip
        if figures["drop"] <= max_drop:
            break
    measured = [s for s in curve if "drop" in s]
    if not measured:
        raise ConversionError("quantization ladder: LiteRT rung 3 has no op to raise or no variant quantized",
                              hint=f"see ladder.json's curve; {curve[-1]['error'] if curve else 'no op to raise'}")  # fmt: skip
    holding = [s for s in measured if s["drop"] <= max_drop]
    best = holding[0] if holding else min(measured, key=lambda s: (s["drop"], s["step"]))
    dest = ctx.out / "mixed.int8.tflite"
    sha = publish_model(ctx.work / f"mixed.{best['step']}.tflite", dest, name="tflite_int8_mixed", parent=parent,
                        config={"quantizer": "ai-edge-quantizer", "float_ops": best["excluded"],
                                "int16_ops": best["int16"], "calibration": calibration})  # fmt: skip
    rows = _measure(ctx, dest, tflite_runtimes(ctx))
    for figures in rows.values():
        figures.update({"excluded": best["excluded"], "int16": best["int16"]})
    if "litert" in rows:
        rows["litert"]["curve"] = curve
    return rows, {dest.name: sha}


def _version() -> str:
    from importlib.metadata import version

    return version("ai-edge-quantizer")


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return round(number, 4) if np.isfinite(number) else None


def _decibels(ratio: Any) -> float | None:
    """AEQ's SNR is a power ratio (signal power / MSE); sensitivity.json gives dB, as ORT's rows do."""
    if ratio is None or not np.isfinite(float(ratio)) or float(ratio) <= 0:
        return None
    return round(10 * float(np.log10(float(ratio))), 3)


def _or_inf(value: float | None) -> float:
    return float("inf") if value is None else value


#: Part of rung 1's key: ladders from before the LiteRT rungs lack ptq.fp32.tflite, so their rung 1 is redone.
VERSION = "litert-rungs/1"


def _missing(row: dict[str, Any], runtimes: tuple[str, ...], max_drop: float) -> bool:
    """Some of `runtimes` has no row in `row` within the budget (or could not run)."""
    figures = row.get("runtimes", {})
    return any(figures.get(r, {}).get("drop") is None or figures[r]["drop"] > max_drop for r in runtimes)


def with_sensitivity(ctx: RungContext, row: dict[str, Any], ptq: dict[str, Any], max_drop: float) -> dict[str, Any]:
    """ORT's rung-2 row plus LiteRT's: a `litert` section in sensitivity.json, the AEQ all-int8 model's rows
    in `runtimes`, and `litert_ranking`. Unchanged when no TFLite runtime was asked for or all of them hold."""
    import json

    from edgekd.quantize.ladder_state import write_json

    runtimes = tflite_runtimes(ctx)
    if not runtimes or not _missing(ptq, runtimes, max_drop):
        return row
    missing = available()
    if missing:
        return {**row, "litert_error": missing}
    try:
        section, rows, files = sensitivity(ctx, ptq["files"][ptq["model"]])
    except (ConversionError, ModelError) as exc:  # AEQ or LiteRT refused the model: ORT's rungs still stand
        return {**row, "litert_error": exc.message}
    path = ctx.out / "sensitivity.json"
    report = json.loads(path.read_text(encoding="utf-8"))
    report["litert"] = section
    sha = write_json(path, report, name="sensitivity", parent=ptq["files"][ptq["model"]])
    ranking = [op["node"] for op in section["ops"] if "error" not in op]
    return {**row, "runtimes": rows, "files": {**row["files"], path.name: sha, **files}, "litert_ranking": ranking,
            "litert_most_sensitive": ranking[0] if ranking else None, "litert_calibration": section["calibration"]}  # fmt: skip


def with_mixed(ctx: RungContext, row: dict[str, Any], sens: dict[str, Any], max_drop: float, raise_to: str
               ) -> dict[str, Any]:  # fmt: skip
    """ORT's rung-3 row plus LiteRT's/TFLM's `mixed.int8.tflite` rows, when rung 2 ranked LiteRT ops and its
    all-int8 AEQ model does not already hold the budget."""
    ranking = sens.get("litert_ranking")
    if not ranking or not _missing(sens, tflite_runtimes(ctx), max_drop):
        return row
    try:
        rows, files = mixed(
            ctx, ranking, max_drop, raise_to, sens["files"]["aeq.int8.tflite"], sens["litert_calibration"]
        )
    except (ConversionError, ModelError) as exc:
        return {**row, "litert_error": exc.message}
    return {**row, "runtimes": {**row["runtimes"], **rows}, "files": {**row["files"], **files}}
