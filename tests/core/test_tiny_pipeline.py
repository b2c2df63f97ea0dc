"""examples/fashion_mnist.toml end to end on a Fashion-MNIST subset from Debian's dataset-fashion-mnist package.

The example recipe is run as shipped except for what makes it quick (a 600-image stratified subset, 2 epochs,
no benchmark, no scratch baseline): IDX files -> CNN teacher -> KD into the MLPerf Tiny ResNet-8 at 28x28 ->
ONNX -> int8 TFLite -> TFLite Micro bundle with the arena measured in TFLM's interpreter.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "fashion_mnist.toml"
FASHION = Path("/usr/share/datasets/fashion-mnist")
FILES = [f"{split}-{kind}-ubyte.gz" for split in ("train", "t10k") for kind in ("images-idx3", "labels-idx1")]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not all((FASHION / f).is_file() for f in FILES),
                       reason=f"Debian's dataset-fashion-mnist is not installed ({FASHION}): apt install dataset-fashion-mnist"),
]  # fmt: skip


def quick_recipe(text: str) -> str:
    """The example made quick; every edit must hit.

    A 600-image subset, 2 (teacher) and 3 (student) epochs of batch 16 (ResNet-8's BatchNorm keeps Keras'
    momentum 0.99, torch 0.01: its running statistics need a few hundred steps before evaluation-mode
    outputs mean anything), no bench, no baseline, and an int8 gate for a ~90-image test split, where one
    image is 1.1 points.
    """
    edits = [
        (r'label_set = "fashion_mnist"\n', 'label_set = "fashion_mnist"\nlimit = 600\n', 1),
        (r"epochs = 8,", "epochs = 2,", 1),
        (r"epochs = 15,", "epochs = 3,", 1),
        (r"batch_size = 128", "batch_size = 16", 2),
        (r"baseline = true", "baseline = false", 1),
        (r'precisions = \["fp32", "int8"\]', 'precisions = ["int8"]', 1),
        (r"\[bench\]\n", "[bench]\nenabled = false\n", 1),
        (r"\[handoff\]\n", "[verify]\nint8 = { agreement = 0.9, max_accuracy_drop = 0.05 }\n\n[handoff]\n", 1),
    ]
    for pattern, replacement, expected in edits:
        text, count = re.subn(pattern, replacement, text)
        assert count == expected, f"{pattern} found {count} times in {EXAMPLE}, expected {expected}"
    return text


def test_fashion_mnist_subset_through_resnet8_to_a_micro_bundle(tmp_path: Path) -> None:
    recipe = tmp_path / "fashion.toml"
    recipe.write_text(quick_recipe(EXAMPLE.read_text(encoding="utf-8")), encoding="utf-8")
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "edgekd.cli", "run", str(recipe), "--out", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=900, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())

    distill = report["distill"]
    assert (
        distill["student_params"] == 77_898
    )  # ResNet-8 at 28x28x1, 10 classes (trainable; tests/core/test_tiny_models.py)
    assert distill["teacher_params"] > 4 * distill["student_params"]
    assert distill["train_samples"] + distill["test_samples"] < 600  # the limit took effect (val is the rest)
    assert distill["student_accuracy"] > 0.2  # twice chance, even after 3 short epochs
    student = json.loads((out / "student.pt.json").read_text())
    assert student["config"]["model"]["arch"] == "resnet8" and student["config"]["input_shape"] == [1, 28, 28]

    parity = {row["artifact"]: row for row in report["parity"]}
    assert parity["tflite_int8"]["passed"], parity["tflite_int8"]
    manifest = json.loads((out / "handoff" / "model_manifest.json").read_text())
    assert manifest["labels"][0] == "T-shirt/top" and manifest["preprocessing"]["raw_dtype"] == "uint8"
    assert manifest["preprocessing"]["scale"] == pytest.approx(1 / 255)
    assert manifest["arena"]["method"] == "measured-tflm" and manifest["arena"]["bytes"] > 0, manifest["arena"]
    assert report["handoff"]["golden_tflm_max_abs_diff"] == 0.0  # TFLM gives the golden outputs exactly
    memory = manifest["memory"]
    model_bytes = (out / "handoff" / manifest["model"]["file"]).stat().st_size
    assert memory["flash"]["model_bytes"] == model_bytes and memory["flash"]["method"] == "estimate"
    assert set(memory["flash"]["kernel_code_per_op"]) == set(
        manifest["operators"]
    )  # every op of ResNet-8 has an estimate
    assert memory["flash"]["total_bytes"] > model_bytes and memory["ram"]["arena_bytes"] == manifest["arena"]["bytes"]
    assert report["handoff"]["memory"] == memory
