"""`[quantize] max_accuracy_drop` runs the quantization ladder inside `edgekd run` (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgekd.errors import ConversionError, RecipeError
from edgekd.pipeline import Pipeline
from edgekd.recipe import parse_recipe
from edgekd.stages import default_stages

UP_TO_QUANTIZE = {"data", "teacher", "distill", "export", "calibrate", "quantize", "report"}


def recipe(**quantize: Any) -> dict[str, Any]:
    """A tiny digits run: a small MLP teacher and student, two epochs each, ORT only (no TFLite, no handoff)."""
    return {
        "run": {"name": "budget", "seed": 0},
        "data": {"source": "digits"},
        "teacher": {"model": {"arch": "mlp", "width": 64, "depth": 1}, "train": {"epochs": 3}},
        "student": {"model": {"arch": "mlp", "width": 32, "depth": 1}},
        "distill": {"train": {"epochs": 3}, "baseline": False},
        "quantize": quantize,
        "tflite": {"enabled": False},
        "handoff": {"enabled": False},
        "bench": {"enabled": False},
        "report": {"history": False},
    }


def run(tmp_path: Path, **quantize: Any) -> Path:
    pipeline = Pipeline(default_stages(), parse_recipe(recipe(**quantize)), tmp_path, tmp_path / "run")
    pipeline.execute(only=UP_TO_QUANTIZE)
    return tmp_path / "run"


def test_a_budget_runs_the_ladder_and_the_report_holds_it(tmp_path: Path) -> None:
    out = run(tmp_path, max_accuracy_drop=0.5, qat=False)
    manifest = json.loads((out / ".edgekd" / "stages" / "quantize.json").read_text())
    names = {a["name"] for a in manifest["artifacts"]}
    assert {"onnx_int8", "quant_ladder"} <= names
    summary = manifest["summary"]
    assert summary["recommended"]["ort"]["rung"] == 1 and summary["rows"][0]["name"] == "ptq"
    ladder = json.loads((out / "quant_ladder" / "ladder.json").read_text())
    assert ladder["max_drop"] == 0.5 and ladder["recommended"]["ort"]["model"] == "ptq.int8.onnx"
    report = json.loads((out / "report.json").read_text())
    section = report["quantization"]
    assert section["max_accuracy_drop"] == 0.5
    assert section["recommended"]["ort"]["model"] == "ptq.int8.onnx"
    first = section["rows"][0]
    assert first["runtime"] == "ort" and first["rung"] == 1 and first["accuracy"] is not None
    assert first["p50_ms"] is not None and first["agreement"] is not None
    assert "Quantization ladder" in (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert 'id="quantization"' in html and 'id="plot-quantization"' in html  # table + drop-vs-p50 plot


def sensor_images(folder: Path) -> Path:
    """Digits (N, 1, 8, 8) in [0, 1] whose corner pixel (blank in every digit) holds a raw sensor reading stuck
    at 300: a user's .npz with one unscaled value. The model learns it as a bias; per-tensor int8 input
    quantization (LiteRT's full-int8 input, scale 300/127) then loses the pixels' detail (7.8 points here). ORT can
    keep the first layer float (rungs 2-3), LiteRT cannot."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]
    x[:, 0, 0, 0] = 300.0
    path = folder / "sensor.npz"
    np.savez(path, x=x, y=bunch.target.astype(np.int64))
    return path


def test_a_budget_tflm_cannot_hold_fails_naming_the_best_rung_and_keeps_the_trained_stages(tmp_path: Path) -> None:
    """A student with torch.sign (TFLite SIGN, no TFLM kernel) and a micro handoff: no rung can run in TFLM, so the
    quantize stage fails naming the runtime, the best rung and why, after keeping what was trained."""
    base = recipe(max_accuracy_drop=0.01, qat=False)
    base["student"] = {"model": {"arch": "custom", "factory": "tests.support.tiny_models:sign_net"}}
    base["tflite"] = {"enabled": True, "precisions": ["int8"]}
    base["handoff"] = {"enabled": True, "artifact": "tflite_int8", "platform": "micro"}
    pipeline = Pipeline(default_stages(), parse_recipe(base), tmp_path, tmp_path / "run")
    with pytest.raises(ConversionError) as caught:
        pipeline.execute(only=UP_TO_QUANTIZE)
    message = str(caught.value)
    assert "cannot hold the accuracy budget (max drop 0.0100)" in message and "tflm" in message
    assert "could not run" in message and "SIGN" in message
    out = tmp_path / "run"
    assert (out / "student.pt").is_file() and (out / "teacher.pt").is_file() and (out / "data.npz").is_file()
    report = json.loads((out / "report.json").read_text())
    section = report["quantization"]
    assert "tflm" in section["not_met"] and "tflm" in section["error"]
    assert "ort" in section["recommended"]  # ORT held: its pick is still recorded
    assert (out / "quant_ladder" / "ladder.json").is_file()
    assert "set [quantize] qat = true" in message  # the hint speaks the recipe's words, not the CLI's
    with pytest.raises(ConversionError, match="cannot hold the accuracy budget"):  # a rerun replays it from the cache
        pipeline.execute(only=UP_TO_QUANTIZE)
    assert json.loads((out / ".edgekd" / "stages" / "quantize.json").read_text())["status"] == "done"


@pytest.mark.parametrize(
    ("quantize", "words"),
    [
        ({"max_accuracy_drop": 0.01, "mode": "dynamic"}, 'mode = "dynamic" cannot hold a budget'),
        ({"qat": False}, "qat applies only with an accuracy budget"),
        ({"raise_to": "int16"}, "raise_to applies only with an accuracy budget"),
        ({"max_accuracy_drop": 0.01, "method": "entropy"}, "method is chosen by the ladder"),
        ({"max_accuracy_drop": 0.01, "per_channel": False}, "per-channel int8 weights"),
        ({"max_accuracy_drop": 0.01, "enabled": False}, "needs the quantize stage"),
    ],
)
def test_a_combination_that_cannot_take_effect_is_refused_before_training(
    tmp_path: Path, quantize: dict[str, Any], words: str
) -> None:
    with pytest.raises(RecipeError, match=words) as caught:
        parse_recipe(recipe(**quantize))
    assert caught.value.exit_code == 2


@pytest.mark.slow
def test_the_handoff_bundles_the_ladders_pick_and_verify_gates_it(tmp_path: Path) -> None:
    base = recipe(max_accuracy_drop=0.5, qat=False)
    base["tflite"] = {"enabled": True, "precisions": ["int8"]}
    base["handoff"] = {"enabled": True, "platform": "micro"}
    pipeline = Pipeline(default_stages(), parse_recipe(base), tmp_path, tmp_path / "run")
    pipeline.execute(only=UP_TO_QUANTIZE | {"tflite", "verify", "handoff"})
    out = tmp_path / "run"
    quantize = json.loads((out / ".edgekd" / "stages" / "quantize.json").read_text())["summary"]
    assert quantize["runtimes"] == ["ort", "litert", "tflm"]
    pick = quantize["recommended"]["tflm"]
    report = json.loads((out / "report.json").read_text())
    handoff = report["handoff"]
    assert handoff["chosen_by"].startswith(f"quantization ladder: rung {pick['rung']} ({pick['name']})")
    bundled = next(p for p in (out / "handoff").rglob("*.tflite"))
    assert bundled.read_bytes() == (out / "quant_ladder" / pick["model"]).read_bytes()
    gated = {row["artifact"] for row in report["parity"]}
    assert "quant_litert_tflm_int8" in gated and "onnx_int8" in gated
    tflm = next(row for row in report["parity"] if row["artifact"] == "tflm_int8")  # the firmware's row
    assert Path(tflm["path"]).name == pick["model"] and tflm["passed"]


@pytest.mark.slow
def test_qat_fine_tunes_the_runs_student_against_the_runs_teacher(tmp_path: Path) -> None:
    """qat = "always": rung 4 trains the distill stage's student against the teacher stage's teacher (the run's own
    models, loaded from their artifacts) whatever rungs 1-3 reached, and is recorded per runtime."""
    base = recipe(max_accuracy_drop=0.01, qat="always")
    base["data"] = {"source": "npz", "path": str(sensor_images(tmp_path)), "normalize": "none"}
    base["tflite"] = {"enabled": True, "precisions": ["int8"]}
    base["teacher"]["train"] = base["distill"]["train"] = {"epochs": 10}
    pipeline = Pipeline(default_stages(), parse_recipe(base), tmp_path, tmp_path / "run")
    try:
        pipeline.execute(only=UP_TO_QUANTIZE)
    except ConversionError as exc:  # LiteRT's int8 *input* scale is set by the sensor: QAT may not win it back
        assert "cannot hold the accuracy budget" in str(exc)
    ladder = json.loads((tmp_path / "run" / "quant_ladder" / "ladder.json").read_text())
    ptq, qat = ladder["rows"][0], next(row for row in ladder["rows"] if row["rung"] == 4)
    assert {"ort", "litert"} <= set(qat["runtimes"])
    assert qat["runtimes"]["litert"]["drop"] < ptq["runtimes"]["litert"]["drop"]  # 4.4 vs 7.8 points when written
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert 4 in {row["rung"] for row in report["quantization"]["rows"]}


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"data": {"val_fraction": 0.0}}, "val_fraction = 0 makes none"),
        ({"teacher": {"kind": "soft_labels", "path": "labels.npz"}}, "a soft-label teacher is a table"),
        ({"data": {"labeled_fraction": 0.1}}, "qat trains on every label"),
    ],
)
def test_what_a_budget_needs_is_checked_before_training(sections: dict[str, Any], message: str) -> None:
    from edgekd.errors import RecipeError
    from edgekd.preflight import check_recipe
    from edgekd.recipe import parse_recipe

    recipe = parse_recipe({"quantize": {"max_accuracy_drop": 0.01}, **sections})
    with pytest.raises(RecipeError, match=message):
        check_recipe(recipe)
    check_recipe(parse_recipe(sections))  # without a budget the same recipe passes


def test_a_budget_with_tflite_int8_on_table_data_is_refused_once_the_data_is_known() -> None:
    from edgekd.errors import RecipeError
    from edgekd.preflight import check_with_data
    from edgekd.recipe import parse_recipe

    table = {"input_shape": [12], "num_classes": 3, "sizes": {"train": 100}}
    with pytest.raises(RecipeError, match="int8 rows on image samples"):
        check_with_data(parse_recipe({"quantize": {"max_accuracy_drop": 0.01}}), table, only={"quantize"})
    check_with_data(parse_recipe({"quantize": {"max_accuracy_drop": 0.01}, "tflite": {"precisions": ["fp32"]},
                                  "handoff": {"enabled": False}}), table, only={"quantize"})  # fmt: skip
