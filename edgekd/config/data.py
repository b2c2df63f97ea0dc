from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from edgekd.config.base import StrictModel

Source = Literal["digits", "npz", "image_folder", "csv", "idx", "cifar10_binary"]
IMAGE_SOURCES = ("digits", "npz", "image_folder", "idx", "cifar10_binary")  # sources that can hold images (npz may also hold tables)


class NormalizeStats(StrictModel):
    """Given normalisation statistics: x = (raw * scale - mean) / std."""

    mean: list[float] = Field(
        min_length=1,
        description="Subtracted after `scale`: one value for every channel/feature, or one per channel (images) or per "
        "feature (tables); in the units after scaling (0..1 for uint8 images).",
    )
    std: list[float] = Field(
        min_length=1,
        description="Divided by after subtracting `mean`: one positive value, or one per channel/feature (same units as mean).",
    )

    @field_validator("mean", "std", mode="before")
    @classmethod
    def _scalar_to_list(cls, value: object) -> object:
        return [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _finite_positive(self) -> NormalizeStats:
        if not all(math.isfinite(v) for v in self.mean):
            raise ValueError("mean values must be finite numbers")
        if not all(math.isfinite(v) and v > 0 for v in self.std):
            raise ValueError("std values must be finite and greater than 0")
        if len(self.mean) > 1 and len(self.std) > 1 and len(self.mean) != len(self.std):
            raise ValueError(f"{len(self.mean)} mean values but {len(self.std)} std values")
        return self


class DataConfig(StrictModel):
    """Where the samples come from, how raw values become the student's inputs, and how they are split."""

    source: Source = Field(
        "digits",
        description="Where the samples come from: the bundled scikit-learn digits, an .npz file (arrays x, y, optional "
        "label_names), an image folder (one subfolder per class), a CSV table, \"idx\" (a folder with MNIST/Fashion-MNIST's "
        "{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] files) or \"cifar10_binary\" (the extracted cifar-10-batches-bin "
        "folder of CIFAR-10's binary version; the pickled python version is refused); default digits. idx and cifar10_binary "
        "pool the files' train and test parts and split them like every source (seeded, stratified): test accuracy is not "
        "measured on the official test files.",
    )
    path: Path | None = Field(
        None, description="File or folder of an npz, image_folder, csv, idx or cifar10_binary source, relative to the recipe "
        "file; required for them."
    )
    label_set: Literal["mnist", "fashion_mnist"] | None = Field(
        None,
        description="source = \"idx\" only, and required there (IDX files do not name their classes): \"mnist\" names the "
        "classes 0..9, \"fashion_mnist\" T-shirt/top, Trouser, ... Ankle boot.",
    )
    limit: int | None = Field(
        None,
        ge=1,
        description="Keep a seeded, stratified subset of this many samples (every class keeps its share and at least one "
        "sample), taken from the source before classes and the train/val/test split; for quick runs. Default: all samples.",
    )
    val_fraction: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="Share of all samples held out (stratified) for validation during training, 0 for none; default 0.1.",
    )
    test_fraction: float = Field(
        0.2,
        gt=0.0,
        lt=1.0,
        description="Share of all samples held out (stratified) for the final test accuracy of every model; default 0.2.",
    )
    labeled_fraction: float = Field(
        1.0,
        gt=0.0,
        le=1.0,
        description="Share of the training labels the student may see (the teacher's soft labels cover the rest); default 1.0.",
    )
    classes: list[str] | None = Field(
        None,
        description="Keep only these classes, in this order (an application-specific student); default all classes.",
    )
    other_class: bool = Field(
        False,
        description="With `classes`: collect every other class into one extra class named \"other\" instead of dropping "
        "those samples; default false.",
    )
    image_size: list[int] | None = Field(
        None,
        min_length=2,
        max_length=2,
        description="Resize every image to [H, W] pixels (bilinear, antialiased) before scaling; for digits, npz images "
        "and image folders, refused for csv; default none (keep the size; an image folder's images must then match).",
    )
    label_column: str = Field("label", description="csv only: the column holding the class; default \"label\".")
    scale: float | None = Field(
        None,
        gt=0.0,
        description="Factor from the stored raw values to floats (x = raw * scale, before normalize); default automatic: "
        "1/255 for uint8, 1/65535 for uint16 (and 16-bit images), 1/16 for digits, 1 for floats and CSV.",
    )
    normalize: Literal["standard", "none"] | NormalizeStats = Field(
        "standard",
        description="After scale: \"standard\" subtracts the training split's mean and divides by its std (one value for "
        "images, one per feature for tables), \"none\" keeps the scaled values, {mean = [...], std = [...]} uses "
        "the given ones; default \"standard\".",
    )

    @field_validator("normalize", mode="before")
    @classmethod
    def _one_normalize_message(cls, value: object) -> object:
        """One message per mistake instead of one per member of the union (name | {mean, std})."""
        if isinstance(value, dict):
            try:
                return NormalizeStats.model_validate(value)
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0]
                where = ".".join(str(p) for p in first["loc"])
                message = first["msg"].removeprefix("Value error, ")
                if first["type"] == "extra_forbidden":
                    message = "unknown key; normalize = { mean = [...], std = [...] } takes only mean and std"
                raise ValueError(f"{where}: {message}" if where else message) from None
        if value not in ("standard", "none"):
            close = difflib.get_close_matches(str(value), ["standard", "none"], n=1)
            maybe = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"must be 'standard', 'none' or {{ mean = [...], std = [...] }}{maybe}")
        return value

    @field_validator("image_size")
    @classmethod
    def _positive_size(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(v < 1 for v in value):
            raise ValueError(f"image_size must be two positive numbers [H, W], got {value}")
        return value

    @field_validator("scale")
    @classmethod
    def _finite_scale(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("scale must be a finite positive number, e.g. 0.00392156862745098 (1/255)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DataConfig:
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError("val_fraction + test_fraction must leave at least 10% for training")
        if self.source != "digits" and self.path is None:
            raise ValueError(f"source = {self.source!r} needs a path")
        if self.source == "digits" and self.path is not None:
            raise ValueError("source = 'digits' is bundled and takes no path (remove path, or name the source of the file)")
        if self.source == "idx" and self.label_set is None:
            raise ValueError("source = 'idx' needs label_set = 'mnist' or 'fashion_mnist' (IDX files do not name their classes)")
        if self.source != "idx" and self.label_set is not None:
            raise ValueError(f"label_set applies to source = 'idx' only, not {self.source!r}")
        if self.source != "csv" and self.label_column != "label":
            raise ValueError(f"label_column applies to source = 'csv' only, not {self.source!r}")
        if self.source not in IMAGE_SOURCES and self.image_size is not None:
            raise ValueError(f"image_size applies to images; source = {self.source!r} holds tables (remove image_size)")
        if self.other_class and not self.classes:
            raise ValueError("other_class = true needs classes = [...] (the classes to keep)")
        if self.classes is not None and len(set(self.classes)) != len(self.classes):
            raise ValueError("classes lists a class twice")
        return self
