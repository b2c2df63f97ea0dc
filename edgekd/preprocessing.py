"""How raw stored values become a model's inputs: one declared contract per model artifact.

A device holds *raw* values (uint8 pixels 0..255, the digits' 0..16, a CSV's units). A model was
trained on

    x = (raw * scale - mean) / std          # per channel (images) or per feature (tables)

and, for an int8 input tensor, the device then writes q = round(x / q_scale) + q_zero_point.
`scale` is the integer->float step edgekd applied while loading (1/255, 1/16, 1); `mean`/`std` the
normalisation. Every model artifact records its own `Preprocessing` (a teacher's is what *it* was
trained on, not the student's) in its sidecar, the ONNX metadata and the handoff manifest.

Stored as a plain dict (`to_dict`/`from_dict`) so sidecars stay JSON; dicts written before `scale`
existed read as scale 1 (the values they recorded were already floats).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

PREPROCESSING_FORMULA = "x = (raw * scale - mean) / std"


def _as_tuple(value: Any) -> tuple[float, ...]:
    if value is None:
        return ()
    if isinstance(value, (int, float)):
        return (float(value),)
    return tuple(float(v) for v in value)


@dataclass(frozen=True)
class Preprocessing:
    """raw -> model input. Empty `mean`/`std` mean 0 and 1 (no normalisation)."""

    scale: float = 1.0  # raw -> float step applied at load time (1/255 for uint8 images, 1/16 for digits)
    mean: tuple[float, ...] = ()  # one value for all channels, or one per channel / feature
    std: tuple[float, ...] = ()
    layout: str | None = None  # "NCHW" (images) | "NC" (tables) — of the training arrays
    resize: tuple[int, int] | None = None  # (H, W) the source was resized to, if it was
    raw_dtype: str | None = None  # dtype of the stored raw values ("uint8", "uint16", "float32", ...)
    raw_range: tuple[float, float] | None = None  # (min, max) of the raw values seen in the data
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # other recorded keys, kept as they were

    # --- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Preprocessing:
        data = dict(data or {})
        known = {"scale", "mean", "std", "layout", "resize", "raw_dtype", "raw_range", "formula"}
        resize = data.get("resize")
        raw_range = data.get("raw_range")
        return cls(
            scale=float(data.get("scale", 1.0)),
            mean=_as_tuple(data.get("mean")),
            std=_as_tuple(data.get("std")),
            layout=data.get("layout"),
            resize=(int(resize[0]), int(resize[1])) if resize else None,
            raw_dtype=data.get("raw_dtype"),
            raw_range=(float(raw_range[0]), float(raw_range[1])) if raw_range else None,
            extra={k: v for k, v in data.items() if k not in known},
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; scalars stay scalars so old readers of `mean`/`std` keep working."""
        out: dict[str, Any] = dict(self.extra)
        out["scale"] = self.scale
        if self.mean:
            out["mean"] = self.mean[0] if len(self.mean) == 1 else list(self.mean)
        if self.std:
            out["std"] = self.std[0] if len(self.std) == 1 else list(self.std)
        if self.layout:
            out["layout"] = self.layout
        if self.resize:
            out["resize"] = list(self.resize)
        if self.raw_dtype:
            out["raw_dtype"] = self.raw_dtype
        if self.raw_range:
            out["raw_range"] = list(self.raw_range)
        out["formula"] = PREPROCESSING_FORMULA
        return out

    def with_normalisation(
        self, mean: Sequence[float] | float | None, std: Sequence[float] | float | None
    ) -> Preprocessing:
        return replace(self, mean=_as_tuple(mean), std=_as_tuple(std))

    # --- meaning ------------------------------------------------------------------------------------------
    @property
    def normalises(self) -> bool:
        return bool(self.mean) or bool(self.std)

    def affine(self, channels: int) -> tuple[np.ndarray, np.ndarray]:
        """(a, b) per channel with x = raw * a + b: what firmware computes (float32, shape (channels,))."""
        mean = np.zeros(channels, np.float64) + (np.array(self.mean, np.float64) if self.mean else 0.0)
        std = np.ones(channels, np.float64) * (np.array(self.std, np.float64) if self.std else 1.0)
        return (self.scale / std).astype(np.float32), (-mean / std).astype(np.float32)

    def apply(self, raw: np.ndarray, channel_axis: int = 1) -> np.ndarray:
        """Raw stored values -> model inputs (float32), channel-wise on `channel_axis` (NCHW: 1; NC: 1)."""
        x = np.asarray(raw, dtype=np.float32) * np.float32(self.scale)
        if not self.normalises:
            return x.astype(np.float32)
        shape = [1] * x.ndim
        mean = np.asarray(self.mean or (0.0,), np.float32)
        std = np.asarray(self.std or (1.0,), np.float32)
        if mean.size > 1 or std.size > 1:
            shape[channel_axis] = max(mean.size, std.size)
        return ((x - mean.reshape(shape)) / std.reshape(shape)).astype(np.float32)

    def check(self, channels: int) -> str | None:
        """None when the record fits a model with `channels` channels/features, else what is wrong."""
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (0, 1, channels):
                unit = "channel" if channels == 1 else "channels"
                return (
                    f"{name} has {len(values)} values but the model input has {channels} {unit} (give 1 or {channels})"
                )
        if any(v == 0 or not math.isfinite(v) for v in self.std):
            return "std must be finite and non-zero"
        if not math.isfinite(self.scale) or self.scale <= 0:
            return f"scale must be a positive number, got {self.scale}"
        return None


def reprocess(x: np.ndarray, source: Preprocessing, target: Preprocessing, channel_axis: int = 1) -> np.ndarray:
    """Inputs made with `source` -> the inputs `target` would have made from the same raw values.

    How a teacher trained on other inputs than the student's gets its own view of the same samples:
    raw = (x * std + mean) / scale under `source`, then `target.apply(raw)`.
    """
    x = np.asarray(x, dtype=np.float32)
    if source == target:
        return x
    shape = [1] * x.ndim
    mean = np.asarray(source.mean or (0.0,), np.float32)
    std = np.asarray(source.std or (1.0,), np.float32)
    if mean.size > 1 or std.size > 1:
        shape[channel_axis] = max(mean.size, std.size)
    raw = (x * std.reshape(shape) + mean.reshape(shape)) / np.float32(source.scale)
    return target.apply(raw, channel_axis)
