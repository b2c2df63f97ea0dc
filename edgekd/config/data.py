from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from edgekd.config.base import StrictModel, did_you_mean

Source = Literal["digits", "npz", "image_folder", "csv", "idx", "cifar10_binary", "wav"]
IMAGE_SOURCES = (
    "digits",
    "npz",
    "image_folder",
    "idx",
    "cifar10_binary",
)  # sources that can hold images (npz may also hold tables)


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


class AudioConfig(StrictModel):
    """The keyword-spotting frontend of `source = "wav"`: every parameter, defaults the MLPerf Tiny KWS reference's.

    mlcommons/tiny benchmark/training/keyword_spotting (kws_util.py defaults, get_dataset.py feature_type
    "mfcc"): 16 kHz, 1000 ms clips, 30 ms window, 20 ms stride -> 49 frames x 10 MFCCs. Computed by
    `edgekd.data.audio_frontend`; recorded in the data sidecar and the handoff manifest.
    """

    sample_rate: int = Field(16000, ge=1000, description="Sample rate (Hz) every WAV file must have: a file at another "
                             "rate is refused, never resampled; default 16000.")  # fmt: skip
    clip_ms: int = Field(1000, ge=10, description="Clip length (ms): shorter files are zero-padded at the end, longer "
                         "ones cut to their first clip_ms; default 1000.")  # fmt: skip
    window_ms: float = Field(30.0, gt=0.0, description="Analysis window (ms, periodic Hann); default 30 (the reference's "
                             "kws_util.py).")  # fmt: skip
    stride_ms: float = Field(20.0, gt=0.0, description="Hop between windows (ms); default 20.")
    features: Literal["mfcc", "log_mel"] = Field("mfcc", description="\"mfcc\" (DCT of the log-mel energies, the "
                                                "reference's) or \"log_mel\" (the log-mel energies); default mfcc.")  # fmt: skip
    mel_bins: int = Field(40, ge=1, description="Triangular mel filters (HTK mel scale); default 40.")
    lower_hz: float = Field(20.0, ge=0.0, description="Lowest filter edge (Hz); default 20.")
    upper_hz: float = Field(4000.0, gt=0.0, description="Highest filter edge (Hz), at most half the sample rate; "
                            "default 4000.")  # fmt: skip
    coefficients: int = Field(10, ge=1, description="MFCCs kept per frame (features = \"mfcc\"), at most mel_bins; "
                              "default 10.")  # fmt: skip
    log_offset: float = Field(
        1e-6, gt=0.0, description="Added before the natural log: ln(mel + log_offset); default 1e-6."
    )
    peak_normalize: bool = Field(True, description="Divide every clip by its peak |sample| first (the reference "
                                 "normalises by the peak); false: by 32768; default true.")  # fmt: skip

    @property
    def clip_samples(self) -> int:
        return int(self.sample_rate * self.clip_ms / 1000)

    @property
    def window_samples(self) -> int:
        return int(self.sample_rate * self.window_ms / 1000)  # int(), as the reference's prepare_model_settings

    @property
    def stride_samples(self) -> int:
        return int(self.sample_rate * self.stride_ms / 1000)

    @property
    def fft_length(self) -> int:
        return 1 << (self.window_samples - 1).bit_length()  # tf.signal.stft's fft_length=None: next power of two

    @property
    def frames(self) -> int:
        return 1 + (self.clip_samples - self.window_samples) // self.stride_samples

    @property
    def shape(self) -> tuple[int, int]:
        """(frames, features per frame) of one clip."""
        return self.frames, self.coefficients if self.features == "mfcc" else self.mel_bins

    @model_validator(mode="after")
    def _consistent(self) -> AudioConfig:
        if self.window_samples < 2 or self.stride_samples < 1:
            raise ValueError(f"window_ms = {self.window_ms:g} / stride_ms = {self.stride_ms:g} is under one sample at "
                             f"{self.sample_rate} Hz (e.g. window_ms = 30, stride_ms = 20)")  # fmt: skip
        if self.window_samples > self.clip_samples:
            raise ValueError(f"window_ms = {self.window_ms:g} is longer than clip_ms = {self.clip_ms}")
        if not self.lower_hz < self.upper_hz <= self.sample_rate / 2:
            raise ValueError(f"the mel filters need lower_hz < upper_hz <= {self.sample_rate / 2:g} (half the sample "
                             f"rate), got {self.lower_hz:g}..{self.upper_hz:g}")  # fmt: skip
        if self.features == "mfcc" and self.coefficients > self.mel_bins:
            raise ValueError(f"coefficients = {self.coefficients} exceeds mel_bins = {self.mel_bins}")
        return self


