"""Consistent views with mixup: per-sample seeded views, the teacher cache keyed by them, the patient preset."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from edgekd.config.distill import AugmentConfig, DistillAugmentConfig, DistillConfig, TeacherConfig, TrainConfig
from edgekd.distill.api import distill
from edgekd.distill.augment import augment, mixup_plan, view_name, views
from edgekd.distill.cache import TeacherOutputCache
from tests.support.distill_fixtures import TINY_STUDENT, digits, quick_teacher

MIXUP = DistillAugmentConfig(consistent=True, mixup=1.0)


@pytest.fixture(scope="module")
def data():
    return digits()


@pytest.fixture(scope="module")
def teacher(data, tmp_path_factory):
    return quick_teacher(tmp_path_factory.mktemp("teacher"), data)


def test_mixup_view_matches_a_reference_and_is_batch_independent() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((12, 1, 8, 8)).astype(np.float32)
    positions = np.array([5, 0, 7, 3])
    got = views(x, positions, seed=2, epoch=1, settings=MIXUP)
    partner, lam = mixup_plan(12, 2, 1, 1.0)
    assert np.all(lam >= 0.5) and np.all(lam <= 1.0)
    shifted = augment(x[positions], positions, 12, 2, 1)
    shifted_partner = augment(x[partner[positions]], partner[positions], 12, 2, 1)
    w = lam[positions][:, None, None, None]
    np.testing.assert_allclose(got, w * shifted + (1 - w) * shifted_partner, rtol=1e-6)
    np.testing.assert_array_equal(
        views(x, positions[2:], seed=2, epoch=1, settings=MIXUP), got[2:]
    )  # same view in any batch
    assert not np.array_equal(views(x, positions, seed=2, epoch=2, settings=MIXUP), got)  # a new view each epoch


def test_view_names_separate_plain_shift_and_mixup_views() -> None:
    names = {view_name(0, 0, AugmentConfig()), view_name(0, 0, MIXUP), view_name(0, 0, AugmentConfig(mixup=0.5)),
             view_name(0, 1, MIXUP), view_name(0, 0, AugmentConfig(shift=False, mixup=1.0))}  # fmt: skip
    assert len(names) == 5 and "plain" not in names


def test_consistent_mixup_caches_one_entry_per_epochs_views_and_never_the_plain_outputs(
    teacher, data, tmp_path
) -> None:
    """The guard: under consistent augmentation the teacher is cached per (sample, augmentation seed); the cached
    outputs equal the live teacher's on the student's mixed views, and no "plain" entry is ever used."""
    from edgekd.distill.objectives import TeacherSignal
    from edgekd.distill.teachers import load_teacher
    from edgekd.distill.train import TrainData

    config = DistillConfig(
        baseline=False, train={"epochs": 2, "lr": 2e-2, "batch_size": 64, "augment": {"consistent": True, "mixup": 1.0}}
    )
    cache_dir = tmp_path / "cache"
    outcome = distill(teacher, TINY_STUDENT, config, data, seed=0, out_dir=tmp_path / "run", cache_dir=cache_dir)
    assert outcome.metrics["teacher_cache"]["misses"] == 2  # one entry per epoch's views
    assert len([p for p in cache_dir.iterdir() if not p.name.startswith(".")]) == 2
    live = load_teacher(teacher, data.preprocessing)
    train = TrainData(data.x_train, data.y_train, np.arange(len(data.x_train)), data.x_val, data.y_val)
    identity = [[c] for c in range(data.num_classes)]
    signal = TeacherSignal(live, identity, train, seed=0, augmentation=config.train.augmentation, consistent=True,
                           cache=TeacherOutputCache(cache_dir), data_sha256="d", hint_paths=[])  # fmt: skip
    assert {signal.view(e) for e in range(3)}.isdisjoint({"plain"}) and len({signal.view(e) for e in range(3)}) == 3
    positions = np.array([4, 1, 9])
    import torch

    x_view = torch.from_numpy(views(data.x_train, positions, 0, 1, config.train.augmentation))
    cached = signal.outputs(positions, x_view, epoch=1).numpy()
    np.testing.assert_allclose(cached, live.logits(x_view.numpy(), positions), rtol=1e-4, atol=1e-4)
    plain = TeacherSignal(
        live, identity, train, seed=0, augmentation=None, consistent=True, cache=None, data_sha256="d", hint_paths=[]
    )
    assert plain.view(1) == "plain"


def test_augment_table_and_patient_preset() -> None:
    assert TrainConfig(augment=True).augmentation == AugmentConfig()
    assert TrainConfig(augment={"shift": False}).augmentation is None  # nothing left to do: off
    patient = TrainConfig(schedule="patient")
    assert (patient.lr, patient.epochs) == (1e-3, 100)
    from edgekd.distill.train import learning_rate

    assert learning_rate(patient, 0, 100) == 1e-3 and learning_rate(patient, 50, 100) == pytest.approx(5e-4)  # a cosine
    assert (
        TrainConfig(schedule="patient", lr=5e-3, epochs=7).lr,
        TrainConfig(schedule="patient", epochs=7).epochs,
    ) == (5e-3, 7)
    assert DistillConfig(train={"augment": {"consistent": False}}).consistent_views is False
    assert DistillConfig(consistent_teaching=False).consistent_views is False
    with pytest.raises(ValidationError, match="contradicts consistent_teaching"):
        DistillConfig(train={"augment": {"consistent": False}}, consistent_teaching=True)
    with pytest.raises(
        ValidationError, match="consistent"
    ):  # the teacher's own training has no teacher to be consistent with
        TeacherConfig(train={"augment": {"consistent": True}})
    assert (
        DistillConfig(train=TrainConfig(epochs=3, augment=True)).train.augment is True
    )  # a plain TrainConfig is accepted
