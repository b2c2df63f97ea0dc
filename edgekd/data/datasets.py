"""Load a data set, split it (seeded, stratified) into train / val / test and make the student's inputs.

Arrays are float32, images in NCHW. Every split is exactly `Preprocessing.apply(raw)` of the stored raw
values (x = (raw * scale - mean) / std); that record (`Dataset.preprocessing`, a dict for JSON) is what the
teacher, the handoff and the runtime side start from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.config.data import DataConfig
from edgekd.data.sources import RawData
from edgekd.data.splitting import split_ids
from edgekd.errors import DataError
from edgekd.preprocessing import Preprocessing


@dataclass
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    label_names: list[str]
    preprocessing: dict[str, Any] = field(
        default_factory=dict
    )  # Preprocessing.to_dict(): scale, mean, std, layout, ...
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
        if (
            self.source_label_names is None
            or self.y_train_source is None
            or self.y_val_source is None
            or self.y_test_source is None
        ):
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
    """Load the configured source, keep the configured classes, split it and apply the preprocessing.

    `labeled_fraction` is not applied here: the split keeps every label and `distill` hides the
    share the student may not see. Raises DataError on empty, malformed or unsplittable data.
    """
    raw = read_source(config, base)
    check_arrays(raw.x, raw.y, len(raw.names))
    kept = None
    if config.limit is not None and config.limit < len(raw.y):
        from dataclasses import replace

        from edgekd.data.standard_formats import stratified_limit

        kept = stratified_limit(raw.y, config.limit, seed)  # indices into the source, sorted
        raw = replace(raw, x=raw.x[kept], y=raw.y[kept])
    scale = _scale(config, raw)
    raw_range = (float(raw.x.min()), float(raw.x.max()))
    x = _resized(config, raw)
    if config.classes is None:
        data = split(x, raw.y, raw.names, config, seed, base_prep=_base_prep(config, raw, scale, raw_range))
    else:
        x, y_student, y_source, student_names = class_subset(x, raw.y, raw.names, config.classes, config.other_class)
        if kept is not None:
            kept = kept[np.isin(raw.y, [raw.names.index(n) for n in config.classes]) | config.other_class]
        data = split(x, y_student, student_names, config, seed, y_source=y_source, source_names=raw.names,
                     other_label=OTHER if config.other_class else None,
                     base_prep=_base_prep(config, raw, scale, raw_range))  # fmt: skip
    if kept is not None:  # ids stay indices into the whole source, not into the subset
        data.ids_train, data.ids_val, data.ids_test = kept[data.ids_train], kept[data.ids_val], kept[data.ids_test]
    return data


def read_source(config: DataConfig, base: Path | None) -> RawData:
    """The configured source's stored values (images resized by the image folder reader only)."""
    from edgekd.data import sources

    if config.source == "digits":
        return sources.read_digits()
    if config.path is None:  # DataConfig refuses this for every source but digits
        raise DataError(f"source = {config.source!r} needs a path", hint="set [data] path")
    path = config.path if config.path.is_absolute() or base is None else base / config.path
    if config.source == "npz":
        return sources.read_npz(path)
    if config.source == "image_folder":
        size = (int(config.image_size[0]), int(config.image_size[1])) if config.image_size else None
        return sources.read_image_folder(path, size)
    if config.source == "idx":
        from edgekd.data import standard_formats as formats

        names = formats.FASHION_MNIST_LABELS if config.label_set == "fashion_mnist" else formats.MNIST_LABELS
        return formats.read_idx_source(path, names)
    if config.source == "cifar10_binary":
        from edgekd.data.standard_formats import read_cifar10_source

        return read_cifar10_source(path)
    if config.source == "wav":
        from edgekd.config.data import AudioConfig
        from edgekd.data.wav_folder import read_wav_folder

        return read_wav_folder(path, config.audio or AudioConfig.model_validate({}))
    return sources.read_csv(path, config.label_column)


def _scale(config: DataConfig, raw: RawData) -> float:
    if config.scale is not None:
        return float(config.scale)
    if raw.scale is None:
        raise DataError(f"cannot tell how to scale the raw values: {raw.scale_note}",
                        hint="set [data] scale = 1 / (the largest level), e.g. 0.000244140625 for 12-bit images, "
                             "or store 8-bit images as uint8 and 16-bit ones as uint16")  # fmt: skip
    return raw.scale


def _resized(config: DataConfig, raw: RawData) -> np.ndarray:
    """digits / npz images resized to `image_size` (the image folder reader resizes its own files)."""
    if config.image_size is None or config.source == "image_folder":
        return raw.x
    if not raw.is_image:
        raise DataError(f"image_size applies to images, but {config.path} holds feature vectors of shape {raw.x.shape[1:]}",
                        hint="remove [data] image_size, or store images as (N, H, W[, C]) / (N, C, H, W)")  # fmt: skip
    from edgekd.data.images import resize_images

    return resize_images(raw.x, config.image_size)


