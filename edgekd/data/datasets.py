"""Load a data set, normalise it and split it (seeded) into train / val / test.

Arrays are float32, images in NCHW. The preprocessing (mean, std, layout) is recorded so the handoff
and the runtime side can apply exactly the same transform.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.config.data import DataConfig
from edgekd.errors import DataError


@dataclass
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    label_names: list[str]
    preprocessing: dict[str, Any] = field(default_factory=dict)  # {"mean", "std", "layout", "scale"}
    ids_train: np.ndarray | None = None  # stable sample ids (index into the source)
    ids_val: np.ndarray | None = None
    ids_test: np.ndarray | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def save(self, path: Path) -> None:
        """Write every split to one reproducible .npz (atomically); no pickled objects inside."""
        from edgekd.fileio import save_npz

        arrays = {k: v for k, v in vars(self).items() if isinstance(v, np.ndarray)}
        save_npz(path, {"label_names": np.array(self.label_names, dtype=str), **arrays})

    @staticmethod
    def load(path: Path, preprocessing: dict[str, Any] | None = None) -> Dataset:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        names = [str(n) for n in arrays.pop("label_names")]
        return Dataset(label_names=names, preprocessing=dict(preprocessing or {}), **arrays)


def load_dataset(config: DataConfig, seed: int, base: Path | None = None) -> Dataset:
    """Load the configured source and split it. Raises DataError on empty or malformed data."""
    if config.source == "digits":
        x, y, names = _digits()
    else:
        raise DataError(f"data source {config.source!r} is not available yet", hint="use source = \"digits\"")
    check_arrays(x, y, len(names))
    return split(x, y, names, config, seed)


def _digits() -> tuple[np.ndarray, np.ndarray, list[str]]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]  # (N, 8, 8) in 0..16 -> (N, 1, 8, 8) in 0..1
    return x, bunch.target.astype(np.int64), [str(n) for n in bunch.target_names]


def check_arrays(x: np.ndarray, y: np.ndarray, num_classes: int) -> None:
    if len(x) == 0:
        raise DataError("the data set is empty", hint="point the recipe's [data] path at a file with samples")
    if len(x) != len(y):
        raise DataError(f"{len(x)} samples but {len(y)} labels", hint="every sample needs exactly one label")
    if not np.all(np.isfinite(x)):
        bad = int(np.sum(~np.isfinite(x).reshape(len(x), -1).all(axis=1)))
        raise DataError(f"{bad} samples contain NaN or Inf", hint="clean or drop them before training")
    if y.min() < 0 or y.max() >= num_classes:
        raise DataError(
            f"labels must lie in 0..{num_classes - 1}, found {int(y.min())}..{int(y.max())}",
            hint="check the label column, or the class list",
        )


def split(x: np.ndarray, y: np.ndarray, names: list[str], config: DataConfig, seed: int) -> Dataset:
    """Stratified, seeded split; normalisation statistics from the training split only."""
    from sklearn.model_selection import train_test_split

    ids = np.arange(len(x))
    try:
        ids_rest, ids_test = train_test_split(ids, test_size=config.test_fraction, random_state=seed, stratify=y)
        val_share = config.val_fraction / (1.0 - config.test_fraction)
        if config.val_fraction > 0:
            ids_train, ids_val = train_test_split(ids_rest, test_size=val_share, random_state=seed, stratify=y[ids_rest])
        else:
            ids_train, ids_val = ids_rest, ids_rest[:0]
    except ValueError as exc:
        raise DataError(f"cannot split the data set: {exc}", hint="use more samples or smaller fractions") from None
    mean = float(x[ids_train].mean())
    std = float(x[ids_train].std()) or 1.0

    def norm(a: np.ndarray) -> np.ndarray:
        return ((a - mean) / std).astype(np.float32)

    layout = "NCHW" if x.ndim == 4 else "NC"
    return Dataset(
        x_train=norm(x[ids_train]), y_train=y[ids_train],
        x_val=norm(x[ids_val]), y_val=y[ids_val],
        x_test=norm(x[ids_test]), y_test=y[ids_test],
        label_names=names,
        preprocessing={"mean": mean, "std": std, "layout": layout, "input_range": [float(x.min()), float(x.max())]},
        ids_train=ids_train, ids_val=ids_val, ids_test=ids_test,
    )
