"""[data] source = "idx" / "cifar10_binary" and limit, on small files written here in the standard formats."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from edgekd.config.data import DataConfig
from edgekd.data.datasets import load_dataset
from edgekd.errors import DataError, RecipeError
from edgekd.recipe import parse_recipe

CLASSES = 10


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> None:
    """An IDX file of unsigned bytes (big-endian header: 0 0 0x08 ndim, then one uint32 per dimension)."""
    payload = (
        bytes([0, 0, 0x08, array.ndim])
        + struct.pack(f">{array.ndim}I", *array.shape)
        + array.astype(np.uint8).tobytes()
    )
    path.write_bytes(gzip.compress(payload, mtime=0) if gz else payload)


def idx_folder(folder: Path, train: int = 100, test: int = 50, side: int = 6) -> Path:
    """An MNIST-style folder: labels cycle 0..9, pixel (0, 0) of every image is its running index mod 256."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n, offset in (("train", train, 0), ("t10k", test, train)):
        x = rng.integers(0, 256, size=(n, side, side), dtype=np.uint8)
        x[:, 0, 0] = (np.arange(n) + offset) % 256
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % CLASSES)
    return folder


def cifar_folder(folder: Path, per_batch: int = 40) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for name in ("data_batch_1.bin", "data_batch_2.bin", "test_batch.bin"):
        records = rng.integers(0, 256, size=(per_batch, 3073), dtype=np.uint8)
        records[:, 0] = np.arange(per_batch) % CLASSES
        (folder / name).write_bytes(records.tobytes())
    return folder


def test_idx_folder_is_pooled_split_and_scaled_from_raw_uint8(tmp_path) -> None:
    idx_folder(tmp_path / "fm")
    data = load_dataset(
        DataConfig(source="idx", path=Path("fm"), label_set="fashion_mnist", normalize="none"), 0, base=tmp_path
    )
    assert data.label_names[0] == "T-shirt/top" and data.label_names[-1] == "Ankle boot"
    assert data.input_shape == (1, 6, 6)
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 150  # train and t10k pooled
    assert data.preprocessing["scale"] == pytest.approx(1 / 255) and data.preprocessing["raw_dtype"] == "uint8"
    # a sample's id is its index in train then t10k: pixel (0, 0) was written as that index
    ids = np.concatenate([data.ids_train, data.ids_val, data.ids_test])
    x = np.concatenate([data.x_train, data.x_val, data.x_test])
    assert np.allclose(x[:, 0, 0, 0] * 255, ids % 256, atol=1e-3)


def test_limit_keeps_a_stratified_subset_and_source_ids(tmp_path) -> None:
    idx_folder(tmp_path / "m", train=200, test=100)
    config = DataConfig(source="idx", path=tmp_path / "m", label_set="mnist", limit=100, normalize="none")
    data = load_dataset(config, 3)
    ids = np.concatenate([data.ids_train, data.ids_val, data.ids_test])
    assert len(ids) == 100 and len(set(ids.tolist())) == 100 and ids.max() < 300
    y = np.concatenate([data.y_train, data.y_val, data.y_test])
    assert np.bincount(y, minlength=CLASSES).tolist() == [10] * CLASSES
    x = np.concatenate([data.x_train, data.x_val, data.x_test])
    assert np.allclose(x[:, 0, 0, 0] * 255, ids % 256, atol=1e-3)  # ids point at the samples they name
    assert np.array_equal(
        np.sort(ids),
        np.sort(
            np.concatenate(
                [load_dataset(config, 3).ids_train, load_dataset(config, 3).ids_val, load_dataset(config, 3).ids_test]
            )
        ),
    )  # seeded


def test_limit_with_a_class_subset_keeps_source_ids(tmp_path) -> None:
    idx_folder(tmp_path / "m", train=200, test=100)
    config = DataConfig(
        source="idx", path=tmp_path / "m", label_set="mnist", limit=150, classes=["3", "7"], normalize="none"
    )
    data = load_dataset(config, 0)
    ids = np.concatenate([data.ids_train, data.ids_val, data.ids_test])
    x = np.concatenate([data.x_train, data.x_val, data.x_test])
    assert np.allclose(x[:, 0, 0, 0] * 255, ids % 256, atol=1e-3)
    assert set((ids % CLASSES).tolist()) == {3, 7}  # label = index mod 10 in the written files


def test_cifar10_binary_folder_loads_rgb_nchw(tmp_path) -> None:
    cifar_folder(tmp_path / "c")
    data = load_dataset(DataConfig(source="cifar10_binary", path=tmp_path / "c", test_fraction=0.25), 0)
    assert data.input_shape == (3, 32, 32) and data.label_names[0] == "airplane"
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 120
    assert data.preprocessing["scale"] == pytest.approx(1 / 255)


def test_recipe_refuses_idx_without_label_set_and_label_set_elsewhere() -> None:
    with pytest.raises(RecipeError, match="needs label_set"):
        parse_recipe({"data": {"source": "idx", "path": "x"}})
    with pytest.raises(RecipeError, match="label_set applies to source = 'idx' only"):
        parse_recipe({"data": {"source": "npz", "path": "x.npz", "label_set": "mnist"}})


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            "truncate",
            r"train-images-idx3-ubyte is truncated: its header declares shape \(100, 6, 6\) \(3,600 bytes\) but 3,440 bytes follow",
        ),
        ("label", r"train-labels-idx1-ubyte: 1 labels are out of range \(largest 12, classes 0\.\.9\)"),
    ],
)
def test_damaged_idx_files_are_one_data_error(tmp_path, damage: str, message: str) -> None:
    folder = idx_folder(tmp_path / "d")
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (folder / name).unlink()
    x = np.zeros((100, 6, 6), np.uint8)
    y = np.arange(100) % CLASSES
    if damage == "label":
        y[5] = 12
    write_idx(folder / "train-labels-idx1-ubyte", y, gz=False)
    write_idx(folder / "train-images-idx3-ubyte", x, gz=False)
    if damage == "truncate":
        path = folder / "train-images-idx3-ubyte"
        path.write_bytes(path.read_bytes()[:-160])
    with pytest.raises(DataError, match=message):
        load_dataset(DataConfig(source="idx", path=folder, label_set="mnist"), 0)


def test_cifar_file_of_partial_records_is_one_data_error(tmp_path) -> None:
    folder = cifar_folder(tmp_path / "c")
    path = folder / "data_batch_2.bin"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(
        DataError, match=r"data_batch_2\.bin has 122,820 bytes, not a whole number of 3073-byte CIFAR-10 records"
    ):
        load_dataset(DataConfig(source="cifar10_binary", path=folder), 0)
