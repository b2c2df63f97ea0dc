"""Readers for data sets in their standard file formats: MNIST-style IDX files and CIFAR-10's binary version.

Each reader returns raw uint8 images (N, C, H, W), int64 labels (N,) and the class names; scaling to the
model's inputs is the preprocessing's job, so the values stay the ones a device's sensor path produces.
`read_idx_source` / `read_cifar10_source` are the recipe sources: both splits of the files pooled (train
first, so a sample's id is its index in train then test) as a `RawData` with scale 1/255.
Nothing is downloaded, and CIFAR-10's pickled "python version" is refused, never unpickled.

Formats:
- IDX (http://yann.lecun.com/exdb/mnist/): big-endian header, magic 0x00 0x00 <type> <ndim>, then one
  uint32 size per dimension, then the data. Images are type 0x08 (unsigned byte) with 3 dimensions
  (N, rows, cols); labels type 0x08 with 1 dimension. Either file may be gzipped.
- CIFAR-10 binary (https://www.cs.toronto.edu/~kriz/cifar.html, cifar-10-binary.tar.gz): records of
  1 label byte + 3072 pixel bytes (1024 red, 1024 green, 1024 blue, each 32x32 row-major), no header.
"""

from __future__ import annotations

import gzip
import re
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from edgekd.errors import DataError

if TYPE_CHECKING:
    from edgekd.data.sources import RawData

MNIST_LABELS = tuple(str(digit) for digit in range(10))
FASHION_MNIST_LABELS = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")  # fmt: skip
CIFAR10_LABELS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IDX_UBYTE = 0x08  # IDX type code of unsigned bytes; the only type MNIST-style data sets use
IDX_SPLITS = {"train": "train", "test": "t10k"}  # file name prefixes of the MNIST / Fashion-MNIST splits
CIFAR10_SIDE = 32
CIFAR10_RECORD = 1 + 3 * CIFAR10_SIDE * CIFAR10_SIDE  # bytes: label + 3072 pixels
CIFAR100_RECORD = 2 + 3 * CIFAR10_SIDE * CIFAR10_SIDE  # coarse + fine label: named in the error, not read
IDX_HINT = "use the *-idx3-ubyte images and *-idx1-ubyte labels files (gzipped or not) of MNIST or Fashion-MNIST"

