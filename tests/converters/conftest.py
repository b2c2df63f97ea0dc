"""Shared, seeded models and conversions for the converter tests (conversions are slow: done once)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekd.artifacts import Artifact, create_artifact
from edgekd.config.data import DataConfig
from edgekd.data.datasets import Dataset, load_dataset
from edgekd.registry import run_converter

MODEL_SPECS = {
    "cnn": {"arch": "cnn", "width": 8, "depth": 2},
    "mobilenet": {"arch": "custom", "factory": "tests.support.tiny_models:mobilenet_silu"},
    "transformer": {"arch": "custom", "factory": "tests.support.tiny_models:tiny_transformer"},
}

TFLITE_PRECISIONS = {"cnn": ["fp32", "fp16", "dynamic_range", "int8"], "mobilenet": ["fp32", "fp16", "int8"]}


@pytest.fixture(scope="session")
def digits() -> Dataset:
    return load_dataset(DataConfig(), seed=0)


def train_torch_artifact(spec: dict, data: Dataset, out_dir: Path, *, epochs: int = 12) -> Artifact:
    """Train `spec` briefly on digits (seeded) and save it as an edgekd torch artifact."""
    import torch

    from edgekd.distill import models

    torch.manual_seed(0)
    model = models.build_model(spec, data.input_shape, data.num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 64):
            batch = order[start : start + 64]
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "student.pt"
    models.save_state_dict(model, path)
    return create_artifact(
        path,
        name="student_torch",
        format="torch",
        precision="fp32",
        producer="tests",
        config={
            "model": spec,
            "input_shape": list(data.input_shape),
            "num_classes": data.num_classes,
            "label_names": data.label_names,
            "preprocessing": data.preprocessing,
        },
    )


@pytest.fixture(scope="session")
def torch_models(digits: Dataset, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Artifact]:
    base = tmp_path_factory.mktemp("torch")
    return {name: train_torch_artifact(spec, digits, base / name) for name, spec in MODEL_SPECS.items()}


@pytest.fixture(scope="session")
def calibration(digits: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    from edgekd.calibration import make_calibration_set

    return make_calibration_set(digits, 200, 0, tmp_path_factory.mktemp("calibration") / "calibration.npz")


@pytest.fixture(scope="session")
def onnx_models(torch_models: dict[str, Artifact]) -> dict[str, Artifact]:
    metadata = {"recipe_hash": "0" * 64, "labels": [str(i) for i in range(10)], "preprocessing": {"layout": "NCHW"}}
    return {
        name: run_converter("torch_onnx", artifact, {"metadata": metadata}, artifact.path.parent)[0]
        for name, artifact in torch_models.items()
    }


@pytest.fixture(scope="session")
def ort_int8(onnx_models: dict[str, Artifact], calibration: Artifact) -> dict[str, Artifact]:
    return {
        name: run_converter("ort_quant", artifact, {"calibration": calibration}, artifact.path.parent)[0]
        for name, artifact in onnx_models.items()
    }


@pytest.fixture(scope="session")
def tflite_models(onnx_models: dict[str, Artifact], calibration: Artifact) -> dict[str, dict[str, Artifact]]:
    """Every onnx2tf precision (int8 with int8 I/O) for the convolutional models: {model: {precision: artifact}}.
    (The transformer's exact GELU needs options of its own: see test_onnx_tflite. The MobileNet has no weight
    of 1024+ elements, so TensorFlow's dynamic-range file would be fp32: refused, see test_quantize_options.)"""
    converted = {}
    for name in ("cnn", "mobilenet"):
        options = {"precisions": TFLITE_PRECISIONS[name], "int8_io": "int8", "calibration": calibration}
        artifact = onnx_models[name]
        out = artifact.path.parent / "tflite"
        converted[name] = {a.precision: a for a in run_converter("onnx2tf", artifact, options, out)}
    return converted


def top1(outputs: np.ndarray) -> np.ndarray:
    return outputs.argmax(axis=1)
