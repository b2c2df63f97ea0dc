"""DIST and logit standardisation train end to end; FitNets across model families is recorded as a warning."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from edgekd.config.distill import DistillConfig, LossConfig, ModelSpec, StudentConfig
from edgekd.distill.api import distill, fitnets_cross_family
from tests.support.distill_fixtures import TINY_STUDENT, digits, quick_distill, quick_teacher


@pytest.fixture(scope="module")
def data():
    return digits()


@pytest.fixture(scope="module")
def teacher(data, tmp_path_factory):
    return quick_teacher(tmp_path_factory.mktemp("teacher"), data)


@pytest.mark.parametrize(
    "loss", [LossConfig(kind="dist"), LossConfig(kind="hinton", standardize=True)], ids=["dist", "hinton_ls"]
)
def test_new_logit_losses_train_a_student(teacher, data, tmp_path, loss) -> None:
    outcome = distill(
        teacher, TINY_STUDENT, quick_distill(epochs=3, baseline=False, losses=[loss]), data, seed=0, out_dir=tmp_path
    )
    assert outcome.metrics["student_accuracy"] > 0.25


def _artifact(arch: str) -> SimpleNamespace:
    return SimpleNamespace(config={"model": {"arch": arch, "width": 8, "depth": 2}})


def test_fitnets_between_families_is_a_recorded_warning() -> None:
    hints = DistillConfig(losses=[LossConfig(kind="fitnets", hint_layers=["a=b"])])
    mlp_student = StudentConfig(model=ModelSpec(arch="mlp"))
    found = fitnets_cross_family(_artifact("cnn"), mlp_student, hints, (1, 8, 8))
    assert found is not None and found["code"] == "fitnets_cross_family"
    assert found["teacher_family"] == "cnn" and found["student_family"] == "mlp"
    assert found["message"].startswith("fitnets_cross_family:") and "\n" not in found["message"]
    auto_student = StudentConfig(model=ModelSpec(arch="auto"))  # resolves to cnn on images: same family
    assert fitnets_cross_family(_artifact("cnn"), auto_student, hints, (1, 8, 8)) is None
    assert (
        fitnets_cross_family(_artifact("cnn"), mlp_student, DistillConfig(), (1, 8, 8)) is None
    )  # no hints: nothing to say


def test_agreement_with_the_teacher_is_recorded_per_epoch_and_in_the_summary(teacher, data, tmp_path) -> None:
    from edgekd.fileio import read_json

    outcome = distill(teacher, TINY_STUDENT, quick_distill(epochs=2), data, seed=0, out_dir=tmp_path)
    history = read_json(tmp_path / "history.json")
    for run in ("student", "scratch"):
        for row in history[run]:
            assert 0.0 <= row["val_teacher_agreement"] <= 1.0 and row["val_teacher_kl"] >= 0.0
            assert row["val_accuracy"] is not None
    metrics = outcome.metrics
    kept = next(r for r in history["student"] if r["epoch"] == metrics["student_best_epoch"])
    assert metrics["student_teacher_agreement"] == kept["val_teacher_agreement"]
    assert metrics["student_teacher_kl"] == kept["val_teacher_kl"] and metrics["agreement_split"] == "val"
    assert metrics["scratch_teacher_agreement"] is not None


def test_validate_matches_a_numpy_reference() -> None:
    import numpy as np
    import torch

    from edgekd.distill.train import validate

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 4)).astype(np.float32)
    y = rng.integers(0, 3, 7)
    teacher = rng.standard_normal((7, 3)).astype(np.float32)
    scores = validate(model, x, y, teacher, batch_size=3)
    with torch.no_grad():
        s = model(torch.from_numpy(x)).numpy().astype(np.float64)
    log_ps = s - np.log(np.exp(s).sum(1, keepdims=True))
    log_pt = teacher - np.log(np.exp(teacher).sum(1, keepdims=True))
    assert scores["val_accuracy"] == pytest.approx(np.mean(s.argmax(1) == y))
    assert scores["val_loss"] == pytest.approx(-np.mean(log_ps[np.arange(7), y]), rel=1e-5)
    assert scores["val_teacher_agreement"] == pytest.approx(np.mean(s.argmax(1) == teacher.argmax(1)))
    assert scores["val_teacher_kl"] == pytest.approx(np.mean((np.exp(log_pt) * (log_pt - log_ps)).sum(1)), rel=1e-5)