Split = Literal["train", "test"]


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic (whatever its name)."""
    if not path.exists():
        raise DataError(f"{path} does not exist", hint="[data] path is taken relative to the recipe file")
    if not path.is_file():
        raise DataError(f"{path} is not a file", hint="name the data file itself here, not its folder")
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError) as exc:  # BadGzipFile is an OSError; a cut-off stream raises EOFError
        raise DataError(
            f"{path} is a damaged gzip file: {exc}", hint="download it again; `gzip -t` checks it"
        ) from None


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """One IDX file of unsigned bytes with `ndim` dimensions, as a uint8 array of the declared shape."""
    data = _read_bytes(path)
    if len(data) < 4 or data[:2] != b"\x00\x00":
        raise DataError(f"{path} is not an IDX file: it starts with {data[:4].hex() or 'nothing'}, not 0000080{ndim}",
                        hint=IDX_HINT)  # fmt: skip
    kind, found = data[2], data[3]
    if kind != IDX_UBYTE:
        raise DataError(f"{path} holds IDX type 0x{kind:02x}; only unsigned bytes (0x08) are read", hint=IDX_HINT)
    if found != ndim:
        what = "images (3)" if ndim == 3 else "labels (1)"
        raise DataError(f"{path} is an IDX file with {found} dimensions; {what} need {ndim}",
                        hint="did you swap the images and labels files? " + IDX_HINT)  # fmt: skip
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated inside its header ({len(data)} of {header} bytes)", hint=IDX_HINT)
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(shape, dtype=np.int64))
    body = len(data) - header
    if body != expected:
        problem = "is truncated" if body < expected else "has trailing bytes"
        raise DataError(f"{path} {problem}: its header declares shape {shape} ({expected:,} bytes) but {body:,} bytes follow",
                        hint="download it again; a partial copy or a different format cannot be read")  # fmt: skip
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()  # writable, owns its memory


def _check_labels(y: np.ndarray, names: Sequence[str], source: Path) -> None:
    if len(y) and int(y.max()) >= len(names):
        bad = int(np.sum(y >= len(names)))
        raise DataError(f"{source}: {bad} labels are out of range (largest {int(y.max())}, classes 0..{len(names) - 1})",
                        hint="the file is damaged or belongs to another data set")  # fmt: skip


def read_idx_pair(images: Path, labels: Path, label_names: Sequence[str] = MNIST_LABELS) -> tuple[np.ndarray, np.ndarray, list[str]]:  # fmt: skip
    """An images file and its labels file: uint8 (N, 1, H, W), int64 (N,), the class names."""
    x = read_idx(images, 3)
    y = read_idx(labels, 1).astype(np.int64)
    if len(x) != len(y):
        raise DataError(f"{images} has {len(x):,} images but {labels} has {len(y):,} labels",
                        hint="use the images and labels files of the same split (train-* with train-*, t10k-* with t10k-*)")  # fmt: skip
    _check_labels(y, label_names, labels)
    return x[:, None], y, list(label_names)  # (N, H, W) -> (N, 1, H, W)


def _find_one(directory: Path, stems: Sequence[str]) -> Path:
    """The first of `stems` (each tried plain, then .gz) present in `directory`."""
    for stem in stems:
        for name in (stem, stem + ".gz"):
            if (directory / name).is_file():
                return directory / name
    raise DataError(f"{directory} has no {stems[0]} (or {stems[0]}.gz)",
                    hint="point [data] path at the folder holding the four MNIST/Fashion-MNIST IDX files")  # fmt: skip


def read_idx_split(directory: Path, split: Split, label_names: Sequence[str] = MNIST_LABELS) -> tuple[np.ndarray, np.ndarray, list[str]]:  # fmt: skip
    """The `split` of an MNIST/Fashion-MNIST folder: {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz].

    The dotted names some mirrors use (train-images.idx3-ubyte) are found too; an unpacked file is
    preferred over its .gz twin.
    """
    if not directory.is_dir():
        raise DataError(f"{directory} is not a folder", hint="point [data] path at the folder holding the IDX files")
    prefix = IDX_SPLITS[split]
    images = _find_one(directory, [f"{prefix}-images-idx3-ubyte", f"{prefix}-images.idx3-ubyte"])
    labels = _find_one(directory, [f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels.idx1-ubyte"])
    return read_idx_pair(images, labels, label_names)


def read_cifar10_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 binary batch: uint8 (N, 3, 32, 32) and int64 (N,) labels (checked to be 0..9)."""
    data = _read_bytes(path)
    if data[:1] == b"\x80":  # a pickle's PROTO opcode; a CIFAR-10 record starts with its label, 0..9
        raise DataError(f"{path} is a pickled CIFAR batch (the python version); edgekd never unpickles data",
                        hint="download the binary version (cifar-10-binary.tar.gz: data_batch_*.bin, test_batch.bin)")  # fmt: skip
    if not data or len(data) % CIFAR10_RECORD:
        note = " (its size fits CIFAR-100's 3074-byte records)" if data and len(data) % CIFAR100_RECORD == 0 else ""
        raise DataError(f"{path} has {len(data):,} bytes, not a whole number of {CIFAR10_RECORD}-byte CIFAR-10 records{note}",
                        hint="the file is truncated or not a CIFAR-10 binary batch; download cifar-10-binary.tar.gz again")  # fmt: skip
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, CIFAR10_RECORD)
    y = records[:, 0].astype(np.int64)
    _check_labels(y, CIFAR10_LABELS, path)
    x = records[:, 1:].reshape(-1, 3, CIFAR10_SIDE, CIFAR10_SIDE)  # planes R, G, B, each row-major: already NCHW
    return x, y


