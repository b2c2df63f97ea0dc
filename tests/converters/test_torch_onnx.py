"""torch -> ONNX: one checked file with metadata, numerically the torch model, static or dynamic batch."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from edgekd.artifacts import load_artifact
from edgekd.config.export import DEFAULT_OPSET, TorchOnnxOptions
from edgekd.converters.torch_onnx import TorchOnnxConverter
from edgekd.errors import ConversionError
from edgekd.registry import run_converter
from edgekd.verify.backends import predict


@pytest.mark.covers("converter:torch_onnx")
@pytest.mark.parametrize("name", ["cnn", "mobilenet", "transformer"])
def test_export_is_one_checked_file_matching_torch(name, onnx_models, torch_models, digits):
    artifact = onnx_models[name]
    assert artifact.name == "onnx_fp32" and artifact.precision == "fp32"
    assert not list(artifact.path.parent.glob("*.onnx.data")), "external data must be inlined"
    model = onnx.load(str(artifact.path))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == DEFAULT_OPSET
    assert load_artifact(artifact.path).sha256 == artifact.sha256
    torch_out = predict(torch_models[name], digits.x_test)
    onnx_out = predict(artifact, digits.x_test)
    assert np.abs(torch_out - onnx_out).max() < 1e-4
    assert artifact.inputs[0].shape == (1, 1, 8, 8) and artifact.inputs[0].layout == "NCHW"


def test_metadata_props_carry_version_recipe_labels_preprocessing(onnx_models):
    props = {p.key: p.value for p in onnx.load(str(onnx_models["cnn"].path)).metadata_props}
    assert props["edgekd_version"]
    assert props["recipe_hash"] == "0" * 64
    assert json.loads(props["labels"]) == [str(i) for i in range(10)]
    assert json.loads(props["preprocessing"]) == {"layout": "NCHW"}


def test_dynamic_batch_and_opset(torch_models, digits, tmp_path):
    [artifact] = TorchOnnxConverter().convert(
        torch_models["cnn"], TorchOnnxOptions(opset=19, dynamic_batch=True, simplify=False), tmp_path
    )
    assert isinstance(artifact.inputs[0].shape[0], str)  # symbolic batch
    assert onnx.load(str(artifact.path)).opset_import[0].version == 19
    import onnxruntime as ort

    session = ort.InferenceSession(str(artifact.path), providers=["CPUExecutionProvider"])
    assert session.run(None, {"input": digits.x_test[:5]})[0].shape == (5, 10)
    assert artifact.config["simplified"] is False


def test_refuses_non_torch_source(onnx_models, tmp_path):
    """The input format is checked once, by dispatch, against the registry line (not inside convert)."""
    with pytest.raises(ConversionError, match="torch_onnx converts torch artifacts, got onnx"):
        run_converter("torch_onnx", onnx_models["cnn"], {}, tmp_path)
    assert not list(tmp_path.iterdir())


def test_opset_below_exporter_range_is_refused(torch_models, tmp_path):
    from edgekd.converters.torch_onnx import export_module
    from edgekd.distill.models import load_torch_model

    with pytest.raises(ConversionError, match="opset 17 is below 18"):
        export_module(load_torch_model(torch_models["cnn"]), (1, 8, 8), opset=17, dynamic_batch=False)
    with pytest.raises(ValueError):
        TorchOnnxOptions(opset=17)
