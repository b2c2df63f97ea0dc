"""Data sources (digits, npz, image folder, CSV), class subsets, save/load, and bad data."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgekd.config.data import DataConfig
from edgekd.data.datasets import Dataset, load_dataset
from edgekd.errors import DataError


def _load(tmp_path, **config) -> Dataset:
    return load_dataset(DataConfig(**config), seed=0, base=tmp_path)


def test_digits_split_is_seeded_stratified_and_disjoint() -> None:
    a, b = load_dataset(DataConfig(), 0), load_dataset(DataConfig(), 0)
    assert np.array_equal(a.ids_test, b.ids_test)
    assert not np.array_equal(a.ids_test, load_dataset(DataConfig(), 1).ids_test)
    ids = np.concatenate([a.ids_train, a.ids_val, a.ids_test])
    assert len(ids) == len(set(ids.tolist())) == 1797
    assert a.x_train.shape[1:] == (1, 8, 8) and a.x_train.dtype == np.float32
    assert abs(float(a.x_train.mean())) < 1e-3  # normalised with training statistics


def test_npz_channels_last_uint8_images(tmp_path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(60, 6, 6, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.repeat(np.arange(3), 20), label_names=np.array(["a", "b", "c"]))
    data = _load(tmp_path, source="npz", path="d.npz")
    assert data.input_shape == (3, 6, 6) and data.label_names == ["a", "b", "c"]
    assert data.preprocessing["scale"] == 1 / 255 and data.preprocessing["raw_dtype"] == "uint8"  # uint8 -> 0..1
    assert data.preprocessing["raw_range"] == [float(x.min()), float(x.max())]


def test_image_folder(tmp_path) -> None:
    for label, value in (("cat", 30), ("dog", 220)):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(np.full((5, 7), value + i, np.uint8), mode="L").save(tmp_path / "imgs" / label / f"{i}.png")
    data = _load(tmp_path, source="image_folder", path="imgs")
    assert data.label_names == ["cat", "dog"] and data.input_shape == (1, 5, 7)
    Image.fromarray(np.zeros((9, 9), np.uint8)).save(tmp_path / "imgs" / "dog" / "big.png")
    with pytest.raises(DataError, match="different sizes"):
        _load(tmp_path, source="image_folder", path="imgs")
    assert _load(tmp_path, source="image_folder", path="imgs", image_size=[4, 4]).input_shape == (1, 4, 4)
    Image.fromarray(np.zeros((5, 7, 3), np.uint8), mode="RGB").save(tmp_path / "imgs" / "cat" / "colour.png")
    (tmp_path / "imgs" / "dog" / "big.png").unlink()
    assert _load(tmp_path, source="image_folder", path="imgs").input_shape == (3, 5, 7)  # one colour image: all RGB


def test_csv_table_with_text_labels(tmp_path) -> None:
    rows = ["height,weight,label"] + [
        f"{1.5 + i * 0.01},{50 + i * 3},{'tall' if i % 2 else 'short'}" for i in range(40)
    ]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    data = _load(tmp_path, source="csv", path="t.csv")
    assert data.label_names == ["short", "tall"] and data.input_shape == (2,)
    assert np.allclose(data.x_train.std(axis=0), 1.0, atol=1e-5)  # per-feature normalisation
    assert len(data.preprocessing["mean"]) == 2
    (tmp_path / "bad.csv").write_text("a,label\nx,1\n")
    with pytest.raises(DataError, match="'x' is not a number"):
        _load(tmp_path, source="csv", path="bad.csv")
    with pytest.raises(DataError, match="no column 'class'"):
        _load(tmp_path, source="csv", path="t.csv", label_column="class")


@pytest.mark.parametrize("other", [False, True])
def test_class_subset_keeps_source_labels(tmp_path, other) -> None:
    data = load_dataset(DataConfig(classes=["7", "1"], other_class=other), 0)
    assert data.label_names == ["7", "1"] + (["other"] if other else [])
    assert data.source_label_names == [str(i) for i in range(10)]
    source_for = {0: 7, 1: 1}
    for y, y_src in zip(data.y_train, data.y_train_source, strict=True):
        assert source_for.get(int(y), None) == int(y_src) if y < 2 else y_src not in (1, 7)
    assert len(data.y_train) > (1000 if other else 200)
    path = tmp_path / "d.npz"
    data.save(path)
    back = Dataset.load(path, data.preprocessing)
    assert back.source_label_names == data.source_label_names and back.other_label == data.other_label
    assert np.array_equal(back.y_test_source, data.y_test_source)
    assert back.teacher_view()[0] == data.source_label_names


def test_unknown_class_suggests_the_close_one() -> None:
    with pytest.raises(DataError, match="class '11' is not in the data set") as info:
        load_dataset(DataConfig(classes=["11"]), 0)
    assert "did you mean '1'" in info.value.hint


def test_bad_data_is_named(tmp_path) -> None:
    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 4), np.float32), y=np.zeros(0, np.int64))
    with pytest.raises(DataError, match="empty"):
        _load(tmp_path, source="npz", path="empty.npz")
    np.savez(
        tmp_path / "range.npz",
        x=np.zeros((30, 4), np.float32),
        y=np.arange(30) % 5,
        label_names=np.array(["a", "b", "c"]),
    )
    with pytest.raises(DataError, match=r"labels must lie in 0..2, found 0..4"):
        _load(tmp_path, source="npz", path="range.npz")
    np.savez(tmp_path / "nan.npz", x=np.full((30, 4), np.nan, np.float32), y=np.arange(30) % 2)
    with pytest.raises(DataError, match="NaN or Inf"):
        _load(tmp_path, source="npz", path="nan.npz")
    np.savez(tmp_path / "obj.npz", x=np.array([object()] * 3), y=np.arange(3))
    with pytest.raises(DataError, match="without object arrays"):
        _load(tmp_path, source="npz", path="obj.npz")
    with pytest.raises(DataError, match="does not exist"):
        _load(tmp_path, source="npz", path="missing.npz")
