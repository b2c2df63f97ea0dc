"""Standard data set files: MNIST-style IDX, CIFAR-10 binary, stratified limits, and each bad file's message.

The files are written here byte by byte from the published format descriptions, not by edgekd; one test
reads Debian's dataset-fashion-mnist package when it is installed.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from edgekd.data.standard_formats import (
    CIFAR10_LABELS,
    FASHION_MNIST_LABELS,
    read_cifar10_file,
    read_cifar10_split,
    read_idx,
    read_idx_pair,
    read_idx_split,
    stratified_limit,
)
from edgekd.errors import DataError

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")  # `dpkg -L dataset-fashion-mnist`


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX: 00 00 08 <ndim>, one big-endian uint32 per dimension, then the unsigned bytes."""
    return (
        bytes([0, 0, 0x08, array.ndim])
        + struct.pack(f">{array.ndim}I", *array.shape)
        + array.astype(np.uint8).tobytes()
    )


def write_idx_folder(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
        data = idx_bytes(array)
        (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(data, mtime=0) if gz else data)


def cifar_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    """CIFAR-10 binary: per record one label byte, then 1024 red, 1024 green, 1024 blue bytes (row-major)."""
    return b"".join(
        bytes([int(label)]) + image.astype(np.uint8).tobytes() for image, label in zip(images, labels, strict=True)
    )


@pytest.fixture
def digits_like() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(20, 28, 28), dtype=np.uint8), np.arange(20) % 10


@pytest.mark.parametrize("gz", [False, True])
def test_idx_split_reads_raw_uint8_nchw(tmp_path: Path, digits_like, gz: bool) -> None:
    images, labels = digits_like
    write_idx_folder(tmp_path, "t10k", images, labels, gz=gz)
    x, y, names = read_idx_split(tmp_path, "test", FASHION_MNIST_LABELS)
    assert x.dtype == np.uint8 and x.shape == (20, 1, 28, 28) and y.dtype == np.int64
    assert np.array_equal(x[:, 0], images) and np.array_equal(y, labels)
    assert x.flags.writeable and y.flags.writeable  # callers may normalise in place
    assert names == list(FASHION_MNIST_LABELS)


def test_idx_split_finds_dotted_names_and_prefers_the_unpacked_file(tmp_path: Path, digits_like) -> None:
    images, labels = digits_like
    (tmp_path / "train-images.idx3-ubyte").write_bytes(idx_bytes(images))
    (tmp_path / "train-labels.idx1-ubyte").write_bytes(idx_bytes(labels))
    x, y, _ = read_idx_split(tmp_path, "train")
    assert x.shape == (20, 1, 28, 28) and np.array_equal(y, labels)


def test_truncated_idx_file_names_the_declared_and_present_sizes(tmp_path: Path, digits_like) -> None:
    images, _ = digits_like
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(images)[:-100])
    with pytest.raises(
        DataError,
        match=r"is truncated: its header declares shape \(20, 28, 28\) \(15,680 bytes\) but 15,580 bytes follow",
    ):
        read_idx(path, 3)


def test_truncated_gzip_is_a_data_error(tmp_path: Path, digits_like) -> None:
    images, _ = digits_like
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(images), mtime=0)[:-40])
    with pytest.raises(DataError, match="is a damaged gzip file"):
        read_idx(path, 3)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x89PNG" + bytes(64), "is not an IDX file: it starts with 89504e47"),
        (bytes([0, 0, 0x0D, 3]) + bytes(64), r"holds IDX type 0x0d; only unsigned bytes \(0x08\) are read"),
        (b"", "is not an IDX file: it starts with nothing"),
        (bytes([0, 0, 0x08, 3, 0, 0]), r"is truncated inside its header \(6 of 16 bytes\)"),
    ],
)
def test_wrong_idx_magic(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "images"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_idx(path, 3)


def test_swapped_images_and_labels_files_are_named(tmp_path: Path, digits_like) -> None:
    images, labels = digits_like
    (tmp_path / "img").write_bytes(idx_bytes(images))
    (tmp_path / "lab").write_bytes(idx_bytes(labels))
    with pytest.raises(DataError, match="1 dimensions; images \\(3\\) need 3") as caught:
        read_idx_pair(tmp_path / "lab", tmp_path / "img")
    assert "swap" in caught.value.hint


def test_idx_images_and_labels_count_mismatch(tmp_path: Path, digits_like) -> None:
    images, labels = digits_like
    (tmp_path / "img").write_bytes(idx_bytes(images))
    (tmp_path / "lab").write_bytes(idx_bytes(labels[:15]))
    with pytest.raises(DataError, match="has 20 images but .* has 15 labels"):
        read_idx_pair(tmp_path / "img", tmp_path / "lab")


def test_idx_labels_out_of_range(tmp_path: Path, digits_like) -> None:
    images, labels = digits_like
    labels = labels.copy()
    labels[[3, 7]] = 12
    (tmp_path / "img").write_bytes(idx_bytes(images))
    (tmp_path / "lab").write_bytes(idx_bytes(labels))
    with pytest.raises(DataError, match=r"2 labels are out of range \(largest 12, classes 0..9\)"):
        read_idx_pair(tmp_path / "img", tmp_path / "lab")


def test_idx_folder_without_the_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="has no t10k-images-idx3-ubyte"):
        read_idx_split(tmp_path, "test")


