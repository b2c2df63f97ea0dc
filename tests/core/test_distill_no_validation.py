"""val_fraction = 0: no NaN anywhere (strict JSON), patience refused, best_val falls back to last with a recorded warning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekd.config.distill import ModelSpec, TeacherConfig, TrainConfig
from edgekd.distill.api import distill, prepare_teacher
from edgekd.errors import RecipeError
from tests.support.distill_fixtures import TINY_STUDENT, digits, quick_distill


def _strict(path: Path) -> dict:
    def refuse(constant: str) -> None:
        raise ValueError(f"{path.name} holds {constant}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


@pytest.fixture(scope="module")
def data():
    return digits(val_fraction=0.0)


def test_no_validation_split_writes_strict_json_and_records_the_fallback(data, tmp_path) -> None:
    config = TeacherConfig(model=ModelSpec(arch="mlp", width=32, depth=1), train=TrainConfig(epochs=2, lr=1e-2))
    teacher = prepare_teacher(config, data, seed=0, out_dir=tmp_path / "t", base_dir=tmp_path)
    sidecar = _strict(teacher.sidecar)
    assert all(row["val_accuracy"] is None and row["val_loss"] is None for row in sidecar["config"]["history"])
    assert sidecar["config"]["selected"] == "last" and sidecar["config"]["best_epoch"] == 2
    assert any('select = "best_val" fell back to "last"' in w for w in sidecar["config"]["warnings"])
    assert sidecar["config"]["check"]["split"] == "train" and sidecar["config"]["check"]["baseline"] is None
    outcome = distill(teacher, TINY_STUDENT, quick_distill(epochs=2), data, seed=0, out_dir=tmp_path / "d")
    history = _strict(tmp_path / "d" / "history.json")
    assert all(row["val_accuracy"] is None for rows in (history["student"], history["scratch"]) for row in rows)
    for artifact in outcome.artifacts:
        _strict(artifact.sidecar)
    assert outcome.metrics["student_selected"] == "last"
    expected = ('[distill] train: no validation split (val_fraction = 0), so select = "best_val" fell back to '
                "\"last\": the final epoch's weights are kept")  # fmt: skip
    assert outcome.metrics["warnings"] == [expected]


def test_patience_without_validation_split_is_refused_before_training(data, tmp_path) -> None:
    config = TeacherConfig(model=ModelSpec(arch="mlp", width=8, depth=1), train=TrainConfig(epochs=2, patience=3))
    with pytest.raises(
        RecipeError, match=r"\[teacher\] train: patience = 3 needs a validation split, but it is empty"
    ) as info:
        prepare_teacher(config, data, seed=0, out_dir=tmp_path / "t", base_dir=tmp_path)
    assert "val_fraction" in info.value.hint and not (tmp_path / "t" / "teacher.pt").exists()


def test_select_last_keeps_the_final_epoch() -> None:
    import numpy as np
    import torch

    from edgekd.distill.models import build_model
    from edgekd.distill.objectives import SupervisedObjective
    from edgekd.distill.train import TrainData, fit

    data = digits()
    train = TrainData(data.x_train[:300], data.y_train[:300], data.ids_train[:300], data.x_val, data.y_val)
    torch.manual_seed(0)
    model = build_model({"arch": "mlp", "width": 16, "depth": 1}, (1, 8, 8), 10)
    result = fit(model, train, TrainConfig(epochs=3, select="last"), SupervisedObjective(), seed=0, label="last")
    assert result.selected == "last" and result.best_epoch == 3
    from edgekd.distill.train import accuracy

    assert accuracy(model, data.x_val, data.y_val) == result.history[-1]["val_accuracy"]
    assert np.isfinite(result.history[-1]["val_loss"])
