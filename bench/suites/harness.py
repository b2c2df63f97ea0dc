"""Harness overhead: edgekd's measured median vs a bare in-process loop on the same model, interleaved.

For each model, rounds alternate: the full harness (bench_artifacts on LocalTarget: runner subprocess,
pushed copy, generated inputs, perf_counter_ns around each invoke) then a bare loop in this process with
the same runtime settings (1 thread, XNNPACK default, same warmup and run count). The ratio of the
medians over all rounds is the harness's cost per inference; the goal is <= 1.02.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GOAL = 1.02


def _bare_ort(path: Path, runs: int, warmup: int) -> list[int]:
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    node = session.get_inputs()[0]
    feeds = {node.name: np.random.default_rng(0).standard_normal(node.shape).astype(np.float32)}
    run = session.run
    for _ in range(warmup):
        run(None, feeds)
    latencies = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        run(None, feeds)
        latencies.append(time.perf_counter_ns() - t0)
    return latencies


def _bare_litert(path: Path, runs: int, warmup: int) -> list[int]:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    sample = np.random.default_rng(0).standard_normal(detail["shape"]).astype(np.float32)
    interpreter.set_tensor(detail["index"], sample)
    invoke = interpreter.invoke
    for _ in range(warmup):
        invoke()
    latencies = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        invoke()
        latencies.append(time.perf_counter_ns() - t0)
    return latencies


def _models(folder: Path) -> list[tuple[str, Any, Any]]:
    from edgekd.artifacts import create_artifact
    from tests.support.bench_models import make_matmul_onnx, make_tflite

    onnx_path = make_matmul_onnx(folder / "chain8x256.onnx", layers=8, size=256)
    tflite_path = make_tflite(folder / "dense4x256.tflite", size=256, hidden=256, layers=4)
    return [
        ("onnx MatMul chain 8x256 (ORT)", create_artifact(onnx_path, name="chain8x256", format="onnx"), _bare_ort),
        ("tflite Dense 4x256 (LiteRT)", create_artifact(tflite_path, name="dense4x256", format="tflite"), _bare_litert),
    ]


def run(quick: bool) -> dict[str, Any]:
    from edgekd.bench.orchestrate import bench_artifacts
    from edgekd.config.bench import BenchConfig
    from edgekd.measure import compute_stats
    from edgekd.targets.local import LocalTarget

    rounds, runs, warmup = (4, 300, 50) if quick else (10, 1000, 100)
    config = BenchConfig(runs=runs, warmup=warmup, energy=False, threads=1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, artifact, bare_loop in _models(Path(tmp)):
            harness: list[int] = []
            bare: list[int] = []
            round_ratios = []
            for _ in range(rounds):  # interleaved: harness, bare, harness, bare, ...
                (result,) = bench_artifacts(LocalTarget(), [artifact], config)
                measured = bare_loop(artifact.path, runs, warmup)
                harness += result.latencies_ns
                bare += measured
                round_ratios.append(statistics.median(result.latencies_ns) / statistics.median(measured))
            h, b = compute_stats(harness), compute_stats(bare)
            ratio = h.p50_ns / b.p50_ns
            rows.append(
                {
                    "model": label,
                    "rounds x runs": f"{rounds} x {runs}",
                    "harness p50 ms": round(h.p50_ns / 1e6, 5),
                    "bare p50 ms": round(b.p50_ns / 1e6, 5),
                    "ratio": round(ratio, 4),
                    "round ratios min..max": f"{min(round_ratios):.3f}..{max(round_ratios):.3f}",
                    "harness IQR/median": round(h.iqr_ns / h.p50_ns, 3),
                    "bare IQR/median": round(b.iqr_ns / b.p50_ns, 3),
                    "goal met": ratio <= GOAL,
                }
            )
    verdict = "met" if all(row["goal met"] for row in rows) else "NOT met"
    worst = max(row["ratio"] for row in rows)
    return {
        "rows": rows,
        "notes": (
            f"Harness median / bare in-process median, interleaved rounds on the same model and settings "
            f"(1 thread, generated inputs, same warmup and runs). Goal <= {GOAL}: {verdict} (worst {worst:.3f}). "
            "The bare loop times each call with perf_counter_ns too, so the ratio isolates the harness "
            "(subprocess, copied model, runner bookkeeping), not the timer. A ratio below 1 means the bare loop's "
            "host process (which also imported TensorFlow to build the models) ran slightly slower than the "
            "runner's fresh process: the harness adds no measurable cost per inference."
        ),
    }