def _base_prep(config: DataConfig, raw: RawData, scale: float, raw_range: tuple[float, float]) -> Preprocessing:
    """Everything but the normalisation, which needs the training split."""
    from edgekd.data.images import RESIZE_FILTER

    resize = (int(config.image_size[0]), int(config.image_size[1])) if config.image_size else None
    extra: dict[str, Any] = {"normalize": config.normalize if isinstance(config.normalize, str) else "given"}
    if resize:
        extra["resize_filter"] = RESIZE_FILTER
    if config.source == "wav":  # the "raw" values are the frontend's features: firmware computes them first
        from edgekd.config.data import AudioConfig
        from edgekd.data.audio_frontend import frontend_record

        extra["audio_frontend"] = frontend_record(config.audio or AudioConfig.model_validate({}))
    return Preprocessing(scale=scale, layout="NCHW" if raw.is_image else "NC", resize=resize,
                         raw_dtype=raw.raw_dtype, raw_range=raw_range, extra=extra)  # fmt: skip


def class_subset(
    x: np.ndarray, y: np.ndarray, names: list[str], keep: list[str], other: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
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
        raise DataError(
            f"the data already has a class named {OTHER!r}", hint="list it in classes instead of other_class"
        )
    lookup = np.full(len(names), len(keep) if other else -1, dtype=np.int64)  # source index -> student index
    for student_index, name in enumerate(keep):
        lookup[names.index(name)] = student_index
    y_student = lookup[y]
    chosen = np.flatnonzero(y_student >= 0)
    if len(chosen) == 0:
        raise DataError(f"no samples belong to the classes {keep}")
    student_names = list(keep) + ([OTHER] if other else [])
    return x[chosen], y_student[chosen], y[chosen], student_names


def check_arrays(x: np.ndarray, y: np.ndarray, num_classes: int) -> None:
    if len(x) == 0:
        raise DataError("the data set is empty", hint="point the recipe's [data] path at a file with samples")
    if len(x) != len(y):
        raise DataError(f"{len(x)} samples but {len(y)} labels", hint="every sample needs exactly one label")
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        bad = int(np.sum(~np.isfinite(x).reshape(len(x), -1).all(axis=1)))
        raise DataError(f"{bad} samples contain NaN or Inf", hint="clean or drop them before training")
    if y.min() < 0 or y.max() >= num_classes:
        raise DataError(
            f"labels must lie in 0..{num_classes - 1}, found {int(y.min())}..{int(y.max())}",
            hint=f"there are {num_classes} class names (an npz's label_names): name every class index, or fix the labels",
        )


def split(x: np.ndarray, y: np.ndarray, names: list[str], config: DataConfig, seed: int, *, y_source: np.ndarray | None = None,
          source_names: list[str] | None = None, other_label: str | None = None,
          base_prep: Preprocessing | None = None) -> Dataset:  # fmt: skip
    """Stratified, seeded split; then every split is `prep.apply(raw)` with the normalisation fitted on train.

    `x` holds raw stored values; `base_prep` their scale and provenance (default: scale 1, as given).
    """
    ids_train, ids_val, ids_test = split_ids(y, names, config.val_fraction, config.test_fraction, seed)
    layout = "NCHW" if x.ndim == 4 else "NC"
    prep = base_prep or Preprocessing(layout=layout, raw_dtype=str(x.dtype), extra={"normalize": "standard"})
    prep = fit_normalisation(prep, config, x[ids_train])
    sources = {}
    if y_source is not None:
        sources = {"y_train_source": y_source[ids_train], "y_val_source": y_source[ids_val], "y_test_source": y_source[ids_test],
                   "source_label_names": source_names, "other_label": other_label}  # fmt: skip
    return Dataset(
        x_train=prep.apply(x[ids_train]), y_train=y[ids_train],
        x_val=prep.apply(x[ids_val]), y_val=y[ids_val],
        x_test=prep.apply(x[ids_test]), y_test=y[ids_test],
        label_names=names,
        preprocessing=prep.to_dict(),
        ids_train=ids_train, ids_val=ids_val, ids_test=ids_test, **sources,
    )  # fmt: skip


def fit_normalisation(prep: Preprocessing, config: DataConfig, raw_train: np.ndarray) -> Preprocessing:
    """mean/std as float32-exact values: fitted on the scaled training split, given, or 0/1 for "none".

    "standard": images share one mean/std (a scalar each); tables get one per feature, since their
    columns have unrelated units (a constant feature keeps std 1). Statistics are summed in float64.
    """
    channels = raw_train.shape[1]
    if config.normalize == "none":
        return prep.with_normalisation(0.0, 1.0)
    if not isinstance(config.normalize, str):
        given = prep.with_normalisation(config.normalize.mean, config.normalize.std)
        problem = given.check(channels)
        if problem:
            unit = "channels" if raw_train.ndim == 4 else "features"
            raise DataError(f"[data] normalize does not fit the data: {problem.replace('channels', unit)}",
                            hint=f"give one value, or one per {unit[:-1]} ({channels})")  # fmt: skip
        return given
    scaled = raw_train.astype(np.float64) * np.float64(np.float32(prep.scale))
    axis = 0 if raw_train.ndim == 2 else None
    mean = np.asarray(scaled.mean(axis=axis), np.float32)
    std = np.asarray(scaled.std(axis=axis), np.float32)
    std[std == 0] = 1.0
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
        raise DataError("the training data's mean or std does not fit in float32 (values near 3.4e38)",
                        hint="rescale the data, e.g. [data] scale = 1e-6")  # fmt: skip
    return prep.with_normalisation(mean.ravel().tolist(), std.ravel().tolist())
