"""Export and quantization: conversion time per path, file sizes, int8 vs fp32 latency in ORT and LiteRT.

The model is the built-in CNN at width 28, depth 4 (about 300k parameters, ≥ 250k as the goal asks),
trained briefly on digits (8x8, and upsampled to 32x32) so int8 calibration sees real activations. Paths: torch -> ONNX (dynamo),
ONNX -> ORT static QDQ int8, ONNX -> TFLite fp32/fp16/dynamic-range/int8 (onnx2tf, one run), and
torch -> TFLite fp32/int8 (litert-torch) when installed. Latency: batch 1, one thread, fp32 and int8
measured in alternating blocks (so machine load hits both alike), median of per-inference times.
Goals: int8/fp32 latency ratio ≤ 0.5 and int8/fp32 size ratio ≤ 0.30, per runtime.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LATENCY_GOAL = 0.5
SIZE_GOAL = 0.30
MODEL_SPEC = {"arch": "cnn", "width": 28, "depth": 4}


def _train(data: Any, out: Path, epochs: int) -> Any:
    import torch

    from edgekd.artifacts import create_artifact
    from edgekd.distill import models

    torch.manual_seed(0)
    model = models.build_model(MODEL_SPEC, data.input_shape, data.num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    model.train()
    for _ in range(epochs):
        for start in range(0, len(x), 64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[start : start + 64]), y[start : start + 64]).backward()
            optimizer.step()
    model.eval()
    path = out / "student.pt"
    models.save_state_dict(model, path)
    artifact = create_artifact(
        path,
        name="student_torch",
        format="torch",
        precision="fp32",
        producer="bench",
        config={"model": MODEL_SPEC, "input_shape": list(data.input_shape), "num_classes": data.num_classes},
    )
    return artifact, models.count_parameters(model)


def _timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def _ort_runner(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda sample: session.run(None, {name: sample})


def _litert_runner(artifact: Any) -> Any:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(artifact.path), num_threads=1)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    nhwc = artifact.inputs[0].layout == "NHWC"

    def run(sample: Any) -> None:
        value = sample.transpose(0, 2, 3, 1) if nhwc else sample
        if np.dtype(detail["dtype"]).kind in "iu":
            scale, zero = detail["quantization"]
            value = np.clip(np.round(value / scale) + zero, -128, 127)
        interpreter.set_tensor(detail["index"], value.astype(detail["dtype"]))
        interpreter.invoke()

    return run


def _latency_pair(fp32_run: Any, int8_run: Any, x: Any, warmup: int, runs: int, block: int = 50) -> tuple[Any, Any]:
    """Per-inference ns of both models, measured in alternating blocks of `block` runs."""
    from edgekd.measure import compute_stats

    samples = [x[i : i + 1] for i in range(len(x))]
    for i in range(warmup):
        fp32_run(samples[i % len(samples)])
        int8_run(samples[i % len(samples)])
    times: dict[str, list[int]] = {"fp32": [], "int8": []}
    done = 0
    while done < runs:
        for key, run in (("fp32", fp32_run), ("int8", int8_run)):
            for i in range(done, min(done + block, runs)):
                sample = samples[i % len(samples)]
                start = time.perf_counter_ns()
                run(sample)
                times[key].append(time.perf_counter_ns() - start)
        done += block
    return compute_stats(times["fp32"]), compute_stats(times["int8"])


def _upsampled(data: Any, factor: int) -> Any:
    """The same digits at `factor`× the resolution (nearest neighbour): the compute of a 32×32 camera crop."""
    import dataclasses

    import numpy as np

    grow = np.ones((1, 1, factor, factor), dtype=np.float32)
    return dataclasses.replace(
        data, x_train=np.kron(data.x_train, grow), x_val=np.kron(data.x_val, grow), x_test=np.kron(data.x_test, grow)
    )


def _measure_one(
    data: Any, work: Path, quick: bool, label: str
) -> tuple[list[dict[str, Any]], list[str], str | None, int]:
    from edgekd.calibration import make_calibration_set
    from edgekd.config.export import ExportConfig, QuantizeConfig, TfliteConfig, VerifyConfig
    from edgekd.registry import converter_unavailable, run_converter
    from edgekd.verify.parity import verify_artifacts

    warmup, runs = (20, 200) if quick else (100, 1000)
    rows: list[dict[str, Any]] = []
    student, parameters = _train(data, work, epochs=3 if quick else 10)
    calibration = make_calibration_set(data, 200, 0, work / "calibration.npz")
    onnx_fp32, seconds = _timed(lambda: run_converter("torch_onnx", student, ExportConfig(), work)[0])
    rows.append(
        {"kind": "conversion", "input": label, "path": "torch->onnx fp32 (dynamo)", "seconds": round(seconds, 2)}
    )
    onnx_int8, seconds = _timed(
        lambda: run_converter("ort_quant", onnx_fp32, {**dict(QuantizeConfig()), "calibration": calibration}, work)[0]
    )
    rows.append(
        {
            "kind": "conversion",
            "input": label,
            "path": "onnx->ort int8 (static QDQ, per-channel)",
            "seconds": round(seconds, 2),
        }
    )
    options = TfliteConfig(precisions=["fp32", "fp16", "dynamic_range", "int8"])
    tflite, seconds = _timed(
        lambda: run_converter("onnx2tf", onnx_fp32, {**dict(options), "calibration": calibration}, work / "tflite")
    )
    rows.append(
        {
            "kind": "conversion",
            "input": label,
            "path": "onnx->tflite fp32+fp16+dynamic_range+int8 (onnx2tf, one run)",
            "seconds": round(seconds, 2),
        }
    )
    # uint8 activations (U8S8) are ORT's fast int8 path on x86; int8 (S8S8, the recipe default) suits ARM.
    onnx_u8 = run_converter(
        "ort_quant",
        onnx_fp32,
        {**dict(QuantizeConfig(activation_type="uint8")), "calibration": calibration},
        work / "u8",
    )[0]
    onnx_u8 = replace(onnx_u8, name="onnx_int8_u8act")
    tflite_by = {a.precision: a for a in tflite}
    artifacts = [onnx_fp32, onnx_int8, onnx_u8, *tflite]
    litert_note = converter_unavailable("litert_torch")
    if litert_note is None:
        litert, seconds = _timed(
            lambda: run_converter(
                "litert_torch",
                student,
                {"precisions": ["fp32", "int8"], "calibration": calibration, "name_prefix": "litert_torch"},
                work / "litert",
            )
        )
        rows.append(
            {
                "kind": "conversion",
                "input": label,
                "path": "torch->tflite fp32+int8 (litert-torch)",
                "seconds": round(seconds, 2),
            }
        )
        artifacts += litert
    report = verify_artifacts(
        student, artifacts, data.x_test, data.y_test, VerifyConfig(), diagnose_int8=False, audit_ops=False
    )
    parity = {row["artifact"]: row for row in report.rows}
    sizes = {a.name: a.size_bytes for a in artifacts}
    for artifact in artifacts:
        row = parity[artifact.name]
        rows.append(
            {
                "kind": "artifact",
                "input": label,
                "artifact": artifact.name,
                "bytes": sizes[artifact.name],
                "accuracy": round(row["accuracy"], 4),
                "top1_agreement": round(row["top1_agreement"], 4),
                "parity_passed": row["passed"],
            }
        )
    pairs = {
        "onnxruntime": (
            _ort_runner(onnx_fp32.path),
            _ort_runner(onnx_int8.path),
            sizes["onnx_fp32"],
            sizes["onnx_int8"],
        ),
        "onnxruntime (uint8 activations)": (
            _ort_runner(onnx_fp32.path),
            _ort_runner(onnx_u8.path),
            sizes["onnx_fp32"],
            sizes["onnx_int8_u8act"],
        ),
        "litert (onnx2tf)": (
            _litert_runner(tflite_by["fp32"]),
            _litert_runner(tflite_by["int8"]),
            sizes["tflite_fp32"],
            sizes["tflite_int8"],
        ),
    }
    verdicts = []
    for runtime, (fp32_run, int8_run, fp32_size, int8_size) in pairs.items():
        fp32_stats, int8_stats = _latency_pair(fp32_run, int8_run, data.x_test, warmup, runs)
        latency_ratio = int8_stats.p50_ns / fp32_stats.p50_ns
        size_ratio = int8_size / fp32_size
        rows.append(
            {
                "kind": "latency",
                "input": label,
                "runtime": runtime,
                "threads": 1,
                "runs": runs,
                "fp32_p50_us": round(fp32_stats.p50_ns / 1e3, 2),
                "int8_p50_us": round(int8_stats.p50_ns / 1e3, 2),
                "fp32_iqr_us": round(fp32_stats.iqr_ns / 1e3, 2),
                "int8_iqr_us": round(int8_stats.iqr_ns / 1e3, 2),
                "latency_ratio": round(latency_ratio, 3),
                "size_ratio": round(size_ratio, 3),
                "latency_goal_met": latency_ratio <= LATENCY_GOAL,
                "size_goal_met": size_ratio <= SIZE_GOAL,
                "unstable": fp32_stats.unstable or int8_stats.unstable,
            }
        )
        verdicts.append(
            f"{label} {runtime}: latency {latency_ratio:.2f} ({'met' if latency_ratio <= LATENCY_GOAL else 'NOT met'}), "
            f"size {size_ratio:.2f} ({'met' if size_ratio <= SIZE_GOAL else 'NOT met'})"
        )
    return rows, verdicts, litert_note, parameters


def run(quick: bool) -> dict[str, Any]:
    from edgekd.config.data import DataConfig
    from edgekd.data.datasets import load_dataset

    digits = load_dataset(DataConfig(), seed=0)
    rows: list[dict[str, Any]] = []
    verdicts: list[str] = []
    litert_note: str | None = None
    parameters = 0
    for label, data in (("8x8", digits), ("32x32", _upsampled(digits, 4))):
        with tempfile.TemporaryDirectory(prefix="edgekd-bench-export-") as work_dir:
            found, said, litert_note, parameters = _measure_one(data, Path(work_dir), quick, label)
        rows += found
        verdicts += said
    notes = (
        f"Built-in CNN width 28 depth 4 ({parameters} parameters) on digits at 8x8 and upsampled to 32x32, batch 1, "
        f"1 thread; fp32 and int8 timed in alternating blocks of 50. Goals: int8/fp32 latency ≤ {LATENCY_GOAL}, size "
        f"≤ {SIZE_GOAL}. Conversion times are wall-clock on a shared, loaded 2-core machine. Verdict: "
        + "; ".join(verdicts)
        + ". ORT int8 means int8 activations (S8S8, the recipe default, portable to ARM); uint8 activations (U8S8) are "
        "ORT's faster path on this AVX-512-VNNI x86. At 8x8 a 300k-parameter CNN does so little arithmetic per inference (tens of µs) that fixed per-op "
        "overhead dominates and ORT's QDQ int8 cannot win; at 32x32 compute dominates."
        + (f" litert-torch not measured here: {litert_note}" if litert_note else "")
    )
    return {"rows": rows, "notes": notes}
