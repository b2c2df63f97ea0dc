"""Readers for the data sources a recipe can name: the bundled digits, .npz arrays, an image folder, a CSV.

Each returns a `RawData`: the values as stored (images (N, C, H, W), tables (N, F)), int64 class
indices, the class names, and the integer->float step its stored type implies (`scale`: 1/255 for
uint8, 1/65535 for 16-bit, 1/16 for digits, 1 for floats and CSV units). Nothing is scaled, resized,
reordered or coerced here without saying so in an error; `edgekd.data.datasets` applies the contract.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekd.errors import DataError

UINT8_SCALE = 1.0 / 255.0
UINT16_SCALE = 1.0 / 65535.0
DIGITS_SCALE = 1.0 / 16.0  # scikit-learn's digits count 0..16 set pixels per 4x4 block


@dataclass(frozen=True)
class RawData:
    x: np.ndarray  # stored values: (N, C, H, W) images or (N, F) tables, in their stored dtype
    y: np.ndarray  # (N,) int64 class indices into `names`
    names: list[str]
    scale: float | None  # automatic raw -> float step; None when the stored type cannot tell (see `scale_note`)
    raw_dtype: str  # dtype of the stored values ("uint8", "uint16", "float32", ...)
    scale_note: str = ""  # why `scale` is None

    @property
    def is_image(self) -> bool:
        return self.x.ndim == 4


def _require(path: Path, kind: str) -> None:
    if not path.exists():
        raise DataError(f"{kind} {path} does not exist", hint="[data] path is taken relative to the recipe file")
    if path.is_dir():
        raise DataError(f"{kind} {path} is a directory", hint="point [data] path at the file itself")


def read_digits() -> RawData:
    """scikit-learn's bundled 8x8 digits: (N, 1, 8, 8) counts 0..16, stored here as uint8."""
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    bunch = load_digits()
    x = bunch.images.astype(np.uint8)[:, None, :, :]  # (N, 8, 8) float64 integers 0..16 -> (N, 1, 8, 8)
    names = [str(n) for n in bunch.target_names]
    return RawData(x, bunch.target.astype(np.int64), names, DIGITS_SCALE, "uint8")


def read_npz(path: Path) -> RawData:
    """Arrays `x` (N, ...) and `y` (N,) and optionally `label_names`."""
    _require(path, "data file")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (ValueError, OSError) as exc:
        raise DataError(f"{path} is not a readable .npz without object arrays: {exc}",
                        hint="write it with np.savez(path, x=images, y=labels, label_names=names)") from None  # fmt: skip
    if "x" not in arrays or "y" not in arrays:
        raise DataError(f"{path} needs arrays 'x' and 'y'; it has {sorted(arrays)}",
                        hint="np.savez(path, x=samples, y=labels[, label_names=names])")  # fmt: skip
    x, y = arrays["x"], arrays["y"]
    if y.ndim != 1:
        raise DataError(f"{path}: labels 'y' must be one class index per sample, got shape {y.shape}",
                        hint="store class indices (argmax of one-hot labels)")  # fmt: skip
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise DataError(f"{path}: labels 'y' must be integer class indices (got dtype {y.dtype})")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise DataError(f"{path}: samples must be numeric, got dtype {x.dtype}", hint="store x as integers or floats")
    x = _to_nchw(x, path)
    if len(y) and y.min() < 0:
        raise DataError(f"{path}: labels must be >= 0, found {int(y.min())}", hint="use class indices 0..K-1")
    if "label_names" in arrays:
        names = [str(n) for n in np.atleast_1d(arrays["label_names"])]  # labels beyond them: check_arrays
    else:
        names = [str(i) for i in range(int(y.max()) + 1 if len(y) else 0)]
    scale, note = auto_scale(x)
    return RawData(x, y.astype(np.int64), names, scale, str(x.dtype), note)


