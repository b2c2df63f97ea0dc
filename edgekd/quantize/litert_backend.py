"""The LiteRT/TFLM side of the quantization ladder: full-int8 TFLite through edgekd's onnx2tf converter,
accuracy and latency in LiteRT (ai-edge-litert), and the same int8 file in TensorFlow Lite Micro.

The conversion goes through `edgekd.registry.run_converter("onnx2tf", ...)` (the converters' public
dispatch) with the ladder's calibration samples. Its scratch files and the artifacts it describes land in the
ladder's work directory (the ladder points Python's tempfile there); the ladder publishes the kept file.

The converter writes HardSigmoid as ReLU6 (edgekd.onnx_rewrite), so the int8 files run in TensorFlow
Lite Micro too. Selective quantization (ops kept float, 16x8)
is edgekd.quantize.litert_rungs, through ai-edge-quantizer on the fp32 file this conversion makes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.errors import ModelError

RUNTIMES = ("ort", "litert", "tflm")


def available() -> str | None:
    """None, or why the LiteRT rows cannot be made here (onnx2tf and its set missing)."""
    from edgekd.registry import converter_unavailable

    return converter_unavailable("onnx2tf")


def tflm_available() -> str | None:
    """None, or why the TFLM row cannot be made here."""
    from edgekd.handoff.arena import tflm_available as missing

    return missing()


def to_tflite(
    onnx_model: Path, x_calib: np.ndarray, work: Path, tag: str, precisions: tuple[str, ...] = ("int8",)
) -> dict[str, Path]:
    """TFLite files (full int8 with int8 input/output and per-channel weights; fp32) of an fp32 ONNX model,
    one onnx2tf conversion; precision -> a file in `work`, described by the converter's sidecar."""
    from edgekd.artifacts import create_artifact, write_artifact
    from edgekd.registry import run_converter
    from edgekd.verify.model_io import load_onnx, onnx_tensor_specs

    folder = work / f"litert.{tag}"
    folder.mkdir(parents=True, exist_ok=True)
    src_path = folder / f"{tag}.fp32.onnx"
    src_path.write_bytes(Path(onnx_model).read_bytes())  # the converter rewrites HardSigmoid (onnx_rewrite)
    inputs, outputs = onnx_tensor_specs(load_onnx(src_path))
    src = create_artifact(src_path, name="onnx_fp32", format="onnx", precision="fp32", inputs=inputs,
                          outputs=outputs, producer="quant_ladder", config={"input_shape": list(inputs[0].shape[1:])})  # fmt: skip
    import io

    buffer = io.BytesIO()
    np.savez(buffer, x=x_calib.astype(np.float32))
    calibration = write_artifact(folder / "calibration.npz", buffer.getvalue(), name="calibration", format="npz",
                                 producer="quant_ladder", config={"layout": "NCHW"})  # fmt: skip
    options = {"precisions": list(precisions), "calibration": calibration}
    made = run_converter("onnx2tf", src, options, folder)  # the registry's dispatch: availability checked once
    return {artifact.precision or "": artifact.path for artifact in made}


def conversion_check(with_samples: Path, without: Path, x_val: np.ndarray, fp32_pred: np.ndarray) -> str | None:
    """None, or what is wrong with onnx2tf's graph: the fp32 .tflite of the int8 conversion (given calibration
    samples) and the one converted without them, each compared with the fp32 ONNX model's top-1 classes."""
    noise = 2 / len(x_val)  # two validation samples
    agree_with = float((predict(with_samples, x_val) == fp32_pred).mean())
    agree_without = float((predict(without, x_val) == fp32_pred).mean())
    if agree_with >= agree_without - noise and agree_without >= 1 - noise:
        return None
    if agree_with < agree_without - noise:
        return (f"onnx2tf built a different graph when given the calibration samples: the fp32 .tflite of the int8 "
                f"conversion agrees with the fp32 ONNX model on {agree_with:.1%} of the validation samples, the one "
                f"converted without them on {agree_without:.1%}; this rung's int8 loss is the conversion's, not "
                f"quantization's (rungs 2-3 quantize the second file)")  # fmt: skip
    return (f"the fp32 .tflite from onnx2tf agrees with the fp32 ONNX model on only {agree_without:.1%} of the "
            f"validation samples: the conversion, not quantization, loses accuracy")  # fmt: skip


