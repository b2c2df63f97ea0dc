"""A teacher gets its own inputs: teachers trained OUTSIDE edgekd on raw [0, 1] digits (plain torch), imported
as a module (factory + state dict) and as ONNX (torch.onnx), are measured at their own accuracy, or the run
stops before distillation naming the preprocessing mismatch. Never a weakened teacher silently."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgekd.artifacts import load_artifact
from edgekd.config.distill import ModelSpec, TeacherConfig
from edgekd.distill.api import distill, prepare_teacher, teacher_summary
from edgekd.distill.cache import cache_key
from edgekd.errors import ModelError
from tests.support.distill_fixtures import TINY_STUDENT, digits, quick_distill, raw_digits, train_outside_edgekd

PLAIN = ModelSpec(arch="custom", factory="tests.support.distill_fixtures:make_plain_mlp")


@pytest.fixture(scope="module")
def data():
    return digits()


@pytest.fixture(scope="module")
def outside(data, tmp_path_factory):
    """A teacher trained with plain torch on the raw [0, 1] training samples, saved as a state dict and as ONNX,
    and its accuracy on the test samples measured outside edgekd."""
    x_raw, y = raw_digits()
    model = train_outside_edgekd(x_raw[data.ids_train], y[data.ids_train])
    folder = tmp_path_factory.mktemp("outside")
    torch.save(model.state_dict(), folder / "weights.pt")
    torch.onnx.export(model, (torch.from_numpy(x_raw[:4]),), str(folder / "teacher.onnx"), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, dynamo=False)  # fmt: skip
    with torch.no_grad():
        accuracy = float(np.mean(model(torch.from_numpy(x_raw[data.ids_test])).argmax(1).numpy() == y[data.ids_test]))
    return folder, accuracy


def _config(kind: str, folder: Path, **extra) -> TeacherConfig:
    path = folder / ("weights.pt" if kind == "module" else "teacher.onnx")
    return TeacherConfig(kind=kind, path=path, **({"model": PLAIN} if kind == "module" else {}), **extra)


@pytest.mark.parametrize("kind", ["module", "onnx"])
def test_imported_teacher_gets_its_raw_inputs_by_default(kind, outside, data, tmp_path) -> None:
    folder, accuracy_outside = outside
    assert accuracy_outside > 0.95
    teacher = prepare_teacher(_config(kind, folder), data, seed=0, out_dir=tmp_path / "t", base_dir=folder)
    recorded = load_artifact(teacher.path).config
    assert recorded["preprocessing"]["scale"] == data.preprocessing["scale"] and "mean" not in recorded["preprocessing"]
    assert recorded["preprocessing_source"].startswith("default for an imported teacher")
    assert recorded["check"]["passed"] is True
    outcome = distill(
        teacher, TINY_STUDENT, quick_distill(epochs=1, baseline=False), data, seed=0, out_dir=tmp_path / "d"
    )
    assert abs(outcome.metrics["teacher_accuracy"] - accuracy_outside) <= 0.005
    assert outcome.metrics["teacher_preprocessing"] == recorded["preprocessing"]
    summary = teacher_summary(teacher)
    assert summary["preprocessing"] == recorded["preprocessing"] and "params" in summary
    assert summary["params"] == (4810 if kind == "module" else None)  # unknown for ONNX: None, not missing


@pytest.mark.parametrize("kind", ["module", "onnx"])
def test_wrong_declared_preprocessing_stops_naming_the_fix(kind, outside, data, tmp_path) -> None:
    folder, _ = outside
    with pytest.raises(ModelError) as info:
        prepare_teacher(
            _config(kind, folder, preprocessing="student"), data, seed=0, out_dir=tmp_path / "t", base_dir=folder
        )
    message = info.value.message
    assert message.startswith("this teacher scores 9") and "on the raw inputs" in message
    assert "on the student's inputs (standardised)" in message and message.endswith(
        'set [teacher] preprocessing = "raw"'
    )
    assert "check = false" in info.value.hint


def test_check_false_goes_on_and_records_why(outside, data, tmp_path) -> None:
    folder, _ = outside
    teacher = prepare_teacher(_config("onnx", folder, preprocessing="student", check=False), data, seed=0, out_dir=tmp_path / "t",
                              base_dir=folder)  # fmt: skip
    check = load_artifact(teacher.path).config["check"]
    assert check["passed"] is False and 'preprocessing = "raw"' in check["reason"]
    assert any("going on: [teacher] check = false" in w for w in teacher.config["warnings"])


def test_declared_preprocessing_table(outside, data, tmp_path) -> None:
    """{ scale, mean, std } as the teacher saw it: mean 0 / std 1 on the data's scale is the raw view."""
    folder, accuracy_outside = outside
    declared = {"mean": [0.0], "std": [1.0]}
    teacher = prepare_teacher(
        _config("onnx", folder, preprocessing=declared), data, seed=0, out_dir=tmp_path / "t", base_dir=folder
    )
    assert teacher.config["preprocessing_source"] == "declared in [teacher] preprocessing"
    outcome = distill(
        teacher, TINY_STUDENT, quick_distill(epochs=1, baseline=False), data, seed=0, out_dir=tmp_path / "d"
    )
    assert abs(outcome.metrics["teacher_accuracy"] - accuracy_outside) <= 0.005


