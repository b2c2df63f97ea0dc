"""Hopeless sweep trials stop during training: the trainer's per-epoch hook and the sweep's percentile rule."""

from __future__ import annotations

import pytest

optuna = pytest.importorskip("optuna")


def _study_with_finished(curves: list[list[float]]):
    study = optuna.create_study(directions=["maximize", "minimize"])
    for number, curve in enumerate(curves):
        study.add_trial(optuna.trial.create_trial(values=[max(curve), 0.01 * (number + 1)],
                                                  user_attrs={"val_accuracy": curve}))  # fmt: skip
    return study


def test_a_trial_below_its_peers_at_the_same_epoch_is_pruned_during_training() -> None:
    from edgekd.sweep.config import Pruning
    from edgekd.sweep.trial import KD_STUDENT, epoch_pruner

    study = _study_with_finished([[0.50, 0.80, 0.90], [0.55, 0.85, 0.92], [0.60, 0.82, 0.95], [0.52, 0.83, 0.91]])
    trial = study.ask()
    on_epoch = epoch_pruner(trial, Pruning(percentile=25.0, startup_trials=4))
    on_epoch(KD_STUDENT, {"epoch": 1, "val_accuracy": 0.54})  # among its peers at epoch 1: goes on
    on_epoch("student (scratch)", {"epoch": 1, "val_accuracy": 0.01})  # the baseline's epochs are not judged
    with pytest.raises(optuna.TrialPruned, match=r"epoch 2: best validation accuracy so far 0\.6000 is below the 25th"):
        on_epoch(KD_STUDENT, {"epoch": 2, "val_accuracy": 0.60})  # far below every peer's epoch-2 best
    assert trial.user_attrs["val_accuracy"] == [0.54, 0.60] and "epoch 2" in trial.user_attrs["pruned"]


def test_too_few_finished_trials_or_pruning_off_never_prune() -> None:
    from edgekd.sweep.config import Pruning
    from edgekd.sweep.trial import prune_reason_at_epoch

    few = _study_with_finished([[0.9, 0.95]])
    assert prune_reason_at_epoch(few, [0.1], Pruning(startup_trials=4)) is None
    many = _study_with_finished([[0.9, 0.95]] * 5)
    assert prune_reason_at_epoch(many, [0.1], Pruning(kind="none")) is None
    assert prune_reason_at_epoch(many, [0.1], Pruning(startup_trials=4)) is not None


def test_the_trainer_stops_where_the_hook_raises() -> None:
    from edgekd.config.distill import TrainConfig
    from edgekd.distill.models import build_model
    from edgekd.distill.objectives import SupervisedObjective
    from edgekd.distill.train import TrainData, fit
    from tests.support.distill_fixtures import digits

    class Hopeless(Exception):
        pass

    seen: list[tuple[str, int]] = []

    def on_epoch(label: str, row: dict) -> None:
        seen.append((label, row["epoch"]))
        if row["epoch"] == 2:
            raise Hopeless

    data = digits()
    train = TrainData(data.x_train[:200], data.y_train[:200], data.ids_train[:200], data.x_val, data.y_val)
    model = build_model({"arch": "mlp", "width": 8, "depth": 1}, (1, 8, 8), 10)
    with pytest.raises(Hopeless):
        fit(model, train, TrainConfig(epochs=5), SupervisedObjective(), seed=0, label="probe", on_epoch=on_epoch)
    assert seen == [("probe", 1), ("probe", 2)]  # epochs 3-5 never ran
