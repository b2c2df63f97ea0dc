"""Labels and splits on small, user-written data: numeric CSV labels, one class, tiny classes, 150 rows, val 0."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekd.config.data import DataConfig
from edgekd.data.datasets import Dataset, load_dataset
from edgekd.errors import DataError

ROOT = Path(__file__).resolve().parents[2]


def _load(tmp_path, **config) -> Dataset:
    return load_dataset(DataConfig(**config), seed=0, base=tmp_path)


def _csv(tmp_path, labels: list[str], name: str = "t.csv") -> str:
    rng = np.random.default_rng(0)
    rows = ["f1,f2,label"] + [f"{rng.normal():.4f},{rng.normal() + i % 3:.4f},{lab}" for i, lab in enumerate(labels)]
    (tmp_path / name).write_text("\n".join(rows) + "\n")
    return name


def _strict_json(text: str) -> object:
    def refuse(constant: str) -> None:
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def test_numeric_csv_labels_are_one_class_per_number(tmp_path) -> None:
    labels = ["1", "1.0", "01", "2", "2.00", "1e0", "0.5", " 0.50 ", "cat", "cat "] * 6
    data = _load(tmp_path, source="csv", path=_csv(tmp_path, labels))
    assert data.label_names == ["0.5", "1", "2", "cat"]  # numbers by value, written canonically, then text
    counts = np.bincount(np.concatenate([data.y_train, data.y_val, data.y_test]), minlength=4)
    assert counts.tolist() == [12, 24, 12, 12]


@pytest.mark.parametrize("cell, needle", [("", "the label is empty"), ("nan", "label 'nan' is not a class")])
def test_missing_csv_label_is_named_with_its_line(tmp_path, cell, needle) -> None:
    labels = ["a", "b"] * 10
    labels[7] = cell
    with pytest.raises(DataError, match=rf"t\.csv:9: {needle}"):
        _load(tmp_path, source="csv", path=_csv(tmp_path, labels))


def test_single_class_is_refused_before_training(tmp_path) -> None:
    with pytest.raises(DataError, match=r"only one class \('1'\): a classifier needs at least two"):
        _load(tmp_path, source="csv", path=_csv(tmp_path, ["1", "1.0"] * 20))
    with pytest.raises(DataError, match=r"only one class \('7'\)") as info:
        load_dataset(DataConfig(classes=["7"]), 0)
    assert "other_class = true" in info.value.hint
    assert load_dataset(DataConfig(classes=["7"], other_class=True), 0).label_names == ["7", "other"]


def test_npz_labels_outside_label_names_are_refused(tmp_path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((30, 4), np.float32), y=np.arange(30) % 4, label_names=np.array(["a", "b"]))
    with pytest.raises(DataError, match=r"labels must lie in 0\.\.1, found 0\.\.3"):
        _load(tmp_path, source="npz", path="d.npz")


def test_150_row_csv_with_default_keys_splits_stratified(tmp_path) -> None:
    from sklearn.datasets import load_iris

    iris = load_iris()
    rows = ["a,b,c,d,label"] + [
        ",".join(f"{v:g}" for v in x) + f",{float(y)}" for x, y in zip(iris.data, iris.target, strict=True)
    ]
    (tmp_path / "iris.csv").write_text("\n".join(rows) + "\n")
    data = _load(tmp_path, source="csv", path="iris.csv")  # default val 0.1 / test 0.2
    assert data.label_names == ["0", "1", "2"]
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (105, 15, 30)
    for y in (data.y_train, data.y_val, data.y_test):
        assert np.bincount(y, minlength=3).min() >= len(y) // 3 - 1  # every class in every split, balanced
    _strict_json(json.dumps(data.preprocessing))


def test_a_class_too_small_to_stratify_is_named(tmp_path) -> None:
    labels = ["big"] * 140 + ["mid"] * 8 + ["tiny"] * 2
    with pytest.raises(DataError, match=r"too few samples to stratify: 'tiny' has 2; each class needs at least 3 "
                                        r"to be split three ways \(train/test/val\)") as info:  # fmt: skip
        _load(tmp_path, source="csv", path=_csv(tmp_path, labels))
    assert "val_fraction = 0" in info.value.hint and "classes = [...]" in info.value.hint
    data = _load(tmp_path, source="csv", path="t.csv", val_fraction=0)  # two samples can be split two ways
    assert set(data.y_train.tolist()) == {0, 1, 2} and len(data.y_val) == 0


def test_a_split_smaller_than_the_classes_is_named(tmp_path) -> None:
    labels = [f"c{i % 40}" for i in range(150)]  # 40 classes of 3-4 samples
    with pytest.raises(DataError, match=r"test_fraction = 0.2 of 150 samples gives 30 test samples, fewer than the 40 "
                                        r"classes") as info:  # fmt: skip
        _load(tmp_path, source="csv", path=_csv(tmp_path, labels))
    assert "test_fraction to at least 0.267" in info.value.hint
    with pytest.raises(DataError, match=r"val_fraction = 0.1 of 150 samples gives 16 val samples"):
        _load(tmp_path, source="csv", path="t.csv", test_fraction=0.3)


def test_val_fraction_zero_writes_strict_json(tmp_path) -> None:
    _csv(tmp_path, ["a", "b", "c"] * 50, name="small.csv")
    recipe = tmp_path / "r.toml"
    recipe.write_text('[run]\nname = "small"\n[data]\nsource = "csv"\npath = "small.csv"\nval_fraction = 0\n')
    run = subprocess.run([sys.executable, "-m", "edgekd.cli", "run", str(recipe), "--only", "data", "--out", str(tmp_path / "run")],
                         check=False, capture_output=True, text=True, cwd=ROOT, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr
    written = [p for p in (tmp_path / "run").rglob("*.json")]
    assert any(p.name == "data.npz.json" for p in written)
    for path in written:
        _strict_json(path.read_text())
    sidecar = _strict_json((tmp_path / "run" / "data.npz.json").read_text())
    assert sidecar["config"]["sizes"] == {"train": 120, "val": 0, "test": 30}
    with np.load(tmp_path / "run" / "data.npz") as arrays:
        assert arrays["x_val"].shape == (0, 2) and arrays["y_val"].shape == (0,)
