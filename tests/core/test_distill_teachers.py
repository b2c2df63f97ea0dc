"""Any teacher: module + state dict, TorchScript, torch.export, ONNX (run in ONNX Runtime), soft-label files."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from edgekd.artifacts import load_artifact
from edgekd.config.distill import ModelSpec, TeacherConfig
from edgekd.distill.api import distill, prepare_teacher
from edgekd.distill.models import load_torch_model
from edgekd.distill.train import accuracy
from edgekd.errors import DataError, ModelError
from tests.support.distill_fixtures import TINY_STUDENT, digits, quick_distill, quick_teacher

FACTORY = ModelSpec(arch="custom", factory="tests.support.distill_fixtures:make_mlp")


@pytest.fixture(scope="module")
def data():
    return digits()


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """A builtin teacher and its torch module, the source every other teacher format is made from."""
    artifact = quick_teacher(tmp_path_factory.mktemp("source"), data)
    return artifact, load_torch_model(artifact)


def _external(kind: str, path: Path, data, out: Path, **extra):
    """Import a teacher made from edgekd's own (standardised-input) quick teacher: declared as taking the
    student's inputs, and not held to the teacher check (the quick teacher is deliberately small)."""
    defaults = {"check": False} if kind == "soft_labels" else {"check": False, "preprocessing": "student"}
    config = TeacherConfig(kind=kind, path=path, **{**defaults, **extra})
    return prepare_teacher(config, data, seed=0, out_dir=out, base_dir=path.parent)


def _distils(artifact, data, out: Path) -> dict:
    outcome = distill(artifact, TINY_STUDENT, quick_distill(epochs=1, baseline=False), data, seed=0, out_dir=out)
    assert outcome.artifacts[0].name == "student_torch"
    return outcome.metrics


def test_torchscript_teacher(trained, data, tmp_path) -> None:
    artifact, module = trained
    path = tmp_path / "teacher.ts"
    torch.jit.save(torch.jit.script(module), str(path))
    teacher = _external("torchscript", path, data, tmp_path / "out")
    assert (teacher.name, teacher.format) == ("teacher_torchscript", "torchscript")
    metrics = _distils(teacher, data, tmp_path / "d")
    assert metrics["teacher_accuracy"] == pytest.approx(artifact.config["test_accuracy"])


