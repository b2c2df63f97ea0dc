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
    # Class subset (application-specific student): the source's full class list, the catch-all class
    # name when the rest is collected into "other", and every split's labels in source class indices.
    source_label_names: list[str] | None = None
    other_label: str | None = None
    y_train_source: np.ndarray | None = None
    y_val_source: np.ndarray | None = None
    y_test_source: np.ndarray | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def teacher_view(self) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """(class names, y_train, y_val, y_test) in the source's classes: what a builtin teacher learns."""
        if self.source_label_names is None or self.y_train_source is None:
            return self.label_names, self.y_train, self.y_val, self.y_test
        return self.source_label_names, self.y_train_source, self.y_val_source, self.y_test_source

    def save(self, path: Path) -> None:
        """Write every split to one reproducible .npz (atomically); no pickled objects inside."""
        from edgekd.fileio import save_npz

        arrays = {k: v for k, v in vars(self).items() if isinstance(v, np.ndarray)}
        if self.source_label_names is not None:
            arrays["source_label_names"] = np.array(self.source_label_names, dtype=str)
        if self.other_label is not None:
            arrays["other_label"] = np.array([self.other_label], dtype=str)
        save_npz(path, {"label_names": np.array(self.label_names, dtype=str), **arrays})

    @staticmethod
    def load(path: Path, preprocessing: dict[str, Any] | None = None) -> Dataset:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        names = [str(n) for n in arrays.pop("label_names")]
        source = arrays.pop("source_label_names", None)
        other = arrays.pop("other_label", None)
        return Dataset(
            label_names=names, preprocessing=dict(preprocessing or {}), **arrays,
            source_label_names=[str(n) for n in source] if source is not None else None,
            other_label=str(other[0]) if other is not None else None,
        )  # fmt: skip


OTHER = "other"  # name of the catch-all class of a class subset


def load_dataset(config: DataConfig, seed: int, base: Path | None = None) -> Dataset:
    """Load the configured source, keep the configured classes, and split it (seeded, stratified).

    `labeled_fraction` is not applied here: the split keeps every label and `distill` hides the
    share the student may not see. Raises DataError on empty or malformed data.
    """
    x, y, names = read_source(config, base)
    check_arrays(x, y, len(names))
    if config.classes is None:
        return split(x, y, names, config, seed)
    x, y_student, y_source, student_names = class_subset(x, y, names, config.classes, config.other_class)
    return split(x, y_student, student_names, config, seed, y_source=y_source, source_names=names,
                 other_label=OTHER if config.other_class else None)  # fmt: skip


def read_source(config: DataConfig, base: Path | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from edgekd.data import sources

    if config.source == "digits":
        return _digits()
    path = config.path if config.path is None or config.path.is_absolute() or base is None else base / config.path
    if config.source == "npz":
        return sources.read_npz(path)
    if config.source == "image_folder":
        return sources.read_image_folder(path, tuple(config.image_size) if config.image_size else None)
    return sources.read_csv(path, config.label_column)


def class_subset(x: np.ndarray, y: np.ndarray, names: list[str], keep: list[str], other: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Keep the named classes (in the given order); the rest is dropped, or relabelled "other".

    Returns (x, student labels, source labels, student class names).
    """
    import difflib

    for name in keep:
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = (f"did you mean {close[0]!r}? " if close else "") + f"classes in the data: {', '.join(names)}"
            raise DataError(f"class {name!r} is not in the data set", hint=hint)
    if other and OTHER in names:
        raise DataError(f"the data already has a class named {OTHER!r}", hint="list it in classes instead of other_class")
    lookup = np.full(len(names), len(keep) if other else -1, dtype=np.int64)  # source index -> student index
    for student_index, name in enumerate(keep):
        lookup[names.index(name)] = student_index
    y_student = lookup[y]
    chosen = np.flatnonzero(y_student >= 0)
    if len(chosen) == 0:
        raise DataError(f"no samples belong to the classes {keep}")
    student_names = list(keep) + ([OTHER] if other else [])
    return x[chosen], y_student[chosen], y[chosen], student_names


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


def split(x: np.ndarray, y: np.ndarray, names: list[str], config: DataConfig, seed: int, *, y_source: np.ndarray | None = None,
          source_names: list[str] | None = None, other_label: str | None = None) -> Dataset:  # fmt: skip
    """Stratified, seeded split; normalisation statistics from the training split only.

    Images share one mean/std (a scalar each); tables get one mean/std per feature (lists), since
    their columns have unrelated units.
    """
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
    layout = "NCHW" if x.ndim == 4 else "NC"
    if layout == "NC":
        mean_v = x[ids_train].mean(axis=0)
        std_v = x[ids_train].std(axis=0)
        std_v[std_v == 0] = 1.0
        mean: Any = [float(v) for v in mean_v]
        std: Any = [float(v) for v in std_v]
    else:
        mean_v = np.float32(x[ids_train].mean())
        std_v = np.float32(x[ids_train].std() or 1.0)
        mean, std = float(mean_v), float(std_v)

    def norm(a: np.ndarray) -> np.ndarray:
        return ((a - mean_v) / std_v).astype(np.float32)

    sources = {}
    if y_source is not None:
        sources = {"y_train_source": y_source[ids_train], "y_val_source": y_source[ids_val], "y_test_source": y_source[ids_test],
                   "source_label_names": source_names, "other_label": other_label}  # fmt: skip
    return Dataset(
        x_train=norm(x[ids_train]), y_train=y[ids_train],
        x_val=norm(x[ids_val]), y_val=y[ids_val],
        x_test=norm(x[ids_test]), y_test=y[ids_test],
        label_names=names,
        preprocessing={"mean": mean, "std": std, "layout": layout, "input_range": [float(x.min()), float(x.max())]},
        ids_train=ids_train, ids_val=ids_val, ids_test=ids_test, **sources,
    )
