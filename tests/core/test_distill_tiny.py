"""A 150-sample CSV with the default recipe keys: the default teacher ("auto" -> MLP for tables, batch size scaled to
the tiny split, checkpoint kept from min_epochs on) is not worse than logistic regression on the same split."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from edgekd.config.data import DataConfig
from edgekd.config.distill import TeacherConfig
from edgekd.data.datasets import load_dataset
from edgekd.distill.api import prepare_teacher


def _iris_csv(path: Path) -> Path:
    bunch = load_iris()
    lines = ["sepal_l,sepal_w,petal_l,petal_w,label"]
    lines += [
        ",".join(f"{v:g}" for v in row) + f",{bunch.target_names[y]}"
        for row, y in zip(bunch.data, bunch.target, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("seed", [0, 3])
def test_default_teacher_on_150_csv_rows_keeps_up_with_logistic_regression(seed, tmp_path) -> None:
    data = load_dataset(DataConfig(source="csv", path=_iris_csv(tmp_path / "iris.csv")), seed)
    assert len(data.y_val) == 15
    teacher = prepare_teacher(TeacherConfig(), data, seed=seed, out_dir=tmp_path / "t", base_dir=tmp_path)
    baseline = LogisticRegression(max_iter=500).fit(data.x_train, data.y_train).score(data.x_test, data.y_test)
    config = teacher.config
    assert config["model"]["arch"] == "mlp"  # "auto" resolved and recorded
    assert config["test_accuracy"] >= baseline - 0.02
    assert config["best_epoch"] >= 8  # not an early, under-trained epoch (min_epochs = half of 15)
    assert config["history"][0]["batch_size"] == 8 and config["check"]["passed"] is True