@pytest.fixture
def cifar_like() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, size=(12, 3, 32, 32), dtype=np.uint8), np.arange(12) % 10


def test_cifar10_binary_split_concatenates_batches_in_numeric_order(tmp_path: Path, cifar_like) -> None:
    images, labels = cifar_like
    for number, part in ((1, slice(0, 4)), (2, slice(4, 8)), (10, slice(8, 12))):  # 10 sorts after 2, not before
        (tmp_path / f"data_batch_{number}.bin").write_bytes(cifar_bytes(images[part], labels[part]))
    (tmp_path / "test_batch.bin").write_bytes(cifar_bytes(images[:2], labels[:2]))
    (tmp_path / "batches.meta.txt").write_text("\n".join(CIFAR10_LABELS) + "\n\n")
    x, y, names = read_cifar10_split(tmp_path, "train")
    assert x.dtype == np.uint8 and x.shape == (12, 3, 32, 32) and y.dtype == np.int64
    assert np.array_equal(x, images) and np.array_equal(y, labels) and names == list(CIFAR10_LABELS)
    assert np.array_equal(x[0, 1], images[0, 1])  # the green plane stays the green plane
    assert x.flags.writeable and y.flags.writeable
    x_test, _, _ = read_cifar10_split(tmp_path, "test")
    assert len(x_test) == 2


def test_cifar10_file_size_not_a_multiple_of_the_record(tmp_path: Path, cifar_like) -> None:
    images, labels = cifar_like
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(cifar_bytes(images, labels)[:-1000])
    with pytest.raises(DataError, match="has 35,876 bytes, not a whole number of 3073-byte CIFAR-10 records"):
        read_cifar10_file(path)


def test_cifar100_sized_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "train.bin"
    path.write_bytes(bytes(3074 * 3))
    with pytest.raises(DataError, match="fits CIFAR-100's 3074-byte records"):
        read_cifar10_file(path)


def test_cifar10_labels_out_of_range(tmp_path: Path, cifar_like) -> None:
    images, labels = cifar_like
    labels = labels.copy()
    labels[5] = 11
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(cifar_bytes(images, labels))
    with pytest.raises(DataError, match=r"1 labels are out of range \(largest 11, classes 0..9\)"):
        read_cifar10_file(path)


def test_cifar10_python_version_is_refused_without_unpickling(tmp_path: Path, monkeypatch) -> None:
    batch = tmp_path / "data_batch_1"
    batch.write_bytes(pickle.dumps({"data": [1, 2], "labels": [0]}, protocol=2))
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    with pytest.raises(DataError, match="no CIFAR-10 binary train batches") as caught:
        read_cifar10_split(tmp_path, "train")
    assert "pickled python version" in caught.value.hint
    with pytest.raises(DataError, match="is a pickled CIFAR batch"):
        read_cifar10_file(batch)


def test_cifar10_meta_file_with_wrong_class_count(tmp_path: Path, cifar_like) -> None:
    images, labels = cifar_like
    (tmp_path / "test_batch.bin").write_bytes(cifar_bytes(images, labels))
    (tmp_path / "batches.meta.txt").write_text("cat\ndog\n")
    with pytest.raises(DataError, match="names 2 classes; CIFAR-10 has 10"):
        read_cifar10_split(tmp_path, "test")


def test_stratified_limit_keeps_proportions_every_class_and_is_seeded() -> None:
    y = np.repeat(np.arange(4), [500, 300, 150, 50])
    picked = stratified_limit(y, 100, seed=3)
    assert len(picked) == 100 and len(set(picked.tolist())) == 100 and np.all(np.diff(picked) > 0)
    assert np.bincount(y[picked]).tolist() == [50, 30, 15, 5]
    assert np.array_equal(picked, stratified_limit(y, 100, seed=3))
    assert not np.array_equal(picked, stratified_limit(y, 100, seed=4))
    rare = np.array([0] * 997 + [1, 2, 3])
    assert np.bincount(rare[stratified_limit(rare, 10, seed=0)]).tolist() == [7, 1, 1, 1]  # each class kept
    assert len(stratified_limit(y, 10_000, seed=0)) == len(y)


@pytest.mark.parametrize(("limit", "message"), [(0, "limit must be at least 1"), (3, "limit 3 is below the 4 classes")])
def test_stratified_limit_refuses_impossible_limits(limit: int, message: str) -> None:
    with pytest.raises(DataError, match=message):
        stratified_limit(np.repeat(np.arange(4), 10), limit, seed=0)


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="Debian package dataset-fashion-mnist is not installed")
def test_debian_fashion_mnist_package() -> None:
    """The four gzipped IDX files in /usr/share/datasets/fashion-mnist: 60k train, 10k test, balanced classes."""
    for split, count in (("test", 10_000), ("train", 60_000)):
        x, y, names = read_idx_split(DEBIAN_FASHION_MNIST, split, FASHION_MNIST_LABELS)
        assert x.shape == (count, 1, 28, 28) and x.dtype == np.uint8 and int(x.max()) == 255
        assert np.bincount(y).tolist() == [count // 10] * 10 and names[9] == "Ankle boot"
        subset = stratified_limit(y, 1000, seed=0)
        assert np.bincount(y[subset]).tolist() == [100] * 10
