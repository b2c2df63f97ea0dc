"""One calibration set, drawn from the training split, shared by every int8 quantizer.

ORT static QDQ and TFLite full-int8 are calibrated on exactly the same samples, so a difference between
them is the converter's, never the data's. The set is an `.npz` (`x`: float32, preprocessed, in the
layout recorded in the sidecar; `ids`: sample ids into the source) with a sidecar naming its
preprocessing and sha256.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgekd.artifacts import Artifact, TensorSpec, create_artifact
from edgekd.errors import DataError
from edgekd.fileio import atomic_path

if TYPE_CHECKING:
    from edgekd.data.datasets import Dataset

NAME = "calibration"


def make_calibration_set(data: Dataset, size: int, seed: int, out_path: Path) -> Artifact:
    """Draw `size` training samples (seeded, without replacement) and write them with a sidecar."""
    available = len(data.x_train)
    if size < 1:
        raise DataError(f"calibration size must be at least 1, got {size}", hint="set [calibration] size = 200")
    if size > available:
        raise DataError(
            f"calibration size {size} exceeds the {available} training samples",
            hint=f"set [calibration] size to at most {available}",
        )
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(available, size=size, replace=False))
    x = np.ascontiguousarray(data.x_train[rows], dtype=np.float32)
    ids = data.ids_train[rows] if data.ids_train is not None else rows
    layout = str(data.preprocessing.get("layout") or ("NCHW" if x.ndim == 4 else "NC"))
    check_samples(x, layout, source="the training split")

    out = Path(out_path)
    with atomic_path(out, suffix=".npz") as tmp, open(tmp, "wb") as handle:
        np.savez(handle, x=x, ids=np.asarray(ids, dtype=np.int64))
    return create_artifact(
        out,
        name=NAME,
        format="npz",
        inputs=(TensorSpec(name="x", shape=tuple(int(d) for d in x.shape), dtype="float32", layout=layout),),
        producer="calibration",
        config={
            "size": size,
            "seed": seed,
            "split": "train",
            "layout": layout,
            "sample_ids": [int(i) for i in ids],
            "preprocessing": dict(data.preprocessing),
        },
    )


def check_samples(x: np.ndarray, layout: str, *, source: str) -> None:
    """Refuse samples a quantizer would silently mis-calibrate on: none at all, NaN/Inf, wrong rank for the layout."""
    if x.ndim == 0 or len(x) == 0:
        raise DataError(
            f"the calibration set from {source} holds no samples (array 'x' has shape {tuple(x.shape)})",
            hint="a quantizer needs real samples to choose its scales: give an .npz whose 'x' has at least one sample "
            "(a run's calibration.npz holds [calibration] size samples)",
        )
    rank = {"NCHW": 4, "NHWC": 4, "NCW": 3, "NC": 2}.get(layout)
    if rank is not None and x.ndim != rank:
        raise DataError(
            f"calibration samples from {source} have shape {tuple(x.shape)}, which is not {layout}",
            hint=f"calibration data must be a float array of rank {rank} ({layout}), the model's input layout",
        )
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(
            f"calibration samples from {source} are {x.dtype}, not float", hint="store preprocessed float32 samples"
        )
    finite = np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if not finite.all():
        raise DataError(
            f"{int((~finite).sum())} of {len(x)} calibration samples from {source} contain NaN or Inf",
            hint="clean the data set; a quantizer calibrated on NaN produces garbage scales",
        )


def load_calibration(artifact: Artifact, input_shape: tuple[int | str, ...], *, layout: str = "NCHW") -> np.ndarray:
    """The calibration samples as float32 in `layout`, checked against the model's input shape.

    `input_shape` is the model input's full shape (batch first, possibly symbolic). Samples stored NCHW
    are transposed to NHWC when a converter asks for it, and vice versa.
    """
    try:
        with np.load(artifact.path, allow_pickle=False) as archive:
            x = archive["x"]
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(
            f"{artifact.path} is not a readable calibration set: {exc}", hint="rerun the calibration stage"
        ) from None
    stored = str(artifact.config.get("layout", "NCHW"))
    check_samples(x, stored, source=artifact.path.name)
    if stored != layout and {stored, layout} == {"NCHW", "NHWC"}:
        x = x.transpose(0, 2, 3, 1) if layout == "NHWC" else x.transpose(0, 3, 1, 2)  # (N,C,H,W) <-> (N,H,W,C)
    expected = tuple(input_shape[1:])
    if len(expected) != x.ndim - 1 or any(isinstance(e, int) and e != a for e, a in zip(expected, x.shape[1:])):
        raise DataError(
            f"calibration samples have shape {tuple(x.shape[1:])} per sample, the model expects {expected} ({layout})",
            hint="the calibration set was made for another model or data set: rerun the calibration stage",
        )
    return x.astype(np.float32, copy=False)