def _cifar_label_names(directory: Path) -> list[str]:
    """batches.meta.txt (one class name a line) when present, else CIFAR-10's ten names."""
    meta = directory / "batches.meta.txt"
    if not meta.is_file():
        return list(CIFAR10_LABELS)
    names = [line.strip() for line in meta.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    if len(names) != len(CIFAR10_LABELS):
        raise DataError(f"{meta} names {len(names)} classes; CIFAR-10 has {len(CIFAR10_LABELS)}",
                        hint="restore the file from cifar-10-binary.tar.gz, or remove it to use the standard names")  # fmt: skip
    return names


def read_cifar10_split(path: Path, split: Split) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The `split` of a cifar-10-batches-bin folder (train: data_batch_1..5.bin in order; test: test_batch.bin)."""
    if not path.is_dir():
        raise DataError(
            f"{path} is not a folder", hint="point [data] path at the extracted cifar-10-batches-bin folder"
        )
    if split == "train":
        numbered = [
            (int(m.group(1)), p)
            for p in path.glob("data_batch_*.bin")
            if (m := re.fullmatch(r"data_batch_(\d+)\.bin", p.name))
        ]
        files = [p for _, p in sorted(numbered)]
    else:
        files = [path / "test_batch.bin"] if (path / "test_batch.bin").is_file() else []
    if not files:
        pickled = (path / "data_batch_1").exists() or (path / "test_batch").exists()
        raise DataError(f"{path} has no CIFAR-10 binary {split} batches ({'data_batch_*.bin' if split == 'train' else 'test_batch.bin'})",
                        hint="this is the pickled python version, which edgekd never loads: use cifar-10-binary.tar.gz"
                        if pickled else "extract cifar-10-binary.tar.gz and point [data] path at cifar-10-batches-bin")  # fmt: skip
    names = _cifar_label_names(path)
    parts = [read_cifar10_file(f) for f in files]
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts]), names


def stratified_limit(y: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded subset of `limit` samples with the class proportions of `y`.

    Quotas are proportional to the class sizes (largest remainder, ties to the lower class); a class that
    would get none gets one, taken from the largest quota, so every class stays. `limit` >= len(y) keeps all.
    """
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"labels must be a 1-D integer array, got shape {y.shape} dtype {y.dtype}")
    if limit < 1:
        raise DataError(f"limit must be at least 1, got {limit}", hint="leave limit out to use every sample")
    if limit >= len(y):
        return np.arange(len(y), dtype=np.int64)
    classes, counts = np.unique(y, return_counts=True)
    if limit < len(classes):
        raise DataError(
            f"limit {limit} is below the {len(classes)} classes in the data; a stratified subset needs one sample of each",
            hint=f"set limit to at least {len(classes)}",
        )
    share = counts * limit / len(y)  # < counts, so floor + 1 never exceeds a class's size
    quota = np.floor(share).astype(np.int64)
    order = sorted(range(len(classes)), key=lambda i: (-(share[i] - quota[i]), i))
    quota[order[: limit - int(quota.sum())]] += 1
    for empty in np.flatnonzero(quota == 0):
        quota[int(np.argmax(quota))] -= 1
        quota[empty] = 1
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero(y == c), size=int(q), replace=False) for c, q in zip(classes, quota, strict=True)
    ]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def read_idx_source(directory: Path, label_names: Sequence[str]) -> RawData:
    """A `source = "idx"` folder: its train and test files pooled (train first), raw uint8, scale 1/255."""
    x_train, y_train, names = read_idx_split(directory, "train", label_names)
    x_test, y_test, _ = read_idx_split(directory, "test", label_names)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{directory}: the train images are {x_train.shape[2:]} pixels, the t10k images {x_test.shape[2:]}",
                        hint="both splits must come from the same data set")  # fmt: skip
    return _pooled(x_train, y_train, x_test, y_test, names)


def read_cifar10_source(directory: Path) -> RawData:
    """A `source = "cifar10_binary"` folder: data_batch_*.bin then test_batch.bin pooled, raw uint8, scale 1/255."""
    x_train, y_train, names = read_cifar10_split(directory, "train")
    x_test, y_test, _ = read_cifar10_split(directory, "test")
    return _pooled(x_train, y_train, x_test, y_test, names)


def _pooled(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, names: list[str]
) -> RawData:
    from edgekd.data.sources import UINT8_SCALE, RawData

    x = np.concatenate([x_train, x_test])
    return RawData(x, np.concatenate([y_train, y_test]), list(names), UINT8_SCALE, str(x.dtype))
