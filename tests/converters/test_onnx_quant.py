"""ONNX Runtime int8: static QDQ per-channel on the shared calibration set; dynamic only without convolutions."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from edgekd.artifacts import Artifact, create_artifact
from edgekd.config.export import OrtQuantOptions
from edgekd.converters.onnx_quant import OrtQuantizer
from edgekd.errors import ConversionError, DataError
from edgekd.verify.backends import predict


@pytest.mark.covers("converter:ort_quant")
@pytest.mark.parametrize("name", ["cnn", "mobilenet", "transformer"])
def test_static_qdq_int8_keeps_predictions(name, ort_int8, torch_models, calibration, digits):
    artifact = ort_int8[name]
    assert artifact.name == "onnx_int8" and artifact.precision == "int8"
    assert artifact.config["calibration_sha256"] == calibration.sha256
    ops = {node.op_type for node in onnx.load(str(artifact.path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    reference = predict(torch_models[name], digits.x_test).argmax(axis=1)
    agreement = (predict(artifact, digits.x_test).argmax(axis=1) == reference).mean()
    assert agreement >= 0.95


def test_per_channel_weights_have_one_scale_per_output_channel(ort_int8):
    model = onnx.load(str(ort_int8["cnn"].path))
    initializers = {init.name: init for init in model.graph.initializer}
    conv_weight_dq = [
        n
        for n in model.graph.node
        if n.op_type == "DequantizeLinear" and n.input[0] in initializers and len(initializers[n.input[0]].dims) == 4
    ]
    assert conv_weight_dq
    for node in conv_weight_dq:
        scales = onnx.numpy_helper.to_array(initializers[node.input[1]])
        assert scales.size == initializers[node.input[0]].dims[0] > 1


def test_uint8_entropy_variant(onnx_models, calibration, digits, tmp_path):
    options = OrtQuantOptions(
        method="entropy", activation_type="uint8", per_channel=False, reduce_range=True, calibration=calibration
    )
    [artifact] = OrtQuantizer().convert(onnx_models["cnn"], options, tmp_path)
    model = onnx.load(str(artifact.path))
    activation_q = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    zero_points = {init.name: init for init in model.graph.initializer}
    assert any(zero_points[n.input[2]].data_type == onnx.TensorProto.UINT8 for n in activation_q if len(n.input) > 2)
    fp32 = predict(onnx_models["cnn"], digits.x_test).argmax(axis=1)
    assert (predict(artifact, digits.x_test).argmax(axis=1) == fp32).mean() >= 0.95


def test_dynamic_refused_for_convolutions_and_nothing_written(onnx_models, calibration, tmp_path):
    with pytest.raises(ConversionError, match=r"dynamic int8 refused .* Conv"):
        OrtQuantizer().convert(onnx_models["mobilenet"], OrtQuantOptions(mode="dynamic"), tmp_path)
    assert not list(tmp_path.iterdir())


def test_dynamic_for_matmul_only_transformer(onnx_models, torch_models, calibration, digits, tmp_path):
    [artifact] = OrtQuantizer().convert(onnx_models["transformer"], OrtQuantOptions(mode="dynamic"), tmp_path)
    ops = {node.op_type for node in onnx.load(str(artifact.path)).graph.node}
    assert ops & {"DynamicQuantizeLinear", "MatMulInteger", "DynamicQuantizeMatMul"}
    reference = predict(torch_models["transformer"], digits.x_test).argmax(axis=1)
    assert (predict(artifact, digits.x_test).argmax(axis=1) == reference).mean() >= 0.95


def _bad_calibration(path, x) -> Artifact:
    with open(path, "wb") as handle:
        np.savez(handle, x=x, ids=np.arange(len(x)))
    return create_artifact(path, name="calibration", format="npz", config={"layout": "NCHW"})


def test_calibration_with_nan_is_refused_and_nothing_written(onnx_models, digits, tmp_path):
    x = digits.x_train[:20].copy()
    x[3, 0, 2, 2] = np.nan
    bad = _bad_calibration(tmp_path / "calibration.npz", x)
    out = tmp_path / "out"
    with pytest.raises(DataError, match="1 of 20 calibration samples .* NaN"):
        OrtQuantizer().convert(onnx_models["cnn"], OrtQuantOptions(calibration=bad), out)
    assert not out.exists() or not list(out.iterdir())


def test_calibration_in_wrong_layout_is_refused(onnx_models, digits, tmp_path):
    flat = _bad_calibration(tmp_path / "flat.npz", digits.x_train[:20].reshape(20, 64))
    with pytest.raises(DataError, match="not NCHW"):
        OrtQuantizer().convert(onnx_models["cnn"], OrtQuantOptions(calibration=flat), tmp_path / "a")
    wrong_size = _bad_calibration(tmp_path / "big.npz", np.zeros((20, 1, 16, 16), dtype=np.float32))
    with pytest.raises(DataError, match=r"the model expects \(1, 8, 8\)"):
        OrtQuantizer().convert(onnx_models["cnn"], OrtQuantOptions(calibration=wrong_size), tmp_path / "b")


def test_worst_layers_name_real_tensors_of_the_float_graph(ort_int8, onnx_models, digits):
    from edgekd.verify.debug import worst_layers

    rows = worst_layers(ort_int8["mobilenet"], onnx_models["mobilenet"], digits.x_test, top_k=3)
    produced = {out for node in onnx.load(str(onnx_models["mobilenet"].path)).graph.node for out in node.output}
    assert len(rows) == 3 and all(row["layer"] in produced for row in rows)
    assert rows[0]["growth"] >= rows[1]["growth"] >= rows[2]["growth"]
    assert all(row["relative_error"] > 0 for row in rows)
