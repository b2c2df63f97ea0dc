from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from edgekd.config.base import StrictModel


class DataConfig(StrictModel):
    """Where the samples come from and how they are split."""

    source: Literal["digits", "npz", "image_folder", "csv"] = "digits"
    path: Path | None = None  # for npz / image_folder / csv; relative to the recipe file
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    labeled_fraction: float = Field(1.0, gt=0.0, le=1.0)  # share of training labels the student sees
    classes: list[str] | None = None  # keep only these classes (application-specific student)
    other_class: bool = False  # with `classes`: collect the rest into an "other" class
    image_size: list[int] | None = Field(None, min_length=2, max_length=2)  # image_folder: resize all to [H, W]
    label_column: str = "label"  # csv: the column holding the class

    @model_validator(mode="after")
    def _fractions_leave_training_data(self) -> DataConfig:
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError("val_fraction + test_fraction must leave at least 10% for training")
        if self.source != "digits" and self.path is None:
            raise ValueError(f"source = {self.source!r} needs a path")
        if self.other_class and not self.classes:
            raise ValueError("other_class = true needs classes = [...] (the classes to keep)")
        if self.classes is not None and len(set(self.classes)) != len(self.classes):
            raise ValueError("classes lists a class twice")
        return self