def predict(path: Path, x: np.ndarray) -> np.ndarray:
    """Class predictions of a .tflite (with the converter's sidecar) in LiteRT, one sample at a time."""
    from edgekd.artifacts import load_artifact
    from edgekd.verify.backends import predict as run

    return _classes(run(load_artifact(path), x), len(x))


def _classes(outputs: np.ndarray, n: int) -> np.ndarray:
    """(N, ...) outputs -> (N,) top-1 classes."""
    classes: np.ndarray = np.asarray(outputs).reshape(n, -1).argmax(axis=1)
    return classes


def predict_tflm(path: Path, x: np.ndarray) -> np.ndarray:
    """Class predictions of the same int8 .tflite in TensorFlow Lite Micro (edgekd.verify.tflm_accuracy)."""
    from edgekd.artifacts import load_artifact
    from edgekd.verify.tflm_accuracy import predict_tflm as run

    return _classes(run(load_artifact(path), x), len(x))


def p50_ms(path: Path, sample: np.ndarray, runs: int, warmup: int = 20) -> float:
    """Median single-threaded LiteRT latency in ms of one inference on `sample` (C, H, W) (a measurement)."""
    from edgekd.artifacts import load_artifact
    from edgekd.verify.backends import _quant_of, quantize
    from edgekd.verify.model_io import tflite_interpreter

    artifact = load_artifact(path)
    interpreter = tflite_interpreter(path, num_threads=1)
    detail = interpreter.get_input_details()[0]
    x = sample[None]
    spec = artifact.inputs[0] if artifact.inputs else None
    if x.ndim == 4 and (spec is None or spec.layout != "NCHW"):
        x = x.transpose(0, 2, 3, 1)  # (1, C, H, W) -> (1, H, W, C): onnx2tf's channels-last input
    dtype = np.dtype(detail["dtype"])
    feed: Any = quantize(x, _quant_of(detail), dtype) if dtype.kind in "iu" else x.astype(dtype)
    interpreter.set_tensor(detail["index"], feed)
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        interpreter.invoke()
        times.append(time.perf_counter_ns() - start)
    return float(np.median(times)) / 1e6


def measure(path: Path, x_val: np.ndarray, y_val: np.ndarray, fp32_pred: np.ndarray, fp32_accuracy: float, runs: int,
            runtimes: tuple[str, ...]) -> dict[str, dict[str, Any]]:  # fmt: skip
    """The LiteRT and/or TFLM row of one int8 .tflite: accuracy, drop and top-1 agreement against the fp32
    model (the ladder's fp32 ONNX in ORT), and LiteRT's p50. TFLM's host latency says nothing about a
    microcontroller: its p50 is None."""

    def row(pred: np.ndarray, p50: float | None) -> dict[str, Any]:
        accuracy = float((pred == y_val).mean())
        return {"accuracy": round(accuracy, 6), "drop": round(fp32_accuracy - accuracy, 6),
                "agreement": round(float((pred == fp32_pred).mean()), 6),
                "p50_ms": None if p50 is None else round(p50, 5), "model": path.name}  # fmt: skip

    rows: dict[str, dict[str, Any]] = {}
    if "litert" in runtimes:
        rows["litert"] = row(predict(path, x_val), p50_ms(path, x_val[0], runs))
    if "tflm" in runtimes:
        try:
            rows["tflm"] = row(predict_tflm(path, x_val), None)
        except ModelError as exc:  # e.g. an op TFLM lacks (MobileNetV3's hard-sigmoid is RELU_0_TO_1): a row saying so
            rows["tflm"] = {"accuracy": None, "drop": None, "agreement": None, "p50_ms": None, "model": path.name,
                            "error": exc.message}  # fmt: skip
    return rows
