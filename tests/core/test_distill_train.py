"""The training loop: resume equals an uninterrupted run, early stopping, NaN detection, schedules, augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgekd.config.distill import TrainConfig
from edgekd.distill.augment import augment
from edgekd.distill.models import build_model
from edgekd.distill.objectives import SupervisedObjective
from edgekd.distill.train import TrainData, epoch_order, fit, learning_rate
from edgekd.errors import CacheError, ModelError
from tests.support.distill_fixtures import digits


@pytest.fixture(scope="module")
def train_data() -> TrainData:
    data = digits()
    return TrainData(data.x_train[:400], data.y_train[:400], data.ids_train[:400], data.x_val, data.y_val)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model({"arch": "cnn", "width": 4, "depth": 2}, (1, 8, 8), 10)


class _Interrupt(SupervisedObjective):
    """Supervised loss that raises KeyboardInterrupt at the start of one epoch (a killed process)."""

    def __init__(self, at_epoch: int) -> None:
        self.at_epoch = at_epoch

    def loss(self, model, x, y, positions, epoch):
        if epoch == self.at_epoch:
            raise KeyboardInterrupt
        return super().loss(model, x, y, positions, epoch)


class _NaNAt(SupervisedObjective):
    def __init__(self, epoch: int, step: int) -> None:
        self.epoch, self.step, self.calls = epoch, step, {}

    def loss(self, model, x, y, positions, epoch):
        self.calls[epoch] = self.calls.get(epoch, -1) + 1
        loss, logits = super().loss(model, x, y, positions, epoch)
        if (epoch, self.calls[epoch]) == (self.epoch, self.step):
            loss = loss * float("nan")
        return loss, logits


def test_resume_after_interruption_equals_uninterrupted_run(train_data, tmp_path) -> None:
    config = TrainConfig(epochs=4, batch_size=64, augment=True)
    reference = _model()
    fit(reference, train_data, config, SupervisedObjective(), seed=1, label="ref", checkpoint=tmp_path / "ref.ckpt")
    interrupted = _model()
    with pytest.raises(KeyboardInterrupt):
        fit(
            interrupted,
            train_data,
            config,
            _Interrupt(at_epoch=2),
            seed=1,
            label="run",
            checkpoint=tmp_path / "run.ckpt",
        )
    resumed = _model()
    result = fit(
        resumed,
        train_data,
        config,
        SupervisedObjective(),
        seed=1,
        label="run",
        checkpoint=tmp_path / "run.ckpt",
        resume=True,
    )
    assert result.resumed_from == 2 and len(result.history) == 4
    expected, actual = reference.state_dict(), resumed.state_dict()
    assert all(torch.allclose(expected[k].float(), actual[k].float(), atol=1e-6) for k in expected)


def test_resume_refuses_a_checkpoint_from_other_settings(train_data, tmp_path) -> None:
    fit(
        _model(),
        train_data,
        TrainConfig(epochs=1),
        SupervisedObjective(),
        seed=1,
        label="run",
        checkpoint=tmp_path / "c.ckpt",
    )
    with pytest.raises(CacheError, match="different configuration"):
        fit(_model(), train_data, TrainConfig(epochs=1, lr=1e-2), SupervisedObjective(), seed=1, label="run",
            checkpoint=tmp_path / "c.ckpt", resume=True)  # fmt: skip


def test_checkpoint_with_pickled_objects_is_refused(train_data, tmp_path) -> None:
    torch.save({"schema": object()}, tmp_path / "bad.ckpt")
    with pytest.raises(CacheError, match="cannot be read"):
        fit(
            _model(),
            train_data,
            TrainConfig(epochs=1),
            SupervisedObjective(),
            seed=1,
            label="run",
            checkpoint=tmp_path / "bad.ckpt",
            resume=True,
        )


def test_early_stopping_on_flat_validation(train_data) -> None:
    config = TrainConfig(epochs=10, lr=1e-12, patience=2, schedule="none", min_epochs=1)  # nothing learns
    result = fit(_model(), train_data, config, SupervisedObjective(), seed=0, label="flat")
    assert result.stopped_early and len(result.history) == result.best_epoch + 2 < 10


def test_early_stopping_waits_for_min_epochs_by_default(train_data) -> None:
    """Default min_epochs = half the epochs: neither the kept epoch nor the stop comes before it."""
    config = TrainConfig(epochs=10, lr=1e-12, patience=2, schedule="none")
    result = fit(_model(), train_data, config, SupervisedObjective(), seed=0, label="flat")
    assert config.first_selectable_epoch == 5 and result.best_epoch >= 5 and len(result.history) >= 7


def test_best_validation_weights_are_restored(train_data) -> None:
    model = _model()
    result = fit(model, train_data, TrainConfig(epochs=5), SupervisedObjective(), seed=0, label="best")
    best = max(result.history, key=lambda row: row["val_accuracy"])
    from edgekd.distill.train import accuracy

    assert accuracy(model, train_data.x_val, train_data.y_val) == pytest.approx(best["val_accuracy"])


def test_non_finite_loss_names_the_batch(train_data) -> None:
    with pytest.raises(ModelError, match=r"loss became nan at epoch 2, batch 3 \(sample ids \d+") as info:
        fit(_model(), train_data, TrainConfig(epochs=3), _NaNAt(epoch=1, step=3), seed=0, label="student (KD)")
    assert "training diverged" in info.value.message and info.value.hint


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_optimizers_reduce_the_loss(train_data, optimizer) -> None:
    config = TrainConfig(epochs=4, optimizer=optimizer, lr=3e-3 if optimizer == "adamw" else 5e-2, schedule="step")
    result = fit(_model(), train_data, config, SupervisedObjective(), seed=0, label=optimizer)
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_schedules() -> None:
    cosine, step = TrainConfig(lr=1.0), TrainConfig(lr=1.0, schedule="step")
    assert learning_rate(cosine, 0, 100) == 1.0 and learning_rate(cosine, 50, 100) == pytest.approx(0.5)
    assert learning_rate(cosine, 100, 100) == pytest.approx(0.0, abs=1e-12)
    assert [learning_rate(step, s, 100) for s in (10, 60, 80)] == pytest.approx([1.0, 0.1, 0.01])


def test_epoch_order_shards_and_repeats() -> None:
    pool = np.arange(10)
    rank0 = np.concatenate(epoch_order(pool, 0, 0, 0, 2, 3, None))
    rank1 = np.concatenate(epoch_order(pool, 0, 0, 1, 2, 3, None))
    assert sorted(np.concatenate([rank0, rank1])) == list(range(10))  # disjoint shards covering the pool
    budget = epoch_order(np.arange(4), 0, 0, 0, 1, 3, steps=5)  # a small pool repeated to a fixed step budget
    assert len(budget) == 5 and all(len(b) == 3 for b in budget)


def test_augmentation_is_seeded_per_sample_and_epoch() -> None:
    x = np.random.default_rng(0).standard_normal((6, 1, 8, 8)).astype(np.float32)
    positions = np.array([0, 1, 2, 3, 4, 5])
    a = augment(x, positions, 6, seed=0, epoch=0)
    assert np.array_equal(a, augment(x, positions, 6, seed=0, epoch=0))
    assert not np.array_equal(a, augment(x, positions, 6, seed=0, epoch=1))
    assert np.array_equal(augment(x[2:4], positions[2:4], 6, seed=0, epoch=0), a[2:4])  # batch-independent
    table = np.zeros((3, 5), np.float32)
    assert augment(table, np.arange(3), 3, 0, 0).shape == (3, 5)


def test_augmentation_shifts_match_a_pixel_by_pixel_reference() -> None:
    from edgekd.distill.augment import MAX_SHIFT, augmentation_seed

    x = np.random.default_rng(1).standard_normal((20, 2, 5, 6)).astype(np.float32)
    out = augment(x, np.arange(20), 20, seed=3, epoch=2)
    shifts = np.random.default_rng(augmentation_seed(3, 2)).integers(-MAX_SHIFT, MAX_SHIFT + 1, size=(20, 2))
    for i, (dy, dx) in enumerate(shifts):
        expected = np.full_like(x[i], x[i].min())
        for row in range(5):
            for col in range(6):
                if 0 <= row - dy < 5 and 0 <= col - dx < 6:
                    expected[:, row, col] = x[i, :, row - dy, col - dx]
        assert np.array_equal(out[i], expected)


def test_min_epochs_beyond_epochs_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"min_epochs \(9\) cannot exceed epochs \(4\)"):
        TrainConfig(epochs=4, min_epochs=9)
    assert TrainConfig(epochs=30).first_selectable_epoch == 15 and TrainConfig(epochs=1).first_selectable_epoch == 1


def test_ties_in_validation_accuracy_go_to_the_lower_validation_loss() -> None:
    """An 18-sample validation split saturates: among the epochs from min_epochs on with the best accuracy, the kept
    one has the lowest validation loss (the old rule kept the first epoch that reached it)."""
    from edgekd.distill.train import evaluate

    data = digits(val_fraction=0.01)
    train = TrainData(data.x_train, data.y_train, data.ids_train, data.x_val, data.y_val)
    model = _model()
    result = fit(model, train, TrainConfig(epochs=8), SupervisedObjective(), seed=0, label="ties")
    eligible = [row for row in result.history if row["epoch"] >= 4]
    best_acc = max(row["val_accuracy"] for row in eligible)
    tied = [row for row in eligible if row["val_accuracy"] == best_acc]
    kept = result.history[result.best_epoch - 1]
    assert len(data.y_val) == 18 and result.best_epoch >= 4
    assert kept["val_accuracy"] == best_acc and kept["val_loss"] == min(row["val_loss"] for row in tied)
    assert evaluate(model, data.x_val, data.y_val) == pytest.approx((kept["val_accuracy"], kept["val_loss"]), rel=1e-5)
