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


@pytest.mark.parametrize("loss", [LossConfig(kind="dist"), LossConfig(kind="hinton", standardize=True)], ids=["dist", "hinton_ls"])
def test_new_logit_losses_train_a_student(teacher, data, tmp_path, loss) -> None:
    outcome = distill(teacher, TINY_STUDENT, quick_distill(epochs=3, baseline=False, losses=[loss]), data, seed=0, out_dir=tmp_path)
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
    assert fitnets_cross_family(_artifact("cnn"), mlp_student, DistillConfig(), (1, 8, 8)) is None  # no hints: nothing to say