def test_torch_export_teacher(trained, data, tmp_path) -> None:
    artifact, module = trained
    path = tmp_path / "teacher.pt2"
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(module, (torch.from_numpy(data.x_train[:4]),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    teacher = _external("torchscript", path, data, tmp_path / "out")
    assert teacher.format == "torch_export"
    assert _distils(teacher, data, tmp_path / "d")["teacher_accuracy"] == pytest.approx(
        artifact.config["test_accuracy"]
    )


def test_onnx_teacher_runs_in_onnxruntime(trained, data, tmp_path) -> None:
    artifact, module = trained
    path = tmp_path / "teacher.onnx"
    torch.onnx.export(module, (torch.from_numpy(data.x_train[:4]),), str(path), input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)  # fmt: skip
    teacher = _external("onnx", path, data, tmp_path / "out")
    assert (teacher.name, teacher.format) == ("teacher_onnx", "onnx")
    assert _distils(teacher, data, tmp_path / "d")["teacher_accuracy"] == pytest.approx(
        artifact.config["test_accuracy"], abs=0.003
    )


@pytest.mark.parametrize("values", ["logits", "probabilities"])
def test_soft_label_teacher(trained, data, tmp_path, values) -> None:
    artifact, module = trained
    x = np.concatenate([data.x_train, data.x_test])
    ids = np.concatenate([data.ids_train, data.ids_test])
    with torch.no_grad():
        logits = module(torch.from_numpy(x)).numpy()
    scores = logits if values == "logits" else torch.softmax(torch.from_numpy(logits), 1).numpy()
    path = tmp_path / "soft.npz"
    np.savez(path, ids=ids, **{values: scores})
    teacher = _external("soft_labels", path, data, tmp_path / "out")
    assert (teacher.name, teacher.format) == ("teacher_soft_labels", "npz")
    assert _distils(teacher, data, tmp_path / "d")["teacher_accuracy"] == pytest.approx(
        artifact.config["test_accuracy"]
    )


def test_soft_labels_refuse_consistent_augmentation(trained, data, tmp_path) -> None:
    _, module = trained
    with torch.no_grad():
        logits = module(torch.from_numpy(data.x_train)).numpy()
    np.savez(tmp_path / "soft.npz", ids=data.ids_train, logits=logits)
    teacher = _external("soft_labels", tmp_path / "soft.npz", data, tmp_path / "out")
    config = quick_distill(epochs=1, baseline=False, train={"augment": True})
    with pytest.raises(DataError, match="consistent teaching needs a teacher that can score augmented views"):
        distill(teacher, TINY_STUDENT, config, data, seed=0, out_dir=tmp_path / "d")
    relaxed = quick_distill(epochs=1, baseline=False, consistent_teaching=False, train={"augment": True})
    outcome = distill(teacher, TINY_STUDENT, relaxed, data, seed=0, out_dir=tmp_path / "d2")
    assert outcome.metrics["teacher_accuracy"] is None  # the file does not cover the test split


def test_soft_label_file_missing_samples(trained, data, tmp_path) -> None:
    _, module = trained
    with torch.no_grad():
        logits = module(torch.from_numpy(data.x_train)).numpy()
    np.savez(tmp_path / "soft.npz", ids=data.ids_train[:-3], logits=logits[:-3])
    with pytest.raises(DataError, match="no entry for 3 training sample"):
        _external("soft_labels", tmp_path / "soft.npz", data, tmp_path / "out")


def test_module_teacher_loads_weights_only(data, tmp_path) -> None:
    from tests.support.distill_fixtures import make_mlp

    torch.manual_seed(0)
    module = make_mlp(data.input_shape, data.num_classes)
    torch.save(module.state_dict(), tmp_path / "weights.pt")
    teacher = _external("module", tmp_path / "weights.pt", data, tmp_path / "out", model=FACTORY)
    assert (teacher.name, teacher.format) == ("teacher_torch", "torch")
    rebuilt = load_torch_model(load_artifact(teacher.path))
    assert accuracy(rebuilt, data.x_test, data.y_test) == pytest.approx(
        accuracy(module.eval(), data.x_test, data.y_test)
    )


class _Payload:
    """Stands for arbitrary code a malicious pickle would run."""

    def __reduce__(self):
        return (print, ("pwned",))


def test_weights_file_with_arbitrary_pickled_objects_is_refused(data, tmp_path, capsys) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"weight": _Payload()}, path, pickle_module=pickle)
    with pytest.raises(ModelError, match="holds more than tensors and was refused"):
        _external("module", path, data, tmp_path / "out", model=FACTORY)
    assert "pwned" not in capsys.readouterr().out


def test_class_count_mismatch_is_named(trained, data, tmp_path) -> None:
    np.savez(tmp_path / "five.npz", ids=data.ids_train, logits=np.zeros((len(data.ids_train), 5), np.float32))
    with pytest.raises(DataError, match="class count mismatch: the teacher predicts 5 classes, the data has 10"):
        _external("soft_labels", tmp_path / "five.npz", data, tmp_path / "out")


def test_teacher_file_that_is_not_a_model(data, tmp_path) -> None:
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot be opened by ONNX Runtime"):
        _external("onnx", tmp_path / "junk.onnx", data, tmp_path / "out")
    with pytest.raises(ModelError, match="does not exist"):
        _external("onnx", tmp_path / "missing.onnx", data, tmp_path / "out")


def test_onnx_teacher_with_a_fixed_batch_of_one(trained, data, tmp_path) -> None:
    _, module = trained
    path = tmp_path / "fixed.onnx"
    torch.onnx.export(module, (torch.from_numpy(data.x_train[:1]),), str(path), input_names=["x"], dynamo=False)
    teacher = _external("onnx", path, data, tmp_path / "out")
    from edgekd.distill.teachers import load_teacher

    logits = load_teacher(teacher).logits(data.x_test[:5], data.ids_test[:5])
    with torch.no_grad():
        expected = module(torch.from_numpy(data.x_test[:5])).numpy()
    assert np.allclose(logits, expected, atol=1e-4)