class DataConfig(StrictModel):
    """Where the samples come from, how raw values become the student's inputs, and how they are split."""

    source: Source = Field(
        "digits",
        description="Where the samples come from: the bundled scikit-learn digits, an .npz file (arrays x, y, optional "
        'label_names), an image folder (one subfolder per class), a CSV table, "idx" (a folder with MNIST/Fashion-MNIST\'s '
        '{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] files) or "cifar10_binary" (the extracted cifar-10-batches-bin '
        "folder of CIFAR-10's binary version; the pickled python version is refused); default digits. idx and cifar10_binary "
        "pool the files' train and test parts and split them like every source (seeded, stratified): test accuracy is not "
        'measured on the official test files. "wav": a folder with one subfolder of mono 16-bit PCM .wav clips per class '
        "(keyword spotting), turned into MFCC features by [data] audio.",
    )
    path: Path | None = Field(
        None,
        description="File or folder of an npz, image_folder, csv, idx, cifar10_binary or wav source, relative to the "
        "recipe file; required for them.",
    )
    audio: AudioConfig | None = Field(
        None,
        description='source = "wav" only: the audio frontend, e.g. { sample_rate = 16000, window_ms = 30, stride_ms = 20, '
        "coefficients = 10 }; default the MLPerf Tiny keyword-spotting reference's (49 frames x 10 MFCCs of 1 s at 16 kHz).",
    )
    label_set: Literal["mnist", "fashion_mnist"] | None = Field(
        None,
        description='source = "idx" only, and required there (IDX files do not name their classes): "mnist" names the '
        'classes 0..9, "fashion_mnist" T-shirt/top, Trouser, ... Ankle boot.',
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
        description='With `classes`: collect every other class into one extra class named "other" instead of dropping '
        "those samples; default false.",
    )
    image_size: list[int] | None = Field(
        None,
        min_length=2,
        max_length=2,
        description="Resize every image to [H, W] pixels (bilinear, antialiased) before scaling; for digits, npz images "
        "and image folders, refused for csv and wav; default none (keep the size; an image folder's images must then match).",
    )
    label_column: str = Field("label", description='csv only: the column holding the class; default "label".')
    scale: float | None = Field(
        None,
        gt=0.0,
        description="Factor from the stored raw values to floats (x = raw * scale, before normalize); default automatic: "
        "1/255 for uint8, 1/65535 for uint16 (and 16-bit images), 1/16 for digits, 1 for floats and CSV.",
    )
    normalize: Literal["standard", "none"] | NormalizeStats = Field(
        "standard",
        description='After scale: "standard" subtracts the training split\'s mean and divides by its std (one value for '
        'images, one per feature for tables), "none" keeps the scaled values, {mean = [...], std = [...]} uses '
        'the given ones; default "standard".',
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
            maybe = did_you_mean(value, ["standard", "none"])
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
            raise ValueError(
                "source = 'digits' is bundled and takes no path (remove path, or name the source of the file)"
            )
        if self.source == "idx" and self.label_set is None:
            raise ValueError(
                "source = 'idx' needs label_set = 'mnist' or 'fashion_mnist' (IDX files do not name their classes)"
            )
        if self.source != "idx" and self.label_set is not None:
            raise ValueError(f"label_set applies to source = 'idx' only, not {self.source!r}")
        if self.source != "wav" and self.audio is not None:
            raise ValueError(f"audio applies to source = 'wav' only, not {self.source!r}")
        if self.source != "csv" and self.label_column != "label":
            raise ValueError(f"label_column applies to source = 'csv' only, not {self.source!r}")
        if self.source not in IMAGE_SOURCES and self.image_size is not None:
            holds = "audio features" if self.source == "wav" else "tables"
            raise ValueError(
                f"image_size applies to images; source = {self.source!r} holds {holds} (remove image_size)"
            )
        if self.other_class and not self.classes:
            raise ValueError("other_class = true needs classes = [...] (the classes to keep)")
        if self.classes is not None and len(set(self.classes)) != len(self.classes):
            raise ValueError("classes lists a class twice")
        return self
