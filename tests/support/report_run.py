"""Build run directories from synthetic but realistic stage manifests, so report tests need no pipeline.

The numbers follow what the digits demo produces (a 8x8 digits CNN teacher, a small KD student, five
artifacts benchmarked on the local x86 target) plus a Raspberry Pi 5 target with energy measured, so
every section of the report has something to show: a failing int8 row, an unstable measurement,
throttling, and energy unavailable with its reason. Latency samples come from a seeded generator.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

#: name, file, format, precision, producing stage, size in bytes
ARTIFACTS = (
    ("student_torch", "student.pt", "torch", "fp32", "distill", 21_317),
    ("onnx_fp32", "student.onnx", "onnx", "fp32", "export", 19_842),
    ("onnx_int8", "student.int8.onnx", "onnx", "int8", "quantize", 9_655),
    ("tflite_fp32", "student.fp32.tflite", "tflite", "fp32", "tflite", 18_904),
    ("tflite_int8", "student.int8.tflite", "tflite", "int8", "tflite", 7_312),
)
#: artifact -> (accuracy, top1 agreement, max abs error)
PARITY = {
    "student_torch": (0.9611, 1.0, 0.0),
    "onnx_fp32": (0.9611, 1.0, 2.4e-6),
    "onnx_int8": (0.9583, 0.9889, 0.0412),
    "tflite_fp32": (0.9611, 1.0, 3.1e-6),
    "tflite_int8": (0.9306, 0.9472, 0.1187),
}
#: target -> artifact -> p50 in ms
P50 = {
    "local": {
        "student_torch": 0.142,
        "onnx_fp32": 0.021,
        "onnx_int8": 0.034,
        "tflite_fp32": 0.018,
        "tflite_int8": 0.016,
    },
    "pi5": {"onnx_fp32": 0.088, "onnx_int8": 0.101, "tflite_fp32": 0.071, "tflite_int8": 0.052},
}
#: When the synthetic stages finished (the pipeline's format); fail_stage's failures come later.
FINISHED_AT = "2026-01-01T12:00:00+0000"
RAPL_REASON = "no RAPL powercap at /sys/class/powercap and perf has no power/energy-pkg/ event"


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _sidecar(
    name: str, file: str, fmt: str, precision: str | None, size: int, rng: np.random.Generator, run_dir: Path
) -> dict[str, Any]:
    """Write a file of `size` bytes and return its sidecar dict, path relative to the run directory."""
    import hashlib

    content = rng.integers(0, 256, size=size, dtype=np.uint8).tobytes()
    (run_dir / file).parent.mkdir(parents=True, exist_ok=True)
    (run_dir / file).write_bytes(content)
    return {
        "schema": "edgekd.artifact/1",
        "path": file,
        "name": name,
        "format": fmt,
        "precision": precision,
        "sha256": hashlib.sha256(content).hexdigest(),
        "inputs": [],
        "outputs": [],
        "parent": None,
        "producer": f"{name} edgekd-0.1.0",
        "config": {},
    }


def _latencies(p50: float, rng: np.random.Generator, runs: int, spread: float) -> list[int]:
    """Raw samples in ns (integers, as the runner writes them) around a p50 given in ms."""
    samples = p50 * np.exp(rng.normal(0.0, spread, size=runs))
    samples[rng.integers(0, runs, size=max(1, runs // 50))] *= 3.0  # a few scheduler hiccups
    return [round(float(v) * 1e6) for v in samples]


def _env(target: str) -> dict[str, Any]:
    if target == "local":
        return {
            "arch": "x86_64",
            "cpu_model": "AMD EPYC 7B13",
            "cores": 2,
            "governor": None,
            "freq_mhz": 2450.0,
            "temps_c": {},
            "affinity": [0],
            "python": "3.11.2",
            "versions": {"onnxruntime": "1.32.0", "ai_edge_litert": "2.3.0", "numpy": "2.4.6"},
        }
    return {
        "arch": "aarch64",
        "cpu_model": "Cortex-A76",
        "cores": 4,
        "governor": "performance",
        "freq_mhz": 2400.0,
        "temps_c": {"cpu": 61.2},
        "affinity": [2, 3],
        "python": "3.11.2",
        "throttled": "0x0",
        "versions": {"onnxruntime": "1.32.0", "ai_edge_litert": "2.3.0", "numpy": "2.2.4"},
    }


def _bench_results(rng: np.random.Generator, runs: int) -> list[dict[str, Any]]:
    results = []
    for target, per_artifact in P50.items():
        for artifact, p50 in per_artifact.items():
            unstable = (target, artifact) == ("local", "student_torch")
            lat = _latencies(p50, rng, runs, 0.25 if unstable else 0.04)
            warnings = []
            if unstable:
                warnings.append("unstable: IQR/median = 0.31 > 0.1; pin cores or raise --runs")
            if (target, artifact) == ("pi5", "onnx_int8"):
                warnings.append("throttling: p50 of the last window is 14% above the first (CPU at 81 C)")
            energy = round(p50 * 1e-3 * 3.1, 9) if target == "pi5" else None
            results.append(
                {
                    "artifact": artifact,
                    "target": target,
                    "runtime": "ort" if "onnx" in artifact else "litert" if "tflite" in artifact else "torch",
                    "p50_ms": p50,
                    "p90_ms": round(p50 * 1.09, 6),
                    "p99_ms": round(p50 * 1.6, 6),
                    "mean_ms": round(p50 * 1.03, 6),
                    "std_ms": round(p50 * 0.08, 6),
                    "iqr_ms": round(p50 * 0.05, 6),
                    "mad_ms": round(p50 * 0.025, 6),
                    "runs": runs,
                    "unstable": unstable,
                    "ci95_median_ms": [round(p50 * 0.98, 6), round(p50 * 1.02, 6)],
                    "runtime_version": "1.32.0",
                    "init_ms": 3.2,
                    "first_ms": round(p50 * 4, 6),
                    "peak_rss_kb": 61_440 if target == "local" else 38_912,
                    "model_rss_kb": 1_204 if "int8" in artifact else 1_876,
                    "energy_j_per_inference": energy,
                    "energy_uncertainty_j": round(energy * 0.08, 9) if energy else None,
                    "energy_method": "pi5-pmic" if energy else None,
                    "energy_unavailable": None if target == "pi5" else RAPL_REASON,
                    "warnings": warnings,
                    "env": _env(target),
                    "latencies_ns": lat,
                    "windows": [
                        {
                            "window": i,
                            "runs": runs // 4,
                            "t_s": 2.5 * (i + 1),
                            "temps_c": {"cpu": 66.0 + 5 * i},
                            "p50_ms": round(p50 * (1 + 0.035 * i), 6),
                        }
                        for i in range(4)
                    ]
                    if (target, artifact) == ("pi5", "onnx_int8")
                    else None,
                }
            )
    return results


def _ops(fmt: str, precision: str) -> dict[str, Any]:
    if fmt == "tflite":
        ops = {"CONV_2D": 2, "FULLY_CONNECTED": 1, "MAX_POOL_2D": 1, "RESHAPE": 1, "SOFTMAX": 1}
        return {"ops": ops, "transpose_count": 0, "micro_unsupported": []}
    if precision == "int8":
        return {
            "ops": {"Conv": 2, "DequantizeLinear": 9, "Gemm": 1, "QuantizeLinear": 5, "MaxPool": 1},
            "transpose_count": 0,
            "float_nodes": ["Gemm_12"],
        }
    return {"ops": {"Conv": 2, "Gemm": 1, "MaxPool": 1, "Relu": 3, "Flatten": 1}, "transpose_count": 0}


def _parity_rows() -> list[dict[str, Any]]:
    rows = []
    for name, _file, fmt, precision, _stage, _size in ARTIFACTS:
        accuracy, agreement, max_abs = PARITY[name]
        failures = []
        if name == "tflite_int8":
            failures = ["top1_agreement 0.9472 < 0.95", "accuracy drop 3.05 points > 2.0"]
        row = {
            "artifact": name,
            "format": fmt,
            "precision": precision,
            "top1_agreement": agreement,
            "max_abs_error": max_abs,
            "max_rel_error": round(max_abs * 3.7, 6),
            "cosine": round(1 - max_abs / 10, 6),
            "accuracy": accuracy,
            "reference_accuracy": 0.9611,
            "accuracy_delta": round(accuracy - 0.9611, 4),
            "passed": not failures,
            "failures": failures,
            "ops": None if fmt == "torch" else _ops(fmt, precision),
        }
        if failures:
            row["worst_layers"] = [
                {"layer": "conv2/Conv2D", "max_abs_error": 0.31},
                {"layer": "dense/MatMul", "max_abs_error": 0.12},
            ]
        rows.append(row)
    return rows


def _history(epochs: int) -> dict[str, list[dict[str, float]]]:
    curves = {"teacher": (0.985, 0.35), "student": (0.961, 0.45), "scratch": (0.947, 0.5)}
    return {
        name: [
            {
                "epoch": e + 1,
                "loss": round(2.3 * np.exp(-rate * (e + 1)), 4),
                "val_accuracy": round(top * (1 - np.exp(-rate * (e + 1))), 4),
            }
            for e in range(epochs)
        ]
        for name, (top, rate) in curves.items()
    }


def make_run_dir(root: Path, *, stages: tuple[str, ...] | None = None, seed: int = 0, runs: int = 200) -> Path:
    """A complete (or, with `stages`, partial) run directory under `root`; returns its path."""
    rng = np.random.default_rng(seed)
    run_dir = root / "digits"
    stage_dir = run_dir / ".edgekd" / "stages"
    stage_dir.mkdir(parents=True, exist_ok=True)
    arts: dict[str, list[dict[str, Any]]] = {}
    for name, file, fmt, precision, stage, size in ARTIFACTS:
        arts.setdefault(stage, []).append(_sidecar(name, file, fmt, precision, size, rng, run_dir))
    arts["teacher"] = [_sidecar("teacher_torch", "teacher.pt", "torch", "fp32", 412_733, rng, run_dir)]
    arts["distill"].append(_sidecar("scratch_torch", "scratch.pt", "torch", "fp32", 21_317, rng, run_dir))
    arts["calibrate"] = [_sidecar("calibration_set", "calibration.npz", "npz", None, 51_512, rng, run_dir)]
    arts["data"] = [_sidecar("dataset", "data.npz", "npz", None, 4_096, rng, run_dir)]
    arts["export"][0]["config"] = {"metadata": {"recipe_hash": "a" * 64}}  # as the ONNX exporter stamps it
    summaries: dict[str, dict[str, Any]] = {
        "data": {
            "num_classes": 10,
            "label_names": [str(i) for i in range(10)],
            "input_shape": [1, 8, 8],
            "sizes": {"train": 1257, "val": 180, "test": 360},
        },
        "teacher": {},
        "distill": {
            "teacher_accuracy": 0.9861,
            "student_accuracy": 0.9611,
            "scratch_accuracy": 0.9472,
            "teacher_params": 101_546,
            "student_params": 4_842,
            "scratch_params": 4_842,
            "student_flops": 161_280,
            "scratch_flops": 161_280,
            "teacher_flops": 3_350_528,
            "kd_minus_scratch": 0.0139,
            "within_noise": False,
            "history": _history(8),
            "noise_test": {
                "method": "paired McNemar test on 360 test samples at 95%",
                "noise_band": 0.0121,
                "kd_only_correct": 12,
                "scratch_only_correct": 7,
                "within_noise": False,
            },
        },
        "export": {},
        "calibrate": {},
        "quantize": {},
        "tflite": {},
        "verify": {"rows": _parity_rows()},
        "bench": {"results": _bench_results(rng, runs)},
        "handoff": {"path": "handoff", "files": 9, "checked_with": "gcc 12.2.0"},
    }
    seconds = {
        "data": 0.4,
        "teacher": 21.7,
        "distill": 38.2,
        "export": 2.9,
        "calibrate": 0.2,
        "quantize": 1.8,
        "tflite": 14.6,
        "verify": 3.3,
        "bench": 27.5,
        "handoff": 1.1,
    }
    for stage in stages or tuple(summaries):
        manifest = {
            "stage": stage,
            "key": f"{stage}-{seed:04d}" + "0" * 58,
            "seconds": seconds[stage],
            "finished_at": FINISHED_AT,
            "artifacts": arts.get(stage, []),
            "summary": summaries[stage],
        }
        _write_json(stage_dir / f"{stage}.json", manifest)
    return run_dir


def fail_stage(
    run_dir: Path,
    stage: str,
    *,
    error_type: str = "HandoffError",
    message: str = "boom",
    hint: str | None = "fix it",
    exit_code: int = 1,
    not_run: tuple[str, ...] = (),
    finished_at: str = "2026-01-01T12:05:00+0000",
) -> None:
    """Replace a stage's manifest by the one the pipeline writes when that stage raises (edgekd.pipeline)."""
    manifest = {
        "schema": "edgekd.stage/1",
        "stage": stage,
        "status": "failed",
        "key": "f" * 64,
        "seconds": 0.0,
        "finished_at": finished_at,
        "artifacts": [],
        "summary": {},
        "error": {
            "type": error_type,
            "message": message,
            "hint": hint,
            "exit_code": exit_code,
            "not_run": list(not_run),
        },
    }
    _write_json(run_dir / ".edgekd" / "stages" / f"{stage}.json", manifest)
