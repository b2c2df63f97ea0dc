"""prepare_teacher + distill on bundled digits: artifacts, metrics, determinism, cache, label scarcity, subsets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgekd.artifacts import load_artifact
from edgekd.config.distill import LossConfig
from edgekd.distill.api import distill
from edgekd.distill.models import load_torch_model
from edgekd.distill.train import accuracy
from edgekd.fileio import read_json
from tests.support.distill_fixtures import TINY_STUDENT, digits, quick_distill, quick_teacher

REQUIRED_METRICS = {"teacher_accuracy", "student_accuracy", "scratch_accuracy", "teacher_params", "student_params",
                    "scratch_params", "student_flops", "teacher_flops", "kd_minus_scratch", "within_noise", "noise_test", "history"}  # fmt: skip


@pytest.fixture(scope="module")
def data():
    return digits()


@pytest.fixture(scope="module")
def teacher(data, tmp_path_factory):
    return quick_teacher(tmp_path_factory.mktemp("teacher"), data)


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)


def test_builtin_teacher_is_a_reloadable_torch_artifact(teacher, data) -> None:
    assert teacher.name == "teacher_torch" and teacher.format == "torch"
    reloaded = load_artifact(teacher.path)
    model = load_torch_model(reloaded)
    assert accuracy(model, data.x_test, data.y_test) == pytest.approx(teacher.config["test_accuracy"])
    assert teacher.config["test_accuracy"] > 0.9
    assert teacher.config["label_names"] == data.label_names
    assert len(teacher.config["history"]) == 6


def test_distill_outcome_has_artifacts_and_honest_metrics(teacher, data, tmp_path) -> None:
    outcome = distill(teacher, TINY_STUDENT, quick_distill(epochs=3), data, seed=0, out_dir=tmp_path)
    assert [a.name for a in outcome.artifacts] == ["student_torch", "scratch_torch"]
    metrics = outcome.metrics
    assert REQUIRED_METRICS <= set(metrics)
    for key in ("teacher_accuracy", "student_accuracy", "scratch_accuracy"):
        assert 0.0 <= metrics[key] <= 1.0
    student = load_torch_model(load_artifact(outcome.artifacts[0].path))
    assert accuracy(student, data.x_test, data.y_test) == pytest.approx(metrics["student_accuracy"])
    assert metrics["kd_minus_scratch"] == pytest.approx(metrics["student_accuracy"] - metrics["scratch_accuracy"])
    assert metrics["student_params"] < metrics["teacher_params"] and metrics["student_flops"] < metrics["teacher_flops"]
    assert isinstance(metrics["within_noise"], bool) and "McNemar" in metrics["noise_test"]["method"]
    history = read_json(tmp_path / "history.json")
    assert len(history["student"]) == 3 and len(history["scratch"]) == 3
    assert outcome.artifacts[0].config["label_names"] == data.label_names
    assert not (tmp_path / "checkpoints").exists()


def test_same_seed_gives_identical_students(teacher, data, tmp_path) -> None:
    config = quick_distill(epochs=2, baseline=False, train={"augment": True})
    first = distill(teacher, TINY_STUDENT, config, data, seed=3, out_dir=tmp_path / "a")
    second = distill(teacher, TINY_STUDENT, config, data, seed=3, out_dir=tmp_path / "b")
    a, b = _state(first.artifacts[0].path), _state(second.artifacts[0].path)
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = distill(teacher, TINY_STUDENT, config, data, seed=4, out_dir=tmp_path / "c")
    c = _state(other.artifacts[0].path)
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("augment", [False, True])
def test_teacher_cache_is_reused_and_changes_nothing(teacher, data, tmp_path, augment) -> None:
    cached = quick_distill(epochs=2, baseline=False, train={"augment": augment})
    live = quick_distill(epochs=2, baseline=False, teacher_cache=False, train={"augment": augment})
    cache_dir = tmp_path / "cache"
    first = distill(teacher, TINY_STUDENT, cached, data, seed=0, out_dir=tmp_path / "a", cache_dir=cache_dir)
    second = distill(teacher, TINY_STUDENT, cached, data, seed=0, out_dir=tmp_path / "b", cache_dir=cache_dir)
    uncached = distill(teacher, TINY_STUDENT, live, data, seed=0, out_dir=tmp_path / "c")
    views = 2 if augment else 1  # augmented: one entry per epoch (augmentation seed)
    assert first.metrics["teacher_cache"] == {"hits": 0, "misses": views, "topk": None}
    assert second.metrics["teacher_cache"]["hits"] == views and second.metrics["teacher_cache"]["misses"] == 0
    assert len(list(cache_dir.iterdir())) == views
    a, c = _state(second.artifacts[0].path), _state(uncached.artifacts[0].path)
    assert all(torch.allclose(a[k].float(), c[k].float(), atol=1e-5) for k in a)


def test_label_scarce_mode_hides_labels_from_both_students(teacher, data, tmp_path) -> None:
    outcome = distill(
        teacher, TINY_STUDENT, quick_distill(epochs=2), data, seed=0, out_dir=tmp_path, labeled_fraction=0.1
    )
    metrics = outcome.metrics
    assert metrics["labelled_samples"] == pytest.approx(0.1 * len(data.y_train), abs=10)
    assert len(metrics["history"]["scratch"]) == len(metrics["history"]["student"]) == 2
    assert outcome.artifacts[1].config["labeled_fraction"] == 0.1


@pytest.mark.parametrize("kind", ["dkd", "pseudo_labels"])
def test_other_logit_losses_train(teacher, data, tmp_path, kind) -> None:
    outcome = distill(
        teacher,
        TINY_STUDENT,
        quick_distill(epochs=3, baseline=False, losses=[LossConfig(kind=kind)]),
        data,
        seed=0,
        out_dir=tmp_path,
    )
    assert outcome.metrics["student_accuracy"] > 0.25 and outcome.metrics["scratch_accuracy"] is None


def test_fitnets_hints_train_a_learned_adapter(teacher, data, tmp_path) -> None:
    losses = [LossConfig(kind="hinton"), LossConfig(kind="fitnets", weight=0.5, hint_layers=["features.5=features.5"])]
    outcome = distill(
        teacher, TINY_STUDENT, quick_distill(epochs=3, baseline=False, losses=losses), data, seed=0, out_dir=tmp_path
    )
    assert outcome.metrics["student_accuracy"] > 0.25
    assert "teacher_cache" not in outcome.metrics  # hints need the live teacher's features


@pytest.mark.parametrize("other", [False, True])
def test_ten_class_teacher_into_three_class_student(teacher, tmp_path, other) -> None:
    subset = digits(classes=["0", "3", "7"], other_class=other)
    expected = ["0", "3", "7"] + (["other"] if other else [])
    assert subset.label_names == expected
    outcome = distill(teacher, TINY_STUDENT, quick_distill(epochs=10), subset, seed=0, out_dir=tmp_path)
    student = outcome.artifacts[0]
    assert student.config["num_classes"] == len(expected) and student.config["label_names"] == expected
    metrics = outcome.metrics
    assert metrics["teacher_accuracy"] > 0.9  # renormalised over the kept classes (+ other)
    assert metrics["student_accuracy"] > 0.7
    predictions = load_torch_model(load_artifact(student.path))(torch.from_numpy(subset.x_test)).argmax(1).numpy()
    assert set(np.unique(predictions)) <= set(range(len(expected)))


def test_topk_cache_trains_a_student(teacher, data, tmp_path) -> None:
    outcome = distill(
        teacher, TINY_STUDENT, quick_distill(epochs=3, baseline=False, cache_topk=3), data, seed=0, out_dir=tmp_path
    )
    assert outcome.metrics["teacher_cache"]["topk"] == 3 and outcome.metrics["student_accuracy"] > 0.25


def test_empty_or_mislabelled_training_data_is_refused(teacher, data, tmp_path) -> None:
    from dataclasses import replace

    from edgekd.errors import DataError

    empty = replace(data, x_train=data.x_train[:0], y_train=data.y_train[:0], ids_train=data.ids_train[:0])
    with pytest.raises(DataError, match="training split is empty"):
        distill(teacher, TINY_STUDENT, quick_distill(), empty, seed=0, out_dir=tmp_path)
    wrong = replace(data, y_train=np.where(data.y_train == 9, 12, data.y_train))
    with pytest.raises(DataError, match=r"labels must lie in 0..9, found 0..12"):
        distill(teacher, TINY_STUDENT, quick_distill(), wrong, seed=0, out_dir=tmp_path)


def test_tabular_csv_end_to_end(tmp_path) -> None:
    """A CSV table (bundled iris), MLP teacher and student, with feature-noise augmentation."""
    from sklearn.datasets import load_iris

    from edgekd.config.data import DataConfig
    from edgekd.config.distill import ModelSpec, StudentConfig, TeacherConfig, TrainConfig
    from edgekd.data.datasets import load_dataset
    from edgekd.distill.api import prepare_teacher

    iris = load_iris()
    rows = [",".join(iris.feature_names) + ",species"]
    rows += [
        ",".join(f"{v:.1f}" for v in x) + f",{iris.target_names[y]}"
        for x, y in zip(iris.data, iris.target, strict=True)
    ]
    (tmp_path / "iris.csv").write_text("\n".join(rows) + "\n")
    data = load_dataset(
        DataConfig(source="csv", path="iris.csv", label_column="species", test_fraction=0.3), 0, base=tmp_path
    )
    assert data.input_shape == (4,) and data.label_names == ["setosa", "versicolor", "virginica"]
    teacher_config = TeacherConfig(
        model=ModelSpec(arch="mlp", width=32, depth=2), train=TrainConfig(epochs=40, batch_size=16, lr=1e-2)
    )
    teacher = prepare_teacher(teacher_config, data, seed=0, out_dir=tmp_path / "t", base_dir=tmp_path)
    student = StudentConfig(model=ModelSpec(arch="mlp", width=4, depth=1))
    outcome = distill(
        teacher,
        student,
        quick_distill(epochs=40, train={"batch_size": 16, "augment": True}),
        data,
        seed=0,
        out_dir=tmp_path / "d",
    )
    metrics = outcome.metrics
    assert metrics["teacher_accuracy"] > 0.85 and metrics["student_accuracy"] > 0.6
    assert outcome.artifacts[0].inputs[0].layout == "NC" and metrics["student_flops"] == 2 * (4 * 4 + 4 * 3)