def auto_scale(x: np.ndarray) -> tuple[float | None, str]:
    """The raw -> float step implied by the stored dtype: (scale, "") or (None, why it cannot tell).

    uint8 -> 1/255 and uint16 -> 1/65535 whatever the shape; other integer images by their range
    (0..1 -> 1, up to 255 -> 1/255, beyond: unknown bit depth); other integer tables and floats -> 1.
    """
    if x.dtype == np.uint8:
        return UINT8_SCALE, ""
    if x.dtype == np.uint16:
        return UINT16_SCALE, ""
    if not np.issubdtype(x.dtype, np.integer) or x.ndim != 4 or x.size == 0:
        return 1.0, ""
    low, high = int(x.min()), int(x.max())
    if low >= 0 and high <= 1:
        return 1.0, ""
    if low >= 0 and high <= 255:
        return UINT8_SCALE, ""
    return None, f"the images are {x.dtype} with values {low}..{high}, so their bit depth is unknown"


def _to_nchw(x: np.ndarray, source: Path) -> np.ndarray:
    """(N, H, W) -> (N, 1, H, W); (N, H, W, C) with C in 1/3/4 -> (N, C, H, W); (N, F) and NCHW kept."""
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # (N, H, W, C) -> (N, C, H, W)
    if x.ndim in (2, 4):
        return x
    raise DataError(f"{source}: samples of shape {x.shape[1:]} are neither images nor feature vectors",
                    hint="use (N, H, W), (N, H, W, C), (N, C, H, W) or (N, features)")  # fmt: skip


def read_image_folder(path: Path, image_size: tuple[int, int] | None = None) -> RawData:
    """One subfolder per class; see `edgekd.data.images`. 8-bit -> 1/255, 16-bit -> 1/65535, float -> 1."""
    from edgekd.data.images import DEPTH_DTYPE
    from edgekd.data.images import read_image_folder as read_folder

    x, y, names, depth = read_folder(path, image_size)
    raw_dtype, scale = DEPTH_DTYPE[depth]
    return RawData(x, y, names, scale, raw_dtype)


def read_csv(path: Path, label_column: str = "label") -> RawData:
    """A table with a header row: `label_column` holds the class, every other column a numeric feature.

    Numeric labels are compared as numbers (`1`, `1.0` and `01` are one class, named "1"); other labels
    as text. Classes are sorted: numbers by value first, then text.
    """
    _require(path, "CSV file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read CSV {path}: {exc}") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise DataError(f"{path} is empty", hint="a header row and one row per sample")
    header = [h.strip() for h in rows[0]]
    if label_column not in header:
        raise DataError(f"{path} has no column {label_column!r}; columns: {header}", hint="set [data] label_column")
    if header.count(label_column) > 1:
        raise DataError(
            f"{path} has {header.count(label_column)} columns named {label_column!r}", hint="rename all but one"
        )
    label_at = header.index(label_column)
    body = rows[1:]
    features, labels = [], []
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataError(f"{path}:{line}: {len(row)} cells but {len(header)} columns")
        labels.append(canonical_label(row[label_at], f"{path}:{line}"))
        try:
            features.append([float(cell) for i, cell in enumerate(row) if i != label_at])
        except ValueError:
            bad = next(c for i, c in enumerate(row) if i != label_at and not _is_number(c))
            raise DataError(f"{path}:{line}: feature value {bad!r} is not a number",
                            hint="CSV features must be numeric; encode categories as numbers first") from None  # fmt: skip
    names = sorted(set(labels), key=_label_order)
    index = {name: i for i, name in enumerate(names)}
    x = np.array(features, dtype=np.float32).reshape(len(body), len(header) - 1)  # CSV units, as float32
    return RawData(x, np.array([index[v] for v in labels], dtype=np.int64), names, 1.0, "float32")


def canonical_label(cell: str, where: str) -> str:
    """One name per class: a finite number in its shortest form ("1.0", "01", "1e0" -> "1"), text stripped."""
    text = cell.strip()
    if not text:
        raise DataError(f"{where}: the label is empty", hint="give every row a class, or remove the row")
    try:
        value = float(text)
    except ValueError:
        return text
    if not math.isfinite(value):
        raise DataError(f"{where}: label {text!r} is not a class (a missing value?)",
                        hint="give every row a class, or remove the row")  # fmt: skip
    return str(int(value)) if value.is_integer() else repr(value)


def _label_order(name: str) -> tuple[int, float, str]:
    return (0, float(name), name) if _is_number(name) else (1, 0.0, name)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
