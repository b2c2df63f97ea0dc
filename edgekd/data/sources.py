"""Readers for the data sources a recipe can name: .npz arrays, an image folder, a CSV table.

Each returns (x, y, label_names) with x float32 — images as (N, C, H, W), tables as (N, F) — and y
int64 class indices. Nothing is resized, reordered or coerced without saying so in an error.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from edgekd.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm", ".tif", ".tiff", ".webp")


def _require(path: Path, kind: str) -> None:
    if not path.exists():
        raise DataError(f"{kind} {path} does not exist", hint="[data] path is taken relative to the recipe file")


def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Arrays `x` (N, ...) and `y` (N,) and optionally `label_names`; integer images are scaled to 0..1."""
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
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise DataError(f"{path}: labels 'y' must be integer class indices (got dtype {y.dtype})")
    x = _as_float(x)
    x = _to_nchw(x, path)
    if len(y) and y.min() < 0:
        raise DataError(f"{path}: labels must be >= 0, found {int(y.min())}", hint="use class indices 0..K-1")
    if "label_names" in arrays:
        names = [str(n) for n in arrays["label_names"]]
    else:
        names = [str(i) for i in range(int(y.max()) + 1 if len(y) else 0)]
    return x, y.astype(np.int64), names


def _as_float(x: np.ndarray) -> np.ndarray:
    if np.issubdtype(x.dtype, np.integer):
        return (x.astype(np.float32) / 255.0) if x.max(initial=0) > 1 else x.astype(np.float32)
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"samples must be numeric, got dtype {x.dtype}")
    return x.astype(np.float32)


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


def read_image_folder(path: Path, image_size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One subfolder per class (sorted names); all images the same size unless `image_size` (H, W) is given."""
    from PIL import Image, UnidentifiedImageError

    _require(path, "image folder")
    classes = sorted(d.name for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(f"{path} has no class subfolders", hint="put each class's images in its own subfolder: root/cat/1.png")
    files: list[tuple[Path, int]] = []
    for index, name in enumerate(classes):
        files += [(f, index) for f in sorted((path / name).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise DataError(f"{path}: the class folders hold no images ({', '.join(IMAGE_SUFFIXES)})")
    images = []
    for file, _ in files:
        try:
            with Image.open(file) as image:
                images.append(image.convert("RGB") if image.mode not in ("L", "RGB") else image.copy())
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"cannot read image {file}: {exc}", hint="remove or replace the file") from None
    mode = "RGB" if any(im.mode == "RGB" for im in images) else "L"
    sizes = {im.size for im in images}  # PIL sizes are (W, H)
    if image_size is None and len(sizes) > 1:
        raise DataError(f"{path}: images have {len(sizes)} different sizes, e.g. {sorted(sizes)[:3]} (W, H)",
                        hint="set [data] image_size = [H, W] to resize them all")  # fmt: skip
    target = (image_size[1], image_size[0]) if image_size else next(iter(sizes))
    arrays = [np.asarray(im.convert(mode).resize(target) if im.size != target else im.convert(mode), dtype=np.float32) / 255.0 for im in images]
    x = np.stack(arrays)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)  # (N, H, W[, C]) -> (N, C, H, W)
    y = np.array([label for _, label in files], dtype=np.int64)
    return np.ascontiguousarray(x), y, classes


def read_csv(path: Path, label_column: str = "label") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A table with a header row: `label_column` holds the class, every other column a numeric feature."""
    _require(path, "CSV file")
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read CSV {path}: {exc}") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise DataError(f"{path} is empty", hint="a header row and one row per sample")
    header = [h.strip() for h in rows[0]]
    if label_column not in header:
        raise DataError(f"{path} has no column {label_column!r}; columns: {header}", hint="set [data] label_column")
    label_at = header.index(label_column)
    body = rows[1:]
    features, labels = [], []
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataError(f"{path}:{line}: {len(row)} cells but {len(header)} columns")
        labels.append(row[label_at].strip())
        try:
            features.append([float(cell) for i, cell in enumerate(row) if i != label_at])
        except ValueError:
            bad = next(c for i, c in enumerate(row) if i != label_at and not _is_number(c))
            raise DataError(f"{path}:{line}: feature value {bad!r} is not a number",
                            hint="CSV features must be numeric; encode categories as numbers first") from None  # fmt: skip
    names = sorted(set(labels), key=lambda v: (0, float(v), v) if _is_number(v) else (1, 0.0, v))
    index = {name: i for i, name in enumerate(names)}
    x = np.array(features, dtype=np.float32).reshape(len(body), len(header) - 1)
    return x, np.array([index[v] for v in labels], dtype=np.int64), names


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
