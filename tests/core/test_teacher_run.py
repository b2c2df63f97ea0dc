"""`edgekd run` with an ONNX teacher and a soft-label teacher (both made outside edgekd): exit 0, the summary
shows the teacher's params as unknown, report.json carries the teacher's own preprocessing and check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.support.distill_fixtures import digits, raw_digits, train_outside_edgekd

ROOT = Path(__file__).resolve().parents[2]
TAIL = """[student]
model = { arch = "cnn", width = 4, depth = 2 }
[distill]
train = { epochs = 2 }
[quantize]
enabled = false
[tflite]
enabled = false
[bench]
enabled = false
[handoff]
enabled = false
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """teacher.onnx (torch.onnx) and soft.npz (its logits for every sample id), trained on raw [0, 1] digits."""
    data = digits()
    x, y = raw_digits()
    model = train_outside_edgekd(x[data.ids_train], y[data.ids_train], epochs=15)
    out = tmp_path_factory.mktemp("teachers")
    torch.onnx.export(model, (torch.from_numpy(x[:4]),), str(out / "teacher.onnx"), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "b"}, "y": {0: "b"}}, dynamo=False)  # fmt: skip
    with torch.no_grad():
        np.savez(out / "soft.npz", ids=np.arange(len(x)), logits=model(torch.from_numpy(x)).numpy())
    return out


@pytest.mark.parametrize(("kind", "path"), [("onnx", "teacher.onnx"), ("soft_labels", "soft.npz")])
def test_run_with_an_imported_teacher_exits_0(kind, path, folder, tmp_path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[run]\nname = "{kind}"\n[teacher]\nkind = "{kind}"\npath = "{folder / path}"\n{TAIL}')
    done = subprocess.run([sys.executable, "-m", "edgekd.cli", "run", str(recipe), "--out", str(tmp_path / "run")],
                          check=False, capture_output=True, text=True, cwd=ROOT, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "(unknown params)" in " ".join(done.stdout.split())
    distill = json.loads((tmp_path / "run" / "report.json").read_text())["distill"]
    assert distill["teacher_params"] is None and distill["teacher_kind"] == kind
    assert distill["teacher_check"]["passed"] is True and distill["teacher_accuracy"] > 0.9
    if kind == "onnx":
        assert "mean" not in distill["teacher_preprocessing"]  # the raw inputs it was trained on
