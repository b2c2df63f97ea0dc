"""MLPerf Tiny reference models on a microcontroller: parameters, MACs, int8 size, measured arena, flash, Vela.

For each reference architecture (edgekd.distill.tiny_models, layer for layer as mlcommons/tiny) at its
reference input size: seeded random weights (arena, flash and Vela's figures do not depend on the
values), torch -> ONNX (opset 18) -> full-int8 TFLite (`edgekd quantize --to tflite`, 64 random-normal
calibration samples) -> `edgekd handoff --platform ethos-u55-128`, which measures the TFLM arena,
estimates flash (model + TFLM code, see edgekd/handoff/memory.py) and runs Vela. The autoencoder is
architecture only in edgekd (no reconstruction objective), but its memory figures are the same.

The autoencoder's int8 model is made by TensorFlow from the reference's own Keras layers (`edgekd quantize`
refuses rank-2 calibration data for TFLite), then handed off like the others.

Accuracy (rows "fashion_mnist ..."): examples/fashion_mnist.toml run by `edgekd run` on Fashion-MNIST (Debian's
dataset-fashion-mnist; train + t10k pooled, split seeded and stratified with the example's 1/7 test share),
with the epochs this shared 2-core machine can afford (ACCURACY_EDITS; the teacher 32 wide instead of 64):
EDGEKD_BENCH_TINY_LIMIT images (0: all 70,000, batch 128; else a stratified subset, batch 32) and
EDGEKD_BENCH_TINY_EPOCHS epochs each, for each [run] seed of EDGEKD_BENCH_TINY_SEEDS (default 0; the rows say which were used): the CNN teacher, the KD ResNet-8 and the
from-scratch ResNet-8; the firmware-path row is the int8 student run in TensorFlow Lite Micro over the whole
test split; the int8 student is then handed off for Ethos-U55 to get Vela's estimates. The work directory (EDGEKD_BENCH_TINY_WORK, default /tmp/edgekd-bench-tiny) keeps the
run's stage cache, so an interrupted suite resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# name: (arch, input shape without batch, classes) at the MLPerf Tiny reference sizes
MODELS = {
    "resnet8": ("resnet8", (3, 32, 32), 10),
    "dscnn": ("dscnn", (1, 49, 10), 12),
    "mobilenet_v1_0.25": ("mobilenet_v1", (3, 96, 96), 2),
    "fc_autoencoder": ("fc_autoencoder", (640,), 0),
}
ACCELERATOR = "ethos-u55-128"
FASHION = Path("/usr/share/datasets/fashion-mnist")
EXAMPLE = ROOT / "examples" / "fashion_mnist.toml"
WORK = Path(os.environ.get("EDGEKD_BENCH_TINY_WORK", Path(tempfile.gettempdir()) / "edgekd-bench-tiny"))
# (pattern, replacement, expected count): the example as shipped, but with epochs this machine can afford
# Measured on 2026-12-02 at load 12-15 (five other engineers' jobs): this run got 0.22 of a core, and one epoch of
# the 32-wide teacher on all 60,000 training images had not finished after 17 minutes (3.9 CPU-minutes), so the
# full set (~25 CPU-minutes for teacher, KD, scratch and TFLM over 10,000 test images) could not end by the
# deadline. Cut: a 20,000-image stratified subset (FULL_LIMIT), one epoch each, batch 32 (470 steps: ResNet-8's
# BatchNorm keeps Keras' momentum 0.99, so its running statistics need a few hundred steps), one seed.
FULL_LIMIT = int(os.environ.get("EDGEKD_BENCH_TINY_LIMIT", "20000"))  # 0: all 70,000 images (batch 128 then)
EPOCHS = int(os.environ.get("EDGEKD_BENCH_TINY_EPOCHS", "1"))  # teacher, KD student and scratch baseline alike
SEEDS = [int(s) for s in os.environ.get("EDGEKD_BENCH_TINY_SEEDS", "0").split(",")]  # [run] seed: split, init, order
ACCURACY_EDITS = [
    (r"model = \{ arch = \"cnn\", width = 64, depth = 3 \}", 'model = { arch = "cnn", width = 32, depth = 3 }', 1),
    (r"epochs = 8,", f"epochs = {EPOCHS},", 1),  # teacher
    (r"epochs = 15,", f"epochs = {EPOCHS},", 1),  # KD student and scratch baseline
    (r"batch_size = 128", "batch_size = 32", 2),
    (r"\[bench\]\n", "[bench]\nenabled = false\n", 1),
]
LIMIT_EDIT = r'label_set = "fashion_mnist"\n'
QUICK_LIMIT = 2000


def _edgekd(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "edgekd.cli", "--json", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=6 * 3600, check=False, env=env)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"edgekd {' '.join(args)} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def _params_macs(arch: str, shape: tuple[int, ...], classes: int) -> tuple[Any, int, int]:
    import torch

    from edgekd.distill.flops import count_flops
    from edgekd.distill.tiny_models import build_tiny

    torch.manual_seed(0)
    model = build_tiny(arch, shape, classes).eval()
    params = sum(p.numel() for p in model.parameters())
    return model, params, count_flops(model, shape) // 2  # count_flops counts a multiply-accumulate as 2 FLOPs


def _int8_tflite(name: str, arch: str, shape: tuple[int, ...], classes: int, work: Path) -> Path:
    import numpy as np
    import torch

    model, _, _ = _params_macs(arch, shape, classes)
    onnx_path = work / f"{name}.onnx"
    torch.onnx.export(
        model, (torch.zeros(1, *shape),), str(onnx_path), dynamo=True, opset_version=18, external_data=False
    )
    np.savez(work / "calibration.npz", x=np.random.default_rng(0).normal(size=(64, *shape)).astype(np.float32))
    _edgekd(
        "quantize", str(onnx_path), "--to", "tflite", "-c", str(work / "calibration.npz"), "--out", str(work / name)
    )
    return next((work / name).glob("*int8*.tflite"))


def _autoencoder_int8_tflite(features: int, work: Path) -> Path:
    """The reference's Keras FC autoencoder (anomaly_detection/keras_model.py), full-int8 by TFLiteConverter."""
    import numpy as np
    import tensorflow as tf

    from edgekd.distill.tiny_models import AUTOENCODER_BOTTLENECK, AUTOENCODER_WIDTH

    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input(shape=(features,))
    x = inputs
    for units in [AUTOENCODER_WIDTH] * 4 + [AUTOENCODER_BOTTLENECK] + [AUTOENCODER_WIDTH] * 4:
        x = tf.keras.layers.Activation("relu")(tf.keras.layers.BatchNormalization()(tf.keras.layers.Dense(units)(x)))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(features)(x))
    samples = np.random.default_rng(0).normal(size=(64, 1, features)).astype(np.float32)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([s] for s in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    path = work / "fc_autoencoder.int8.tflite"
    path.write_bytes(converter.convert())
    return path


def _memory_row(name: str, tflite: Path, work: Path) -> dict[str, Any]:
    """int8 size, measured TFLM arena, flash estimate, RAM and Vela's figures from an ethos-u55-128 handoff."""
    handoff = _edgekd("handoff", str(tflite), "--out", str(work / "handoff"), "--platform", ACCELERATOR,
                      "--model-name", name.replace(".", "_"), "--no-zip")["handoff"]  # fmt: skip
    memory, vela = handoff["memory"], handoff["ethos_u"]
    return {
        "int8_bytes": handoff["model_bytes"], "arena_bytes": handoff["arena_bytes"], "arena_method": handoff["arena_method"],
        "flash_estimate_bytes": memory["flash"]["total_bytes"], "kernel_code_bytes": memory["flash"]["kernel_code_bytes"],
        "core_code_bytes": memory["flash"]["core_code_bytes"], "ram_bytes": memory["ram"]["total_bytes"],
        "operators": handoff["operators"],
        "vela": {k: vela[k] for k in ("accelerator", "system_config", "memory_mode", "core_clock_hz", "sram_bytes",
                                     "off_chip_flash_bytes", "npu_operators", "cpu_operators", "cpu_operator_types",
                                     "cycles_total", "inferences_per_second", "version")},
    }  # fmt: skip


def reference_rows() -> list[dict[str, Any]]:
    """The four reference architectures at their reference sizes, seeded random weights."""
    rows = []
    for name, (arch, shape, classes) in MODELS.items():
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            _, params, macs = _params_macs(arch, shape, classes)
            row: dict[str, Any] = {"model": name, "input": list(shape), "params": params, "macs": macs}
            try:
                if arch == "fc_autoencoder":
                    tflite = _autoencoder_int8_tflite(shape[0], Path(tmp))
                    row["int8_made_by"] = "TFLiteConverter from the reference Keras layers"
                else:
                    tflite = _int8_tflite(name, arch, shape, classes, Path(tmp))
                    row["int8_made_by"] = "edgekd quantize --to tflite"
                row.update(_memory_row(name, tflite, Path(tmp)))
            except RuntimeError as exc:  # recorded, not hidden: the other models still run
                row["error"] = str(exc).splitlines()[0][-400:]
            row["seconds"] = round(time.perf_counter() - start, 1)
            rows.append(row)
    return rows


def accuracy_recipe(quick: bool) -> str:
    """examples/fashion_mnist.toml with ACCURACY_EDITS and a FULL_LIMIT (QUICK_LIMIT when quick) subset; every edit hits."""
    text = EXAMPLE.read_text(encoding="utf-8")
    size = QUICK_LIMIT if quick else FULL_LIMIT
    edits = [*ACCURACY_EDITS, (LIMIT_EDIT, f'label_set = "fashion_mnist"\nlimit = {size}\n', 1)] if size else [
        e for e in ACCURACY_EDITS if "batch_size" not in e[0]]  # fmt: skip
    for pattern, replacement, expected in edits:
        text, count = re.subn(pattern, replacement, text)
        if count != expected:
            raise RuntimeError(f"{pattern!r} found {count} times in {EXAMPLE}, expected {expected}")
    return text.replace('path = "/usr/share/datasets/fashion-mnist"', f'path = "{FASHION}"')


def fashion_rows(quick: bool) -> list[dict[str, Any]]:
    """Teacher, KD ResNet-8, scratch ResNet-8 and the int8 student in TFLM on Fashion-MNIST, via `edgekd run`, per
    seed of EDGEKD_BENCH_TINY_SEEDS; with several seeds, KD minus scratch per seed and its mean."""
    rows = [row for seed in SEEDS for row in _fashion_seed(quick, seed)]
    if len(SEEDS) > 1:
        accuracy = {
            (r["model"], r["seed"]): r["fp32_accuracy"] for r in rows if "fp32_accuracy" in r and "runtime" not in r
        }
        gaps = [
            100 * (accuracy[("fashion_mnist resnet8 KD", s)] - accuracy[("fashion_mnist resnet8 scratch", s)])
            for s in SEEDS
        ]
        rows.append({"model": "fashion_mnist KD - scratch (points)", "seed": ",".join(map(str, SEEDS)),
                     "per_seed": [round(g, 2) for g in gaps], "mean": round(statistics.mean(gaps), 2),
                     "std": round(statistics.stdev(gaps), 2)})  # fmt: skip
    return rows


def _fashion_seed(quick: bool, seed: int) -> list[dict[str, Any]]:
    WORK.mkdir(parents=True, exist_ok=True)
    name = ("fashion_quick" if quick else "fashion") + (f"_seed{seed}" if seed else "")
    recipe = WORK / f"{name}.toml"
    text, count = re.subn(
        r"\[run\]\nname = (.*)\nseed = 0\n", f"[run]\nname = \\1\nseed = {seed}\n", accuracy_recipe(quick)
    )
    if count != 1:
        raise RuntimeError(f"[run] seed = 0 not found in {EXAMPLE}")
    recipe.write_text(text, encoding="utf-8")
    out = WORK / recipe.stem
    env = dict(os.environ, EDGEKD_HISTORY=str(WORK / "history.sqlite"))  # never the user-wide history
    start = time.perf_counter()
    _edgekd("run", str(recipe), "--out", str(out), env=env)
    wall = round(time.perf_counter() - start, 1)
    report = json.loads((out / "report.json").read_text())
    distill, parity = report["distill"], {row["artifact"]: row for row in report["parity"]}
    stages = {s.get("stage", s.get("name", str(i))): s.get("seconds") for i, s in enumerate(report["stages"])}
    history = json.loads((out / "history.json").read_text())
    data = f"Fashion-MNIST {distill['train_samples']:,} train / {distill['test_samples']:,} test"
    common = {"data": data, "seed": seed}
    rows = [
        {"model": "fashion_mnist teacher cnn", **common, "params": distill["teacher_params"],
         "macs": distill["teacher_flops"] // 2, "epochs": _epochs(recipe, "teacher"), "fp32_accuracy": distill["teacher_accuracy"]},
        {"model": "fashion_mnist resnet8 KD", **common, "params": distill["student_params"], "macs": distill["student_flops"] // 2,
         "epochs": len(history["student"]), "fp32_accuracy": distill["student_accuracy"],
         "train_seconds": round(sum(e["train_seconds"] for e in history["student"]), 1)},
        {"model": "fashion_mnist resnet8 scratch", **common, "params": distill["scratch_params"],
         "macs": distill["scratch_flops"] // 2, "epochs": len(history["scratch"]), "fp32_accuracy": distill["scratch_accuracy"],
         "train_seconds": round(sum(e["train_seconds"] for e in history["scratch"]), 1)},
    ]  # fmt: skip
    for artifact in ("tflite_int8", "tflm_int8"):
        row = parity[artifact]
        rows.append({"model": f"fashion_mnist resnet8 KD {artifact}", **common, "runtime": row.get("runtime") or "ai-edge-litert",
                     "int8_accuracy": row["accuracy"], "fp32_accuracy": row["reference_accuracy"],
                     "accuracy_delta_points": round(100 * row["accuracy_delta"], 2), "top1_agreement": row["top1_agreement"],
                     "within_1_point": abs(row["accuracy_delta"]) <= 0.01, "gate_passed": row["passed"]})  # fmt: skip
    handoff = report["handoff"]
    tflite = out / "handoff" / handoff["model_file"]
    vela = _memory_row("fashion_resnet8", tflite, WORK / "vela")
    rows.append({"model": "fashion_mnist resnet8 KD int8 (trained)", **common, **vela})
    rows.append(
        {
            "model": "fashion_mnist run wall time",
            "seed": seed,
            "seconds": round(sum(v or 0.0 for v in stages.values()), 1),
            "stage_seconds": stages,
            "this_call_seconds": wall,
        }
    )  # stages cached from an earlier call keep their time
    return rows


def _epochs(recipe: Path, table: str) -> int:
    import tomllib

    return int(tomllib.loads(recipe.read_text(encoding="utf-8"))[table]["train"]["epochs"])


# Published MLPerf Tiny figures (closed division, median of the 5 windows each results.txt reports).
# quality targets: https://mlcommons.org/en/inference-tiny-05 (the benchmarks table, "Quality" column)
# reference: mlcommons/tiny_results_v0.5 closed/reference (Nucleo-L4R5ZI: Cortex-M4 at 120 MHz, TFLM 2.3.1),
#   results/Nucleo-L4R5ZI/{ic,kws,vww,ad}/{performance,energy,accuracy}/results.txt
# ST: mlcommons/tiny_results_v1.1 closed/STMicroelectronics (NUCLEO-L4R5ZI, same chip, X-CUBE-AI 8.1.0),
#   results/NUCLEO_L4R5ZI/{ic,kws,vww,ad}/{performance,energy,accuracy}/results.txt
# task: (reference model row, target, reference (quality, inf/s, uJ/inf), ST v1.1 (quality, inf/s, uJ/inf))
PUBLISHED = {
    "IC (CIFAR-10)": ("resnet8", "85 % top-1", ("86.5 %", 1.420, 29207.010), ("85.0 %", 4.673, 7019.085)),
    "KWS (Speech Commands)": ("dscnn", "90 % top-1", ("90.1 %", 5.497, 7373.704), ("90.2 %", 15.905, 2833.138)),
    "VWW (COCO persons)": (
        "mobilenet_v1_0.25",
        "80 % top-1",
        ("85.4 %", 1.665, 24312.648),
        ("85.3 %", 8.425, 5618.279),
    ),
    "AD (ToyADMOS car)": (
        "fc_autoencoder",
        "AUC 0.85",
        ("not in the results", 99.487, 416.312),
        ("AUC 0.86", 145.829, 293.912),
    ),
}
REFERENCE_CLOCK_HZ = 120e6  # both published systems: STM32L4R5ZI, Cortex-M4 at 120 MHz


def _ms(throughput: float) -> str:
    return f"{1000 / throughput:.1f} ms"


def comparison_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: published MLPerf Tiny figures beside edgekd's, with a Cortex-M4 latency estimate for our models.

    The estimate is MACs x the reference system's measured cycles per MAC for the same task (120 MHz x latency /
    the reference model's MACs): same chip and TFLM's reference build, so it is an estimate of the order of
    magnitude, not a measurement.
    """
    by_model = {row["model"]: row for row in reversed(rows)}  # the first seed's rows when there are several
    lines = [
        (
            "| task | MLPerf Tiny target | reference v0.5 (TFLM 2.3.1, L4R5ZI): quality / latency / energy | ST v1.1 "
            "(X-CUBE-AI 8.1, L4R5ZI): quality / latency / energy | edgekd model | params | MACs | int8 bytes | arena "
            "(measured TFLM) | flash estimate | Vela U55-128 cycles (inf/s), estimate | edgekd accuracy | Cortex-M4 120 MHz "
            "latency, estimate |"
        ),
        "|" + "---|" * 13,
    ]
    for task, (name, target, ref, st) in PUBLISHED.items():
        model = by_model.get(name, {})
        if "macs" not in model:
            continue
        cycles_per_mac = REFERENCE_CLOCK_HZ / ref[1] / model["macs"]
        variants = [
            (model, "not measured: random weights (the data set is not on this machine; nothing is downloaded)")
        ]
        trained = by_model.get("fashion_mnist resnet8 KD int8 (trained)")
        if name == "resnet8" and trained:
            tflm = by_model.get("fashion_mnist resnet8 KD tflm_int8", {})
            fp32 = by_model.get("fashion_mnist resnet8 KD", {})
            accuracy = (f"Fashion-MNIST, not CIFAR-10: int8 in TFLM {100 * tflm.get('int8_accuracy', float('nan')):.2f} % "
                        f"(fp32 {100 * fp32.get('fp32_accuracy', float('nan')):.2f} %)")  # fmt: skip
            variants.append(
                ({**trained, "params": fp32.get("params"), "macs": fp32.get("macs"), "input": [1, 28, 28]}, accuracy)
            )
        for row, accuracy in variants:
            if "arena_bytes" not in row:
                continue
            vela = row["vela"]
            estimate = row["macs"] * cycles_per_mac / REFERENCE_CLOCK_HZ * 1000
            basis = f"{cycles_per_mac:.2f} cycles/MAC of the reference"
            same = row["macs"] == model["macs"]
            latency = f"the reference's, by construction ({basis})" if same else f"{estimate:,.0f} ms ({basis})"
            lines.append(
                f"| {task} | {target} | {ref[0]} / {_ms(ref[1])} / {ref[2]:,.0f} uJ | {st[0]} / {_ms(st[1])} / {st[2]:,.0f} uJ "
                f"| {name} {'x'.join(str(d) for d in row.get('input', []))} | {row['params']:,} | {row['macs']:,} "
                f"| {row['int8_bytes']:,} | {row['arena_bytes']:,} | {row['flash_estimate_bytes']:,} "
                f"| {vela['cycles_total']:,} ({vela['inferences_per_second']:,.0f}) | {accuracy} "
                f"| {latency} |"
            )
    return "\n".join(lines)


def notes(rows: list[dict[str, Any]]) -> str:
    """The module docstring, the comparison table and the basis of its latency estimate."""
    basis = textwrap.dedent((comparison_table.__doc__ or "").split("\n\n", 1)[1]).strip().replace("\n", " ")
    table = comparison_table(rows)
    return f"{(__doc__ or '').strip()}\n\n### MLPerf Tiny, published and edgekd's\n\n{table}\n\n{basis}"


def run(quick: bool) -> dict[str, Any]:
    rows = fashion_rows(quick) if FASHION.is_dir() else [{"model": "fashion_mnist", "error": f"{FASHION} is missing: "
                                                          "apt install dataset-fashion-mnist"}]  # fmt: skip
    rows += reference_rows()
    return {"rows": rows, "notes": notes(rows)}
