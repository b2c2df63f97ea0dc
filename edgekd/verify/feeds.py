"""Samples for a model with several inputs: one array per input name, from the user's .npz or seeded random.

A single-input model is fed the data set's held-out split; a multi-input ONNX model (two images, ids and a
mask...) has no data set edgekd knows, so `verify` takes `--data` with one array per input name (labels `y`
optional), or else draws seeded random inputs of the model's own shapes: enough to check that the model
runs and, with `--reference`, that two models agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from edgekd.artifacts import Artifact, TensorSpec
from edgekd.errors import DataError, ModelError

RANDOM_SAMPLES = 64
RANDOM_SEED = 0


class Feeds(NamedTuple):
    x: dict[str, np.ndarray]  # input name -> (N, ...) samples
    y: np.ndarray | None  # labels, when the .npz had them
    source: str  # where the samples came from, for the report line ("<n> <source>")


def input_specs(artifact: Artifact) -> tuple[TensorSpec, ...]:
    """The model's inputs as the file declares them (the sidecar may be absent)."""
    from edgekd.verify.model_io import load_onnx, onnx_tensor_specs, tflite_tensor_specs

    if artifact.format == "onnx":
        return onnx_tensor_specs(load_onnx(artifact.path, check=False))[0]
    if artifact.format == "tflite":
        return tflite_tensor_specs(artifact.path)[0]
    return artifact.inputs


def multi_input_feeds(artifact: Artifact, specs: tuple[TensorSpec, ...], data: Path | None) -> Feeds:
    """One array per input: from `data` (arrays named like the inputs, labels `y`), else seeded random."""
    names = [spec.name for spec in specs]
    if artifact.format != "onnx":
        raise ModelError(
            f"{artifact.path.name} has {len(specs)} inputs ({', '.join(names)}); edgekd verifies "
            f"multi-input models as ONNX only",
            hint="verify the ONNX model this file was converted from",
        )
    if data is not None:
        return _from_npz(data, names)
    x = {spec.name: _random(spec, np.random.default_rng([RANDOM_SEED, index])) for index, spec in enumerate(specs)}
    return Feeds(x, None, "seeded random inputs (no labels: agreement and error only)")


def _from_npz(data: Path, names: list[str]) -> Feeds:
    try:
        with np.load(data, allow_pickle=False) as archive:
            missing = [name for name in names if name not in archive.files]
            if missing:
                raise DataError(
                    f"{data} has no array for input(s) {', '.join(missing)} (it has {', '.join(archive.files) or 'none'})",
                    hint=f"store one array per model input, named {', '.join(names)}, and labels as y",
                )
            x = {name: archive[name] for name in names}
            label_key = next((key for key in ("y", "y_test") if key in archive.files), None)
            y = archive[label_key].astype(np.int64) if label_key else None
    except (OSError, ValueError) as exc:
        raise DataError(
            f"{data} is not a readable .npz: {exc}", hint=f"store one array per model input, named {', '.join(names)}"
        ) from None
    counts = {name: len(array) for name, array in x.items()}
    if len(set(counts.values())) != 1 or (y is not None and len(y) != len(x[names[0]])):
        raise DataError(
            f"{data}: the arrays hold different numbers of samples ({counts}{', y: ' + str(len(y)) if y is not None else ''})",
            hint="give the same number of samples for every input and label",
        )
    return Feeds(x, y, f"samples from {data.name}")


def _random(spec: TensorSpec, rng: np.random.Generator) -> np.ndarray:
    """RANDOM_SAMPLES samples of one input: standard normal floats, zeros for integer/bool inputs (valid ids, masks)."""
    per_sample = spec.shape[1:]
    symbolic = [d for d in per_sample if not isinstance(d, int) or d <= 0]
    if symbolic:
        raise DataError(
            f"input {spec.name} has symbolic dimensions {symbolic}: edgekd cannot guess its samples' shape",
            hint=f"give --data with an array named {spec.name} (and one per other input)",
        )
    shape = (RANDOM_SAMPLES, *(int(d) for d in per_sample))
    if spec.dtype.startswith("float"):
        return rng.standard_normal(shape).astype(spec.dtype)
    return np.zeros(shape, dtype=spec.dtype if spec.dtype != "unknown" else np.float32)