def test_onnx_written_by_edgekd_declares_its_preprocessing(outside, data, tmp_path) -> None:
    """An ONNX file with edgekd's metadata_props (producer edgekd, preprocessing JSON) is read as recorded."""
    import onnx

    folder, _ = outside
    proto = onnx.load(str(folder / "teacher.onnx"))
    recorded = {"scale": data.preprocessing["scale"], "mean": 0.0, "std": 1.0, "layout": "NCHW"}
    proto.metadata_props.add(key="preprocessing", value=json.dumps(recorded))
    proto.producer_name = "edgekd"
    onnx.save(proto, str(tmp_path / "stamped.onnx"))
    teacher = prepare_teacher(TeacherConfig(kind="onnx", path=tmp_path / "stamped.onnx"), data, seed=0, out_dir=tmp_path / "t",
                              base_dir=tmp_path)  # fmt: skip
    assert teacher.config["preprocessing_source"] == "recorded in the ONNX file's edgekd metadata"
    assert teacher.config["check"]["passed"] is True


def test_builtin_teacher_trains_on_its_declared_raw_inputs(data, tmp_path) -> None:
    config = TeacherConfig(model=ModelSpec(arch="mlp", width=32, depth=1), preprocessing="raw",
                           train={"epochs": 3, "lr": 1e-2})  # fmt: skip
    teacher = prepare_teacher(config, data, seed=0, out_dir=tmp_path / "t", base_dir=tmp_path)
    assert "mean" not in teacher.config["preprocessing"] and teacher.config["check"]["passed"] is True
    x_raw, y = raw_digits()
    from edgekd.distill.models import load_torch_model

    with torch.no_grad():
        outside = float(
            np.mean(
                load_torch_model(teacher)(torch.from_numpy(x_raw[data.ids_test])).argmax(1).numpy() == y[data.ids_test]
            )
        )
    assert teacher.config["test_accuracy"] == pytest.approx(outside)  # it was trained and tested on the raw view


def test_teacher_output_cache_key_includes_the_teachers_preprocessing() -> None:
    same = cache_key("t", "d", "plain", None)
    assert same == cache_key("t", "d", "plain", None, inputs="student")
    assert same != cache_key("t", "d", "plain", None, inputs=json.dumps({"scale": 0.0625}))


def test_soft_label_teacher_refuses_a_preprocessing_key(tmp_path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="preprocessing does not apply to a soft_labels teacher"):
        TeacherConfig(kind="soft_labels", path=tmp_path / "s.npz", preprocessing="raw")


def test_a_few_points_lost_to_the_wrong_preprocessing_are_caught(data, tmp_path) -> None:
    """A teacher that loses only ~4 pt on standardised inputs (within noise of the baseline on 180 validation samples)
    is still caught: both preprocessings are compared on the validation + training samples."""
    x_raw, y = raw_digits()
    model = train_outside_edgekd(x_raw[data.ids_train], y[data.ids_train], epochs=15)
    torch.onnx.export(model, (torch.from_numpy(x_raw[:4]),), str(tmp_path / "t.onnx"), input_names=["x"],
                      dynamic_axes={"x": {0: "batch"}}, dynamo=False)  # fmt: skip
    config = TeacherConfig(kind="onnx", path=tmp_path / "t.onnx", preprocessing="student")
    with pytest.raises(ModelError) as info:
        prepare_teacher(config, data, seed=0, out_dir=tmp_path / "t", base_dir=tmp_path)
    assert "1437 training and validation samples" in info.value.message
    assert info.value.message.endswith('set [teacher] preprocessing = "raw"')
