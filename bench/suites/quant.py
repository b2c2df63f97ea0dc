"""The quantization ladder (issue 14) on four students, side by side with NNCF, in one run.

Students (tests/core/quant_cases.py), all on sklearn's digits (1300 train / 497 validation, 256 calibration
samples), trained here with KD from a wider CNN: a plain CNN, a MobileNetV3-style student (hard-swish,
squeeze-excite, depthwise), a one-block transformer (8 row tokens), and the hard case (the MobileNet-style
student with one depthwise channel 100x wider, function-preserving), which also gets rung 4 (QAT), run even
when an earlier rung holds the budget so its figures are in every run.

For each: `run_ladder(..., max_drop=0.01, runtimes=("ort", "litert", "tflm"))`, its wall time, every rung's
accuracy drop and p50 per runtime (single thread), the fp32/int8 latency ratio per runtime, and where ORT
int8 is slower than fp32 the op types responsible (edgekd.profile's per-op comparison, Q/DQ counted).

NNCF in the same run: `nncf.quantize` (plain PTQ) and `nncf.quantize_with_accuracy_control` (ONNX backend,
absolute max_drop 0.01, the same calibration and validation samples) on the same fp32 ONNX files, measured
by the same ORT code as edgekd's rows. The verdict per student (`versus_nncf`, and a note) compares edgekd's ORT
pick with NNCF's accuracy-controlled model on the same validation samples, their p50 measured interleaved in one
call: "YES" when edgekd is at least as accurate and at most 5 % slower. NNCF is a bench-only dependency
(requirements-bench.txt), installed beside the venv and run in a child process:
`EDGEKD_BENCH_DEPS=<dir> python bench/run.py quant`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # as the other suites: bench/run.py loads this file by path
    sys.path.insert(0, str(ROOT))
BUDGET = 0.01
RUNTIMES = ("ort", "litert", "tflm")


def _students(root: Path, epochs: int) -> list[dict[str, Any]]:
    """The four cases: fp32 ONNX, npz files, torch modules (for QAT)."""
    import torch

    from tests.core import quant_cases as qc

    data = qc.digits()
    torch.manual_seed(0)
    teacher = qc.train(qc.Teacher(), data["x_train"], data["y_train"], epochs=epochs, lr=3e-3, seed=0)
    np.savez(root / "val.npz", x=data["x_val"], y=data["y_val"])
    np.savez(root / "calib.npz", x=data["x_calib"])
    np.savez(root / "train.npz", x=data["x_train"], y=data["y_train"])
    cases = []
    for name, make, outlier in (
        ("cnn", qc.CnnStudent, False),
        ("mobilenet_hswish_se", qc.MobileStudent, False),
        ("transformer_block", qc.TransformerStudent, False),
        ("hard_case_mobilenet_outlier", qc.MobileStudent, True),
    ):
        torch.manual_seed(0)
        student = qc.train(make(), data["x_train"], data["y_train"], epochs=epochs, lr=3e-3, seed=0, teacher=teacher)
        if outlier:
            qc.rescale_depthwise_channel(student)
        cases.append({"name": name, "student": student, "teacher": teacher, "qat": outlier,
                      "onnx": qc.export_onnx(student, root / f"{name}.onnx")})  # fmt: skip
    return cases


def _nncf(model: Path, root: Path) -> dict[str, Any]:
    """NNCF plain PTQ and accuracy-controlled PTQ of `model` in a child process (bench deps on its path)."""
    deps = os.environ.get("EDGEKD_BENCH_DEPS")
    if not deps:
        return {"error": "EDGEKD_BENCH_DEPS not set: install requirements-bench.txt beside the venv (see the doc)"}
    job = {"model": str(model), "val": str(root / "val.npz"), "calib": str(root / "calib.npz"),
           "out": str(root / f"{model.stem}.nncf"), "max_drop": BUDGET}  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([deps, str(ROOT)])}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "nncf", json.dumps(job)], capture_output=True, text=True,
                          env=env, timeout=3600, check=False)  # fmt: skip
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "seconds": round(seconds, 1)}


def _nncf_child(job: dict[str, Any]) -> None:
    """Child: write <out>.ptq.onnx and <out>.ac.onnx with NNCF; print the paths as JSON."""
    import nncf
    import onnx
    import onnxruntime as ort

    model = onnx.load(job["model"])
    name = model.graph.input[0].name
    val, calib = np.load(job["val"]), np.load(job["calib"])["x"]
    calibration = nncf.Dataset([calib[i : i + 1] for i in range(len(calib))], lambda x: {name: x})
    validation = nncf.Dataset([(val["x"][i : i + 1], int(val["y"][i])) for i in range(len(val["y"]))],
                              lambda item: {name: item[0]})  # fmt: skip

    def accuracy(candidate: Any, items: Any) -> float:
        session = ort.InferenceSession(candidate.SerializeToString(), providers=["CPUExecutionProvider"])
        hits = [int(np.argmax(session.run(None, {name: x})[0]) == y) for x, y in items]
        return float(np.mean(hits))

    ptq = nncf.quantize(model, calibration, subset_size=len(calib))
    onnx.save(ptq, job["out"] + ".ptq.onnx")
    start = time.perf_counter()
    controlled = nncf.quantize_with_accuracy_control(
        model, calibration_dataset=calibration, validation_dataset=validation, validation_fn=accuracy,
        max_drop=job["max_drop"], drop_type=nncf.DropType.ABSOLUTE, subset_size=len(calib),
    )  # fmt: skip
    onnx.save(controlled, job["out"] + ".ac.onnx")
    print(json.dumps({"ptq": job["out"] + ".ptq.onnx", "ac": job["out"] + ".ac.onnx",
                      "ac_seconds": round(time.perf_counter() - start, 1), "nncf": nncf.__version__}))  # fmt: skip


def _ort_figures(
    path: Path, x: np.ndarray, y: np.ndarray, fp32_pred: np.ndarray, fp32_acc: float, runs: int
) -> dict[str, Any]:
    from edgekd.quantize import ort_backend

    pred = ort_backend.predict(path, x)
    accuracy = float((pred == y).mean())
    return {"accuracy": round(accuracy, 4), "drop": round(fp32_acc - accuracy, 4),
            "agreement": round(float((pred == fp32_pred).mean()), 4),
            "p50_ms": round(ort_backend.p50_ms(path, x[0], runs), 4)}  # fmt: skip


def _why_int8_is_slower(fp32: Path, int8: Path) -> str:
    """The op types that cost more in int8 than in fp32 (ORT per-op profile), and the Q/DQ node count."""
    from edgekd.profile.ort_profile import profile_onnx
    from edgekd.profile.views import int8_summary

    summary = int8_summary(profile_onnx(fp32, runs=200), profile_onnx(int8, runs=200), int8)
    qdq = summary.get("qdq_nodes", {})
    return f"slower op types: {', '.join(summary['slower'][:4]) or '-'}; Q/DQ nodes: {qdq}"


def _versus(name: str, out: Path, ladder: dict[str, Any], nncf_ac: Path, x: np.ndarray, y: np.ndarray,
            runs: int) -> dict[str, Any]:  # fmt: skip
    """edgekd's ORT pick against NNCF's accuracy-controlled model: accuracy on the same samples and p50 in
    one interleaved measurement (twice the suite's runs each), so background load cannot favour either."""
    from edgekd.quantize import ort_backend, ort_candidates

    pick = ladder["recommended"]["ort"]
    row = next(r for r in ladder["rows"] if r["rung"] == pick["rung"])
    mine_acc, theirs_acc = (float((ort_backend.predict(p, x) == y).mean()) for p in (out / pick["model"], nncf_ac))
    mine_ms, theirs_ms = ort_candidates.p50_ms_interleaved([out / pick["model"], nncf_ac], x[0], 2 * runs)
    samples = round((mine_acc - theirs_acc) * len(y))
    accurate, fast = samples >= 0, mine_ms <= theirs_ms * 1.05
    how = (
        f"rung {pick['rung']} ({row['name']}): {row.get('method')}, scope {row.get('scope', 'all')}, "
        f"bias correction {'on' if row.get('bias_correction') else 'off'}, {len(row.get('excluded', []))} op(s) float"
    )
    note = (f"{name}: edgekd vs NNCF accuracy control in ORT: {'YES' if accurate and fast else 'NO'}, edgekd is "
            f"{'at least as accurate' if accurate else 'LESS accurate'} ({mine_acc:.4f} vs {theirs_acc:.4f}, "
            f"{samples:+d} validation samples) at {'no higher' if fast else 'a HIGHER'} ORT latency "
            f"({mine_ms:.4f} vs {theirs_ms:.4f} ms, x{mine_ms / theirs_ms:.2f}; within 5 % counts as no higher). "
            f"edgekd's pick: {how}")  # fmt: skip
    return {"student": name, "edgekd_acc": round(mine_acc, 4), "nncf_acc": round(theirs_acc, 4),
            "edgekd_p50_ms": round(mine_ms, 5), "nncf_p50_ms": round(theirs_ms, 5), "samples": samples,
            "at_least_as_accurate": accurate, "no_higher_latency": fast, "edgekd_pick": how, "note": note}  # fmt: skip


def run(quick: bool) -> dict[str, Any]:
    from edgekd.quantize import ort_backend
    from edgekd.quantize.ladder import BudgetNotMetError, run_ladder
    from edgekd.quantize.qat import QatInputs

    runs = 100 if quick else 500
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    versus: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="edgekd-bench-quant-") as tmp:
        root = Path(tmp)
        cases = _students(root, epochs=10 if quick else 30)
        val = np.load(root / "val.npz")
        x, y = val["x"], val["y"]
        for case in cases:
            out = root / f"{case['name']}.ladder"
            qat = (
                QatInputs(case["student"], case["teacher"], root / "train.npz", epochs=3, freeze_after=2)
                if case["qat"]
                else None
            )
            start = time.perf_counter()
            error = None
            try:
                # the hard case shows rung 4 even when rungs 1-3 already hold the budget (qat_always)
                run_ladder(case["onnx"], root / "val.npz", root / "calib.npz", out, max_drop=BUDGET, runs=runs,
                           runtimes=RUNTIMES, qat=qat, qat_always=qat is not None)  # fmt: skip
            except BudgetNotMetError as exc:
                error = exc.message
            seconds = round(time.perf_counter() - start, 1)
            ladder = json.loads((out / "ladder.json").read_text())
            fp32 = ladder["fp32"]
            fp32_pred = ort_backend.predict(case["onnx"], x)
            recommended = ladder.get("recommended", {})
            for row in ladder["rows"]:
                for runtime, fig in row.get("runtimes", {}).items():
                    fp32_p50 = fp32["p50_ms"] if runtime == "ort" else fig.get("fp32_p50_ms")
                    rows.append({
                        "student": case["name"], "tool": "edgekd", "rung": f"{row['rung']} {row['name']}",
                        "runtime": runtime, "fp32_acc": fp32["accuracy"], "acc": fig["accuracy"], "drop": fig["drop"],
                        "agree": fig["agreement"], "p50_ms": fig["p50_ms"],
                        "fp32/int8": round(fp32_p50 / fig["p50_ms"], 2) if fp32_p50 and fig["p50_ms"] else None,
                        "float_ops": len(row.get("excluded", [])),
                        "recommended": recommended.get(runtime, {}).get("rung") == row["rung"],
                        "ladder_s": seconds,
                    })  # fmt: skip
            if error:
                notes.append(f"{case['name']}: {error}")
            if "ort" in recommended:
                chosen = out / recommended["ort"]["model"]
                if recommended["ort"]["p50_ms"] > fp32["p50_ms"]:
                    notes.append(f"{case['name']}: ORT int8 ({recommended['ort']['p50_ms']:.3f} ms) is slower than "
                                 f"fp32 ({fp32['p50_ms']:.3f} ms); {_why_int8_is_slower(case['onnx'], chosen)}")  # fmt: skip
            nncf = _nncf(case["onnx"], root)
            if "error" in nncf:
                notes.append(f"{case['name']}: NNCF not run: {nncf['error']}")
                continue
            for label, key in (("nncf quantize", "ptq"), ("nncf accuracy control", "ac")):
                fig = _ort_figures(Path(nncf[key]), x, y, fp32_pred, fp32["accuracy"], runs)
                rows.append({"student": case["name"], "tool": f"nncf {nncf['nncf']}", "rung": label, "runtime": "ort",
                             "fp32_acc": fp32["accuracy"], "acc": fig["accuracy"], "drop": fig["drop"],
                             "agree": fig["agreement"], "p50_ms": fig["p50_ms"],
                             "fp32/int8": round(fp32["p50_ms"] / fig["p50_ms"], 2),
                             "ladder_s": nncf["ac_seconds"] if key == "ac" else None})  # fmt: skip
            mine = recommended.get("ort")
            if mine:
                versus.append(_versus(case["name"], out, ladder, Path(nncf["ac"]), x, y, runs))
                notes.append(versus[-1]["note"])
            else:
                notes.append(f"{case['name']}: edgekd vs NNCF accuracy control in ORT: NO, the ladder did not hold "
                             "the budget in ORT")  # fmt: skip
    notes.insert(0, f"budget: absolute top-1 drop <= {BUDGET} vs the fp32 ONNX model in ORT, {len(x)} validation "
                    f"samples (1 sample = {100 / len(x):.2f} points); p50 single thread, batch 1, {runs} runs; "
                    "TFLM p50 is not measured (host timing says nothing about a microcontroller)")  # fmt: skip
    return {"rows": rows, "notes": "\n\n".join(notes), "versus_nncf": versus}


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "nncf":
    _nncf_child(json.loads(sys.argv[2]))