def test_users_own_student_module(trained, data, tmp_path) -> None:
    from edgekd.config.distill import StudentConfig

    artifact, _ = trained
    outcome = distill(artifact, StudentConfig(model=FACTORY), quick_distill(epochs=2), data, seed=0, out_dir=tmp_path)
    student = load_torch_model(load_artifact(outcome.artifacts[0].path))
    assert accuracy(student, data.x_test, data.y_test) == pytest.approx(outcome.metrics["student_accuracy"])
    assert outcome.metrics["student_accuracy"] > 0.5


def test_teacher_behind_an_api_workflow(trained, tmp_path) -> None:
    """`edgekd distill --transfer-set` → the user scores the samples elsewhere → kind = "soft_labels"."""
    from edgekd.commands.distill import distill_cmd

    _, module = trained
    recipe = tmp_path / "r.toml"
    recipe.write_text('[student]\nmodel = { arch = "cnn", width = 4, depth = 2 }\n[distill]\ntrain = { epochs = 1 }\n')
    distill_cmd(recipe, out=tmp_path / "run", transfer_set=tmp_path / "to_score.npz")
    with np.load(tmp_path / "to_score.npz") as sent:
        ids, x, split = sent["ids"], sent["x"], sent["split"]
        assert len(ids) == 1797 and set(split.tolist()) == {"train", "val", "test"}
        assert (
            float(sent["x_source"].min()) >= -1e-6 and float(sent["x_source"].max()) <= 1.0 + 1e-6
        )  # digits before normalising
    with torch.no_grad():
        probabilities = torch.softmax(module(torch.from_numpy(x)), 1).numpy()  # "the API"
    np.savez(tmp_path / "scored.npz", ids=ids, probabilities=probabilities)
    recipe.write_text(
        recipe.read_text() + '[teacher]\nkind = "soft_labels"\npath = "scored.npz"\ncheck = false\n'
    )  # the quick teacher is small
    distill_cmd(recipe, out=tmp_path / "run2", json_output=False)
    student = load_artifact(tmp_path / "run2" / "distill" / "student.pt")
    assert student.name == "student_torch" and (tmp_path / "run2" / "teacher" / "teacher_soft_labels.npz").exists()


def test_fitnets_needs_a_hookable_teacher(trained, data, tmp_path) -> None:
    from edgekd.config.distill import LossConfig

    _, module = trained
    torch.jit.save(torch.jit.script(module), str(tmp_path / "t.ts"))
    teacher = _external("torchscript", tmp_path / "t.ts", data, tmp_path / "out")
    losses = [LossConfig(kind="fitnets", hint_layers=["features.2=features.2"])]
    with pytest.raises(ModelError, match="FitNets hints need a teacher whose layers can be hooked"):
        distill(teacher, TINY_STUDENT, quick_distill(epochs=1, losses=losses), data, seed=0, out_dir=tmp_path / "d")


def test_fitnets_unknown_layer_lists_the_layers(trained, data, tmp_path) -> None:
    from edgekd.config.distill import LossConfig

    artifact, _ = trained
    losses = [LossConfig(kind="fitnets", hint_layers=["features.2=backbone.9"])]
    with pytest.raises(ModelError, match="the teacher has no layer 'backbone.9'") as info:
        distill(artifact, TINY_STUDENT, quick_distill(epochs=1, losses=losses), data, seed=0, out_dir=tmp_path)
    assert "features.0" in info.value.hint


def test_teacher_classes_are_matched_by_name_not_position(trained, data, tmp_path) -> None:
    artifact, module = trained
    x = np.concatenate([data.x_train, data.x_test])
    ids = np.concatenate([data.ids_train, data.ids_test])
    with torch.no_grad():
        logits = module(torch.from_numpy(x)).numpy()
    reversed_names = np.array(data.label_names[::-1])
    np.savez(tmp_path / "rev.npz", ids=ids, logits=logits[:, ::-1], label_names=reversed_names)  # columns "9".."0"
    teacher = _external("soft_labels", tmp_path / "rev.npz", data, tmp_path / "out")
    assert _distils(teacher, data, tmp_path / "d")["teacher_accuracy"] == pytest.approx(
        artifact.config["test_accuracy"]
    )
