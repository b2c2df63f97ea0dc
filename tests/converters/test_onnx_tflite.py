"""onnx2tf: every precision, int8/float I/O, NCHW inputs, offline; what it can't do ends in a ConversionError.

This machine has no internet: onnx2tf's sample-image download would raise here, so every successful
conversion below also shows the converter runs fully offline.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgekd.config.export import Onnx2TfOptions, VerifyConfig
from edgekd.converters.onnx_tflite import Onnx2TfConverter, describe_failure
from edgekd.errors import ConversionError
from edgekd.registry import run_converter
from edgekd.verify.backends import predict
from edgekd.verify.parity import verify_artifacts

pytestmark = pytest.mark.slow  # each onnx2tf conversion takes seconds


@pytest.mark.covers("converter:onnx2tf")
@pytest.mark.parametrize("name", ["cnn", "mobilenet"])
def test_every_precision_passes_the_default_parity_gate(name, tflite_models, torch_models, digits):
    artifacts = tflite_models[name]
    expected = {"fp32", "fp16", "int8"} | ({"dynamic_range"} if name == "cnn" else set())  # see the fixture
    assert set(artifacts) == expected
    report = verify_artifacts(
        torch_models[name], list(artifacts.values()), digits.x_test, digits.y_test, VerifyConfig()
    )
    assert report.passed, report.table()
    assert all(row["ops"]["runtime"] == "litert" for row in report.rows)
    for precision, artifact in artifacts.items():
        assert artifact.name == f"tflite_{precision}" and artifact.path.name == f"student.{precision}.tflite"
        assert artifact.inputs[0].layout == "NHWC" and artifact.inputs[0].shape == (1, 8, 8, 1)


def test_full_int8_has_int8_io_with_quant_params(tflite_models):
    int8 = tflite_models["cnn"]["int8"]
    assert int8.inputs[0].dtype == "int8" and int8.outputs[0].dtype == "int8"
    assert int8.inputs[0].quant is not None and int8.inputs[0].quant.scale[0] > 0
    assert int8.config["calibration_sha256"]


def test_int8_with_float_io_and_nchw_inputs(onnx_models, calibration, torch_models, digits, tmp_path):
    options = Onnx2TfOptions(precisions=["fp32", "int8"], int8_io="float", keep_nchw=True, calibration=calibration)
    artifacts = {a.precision: a for a in Onnx2TfConverter().convert(onnx_models["cnn"], options, tmp_path)}
    int8 = artifacts["int8"]
    assert int8.inputs[0].dtype == "float32" and int8.inputs[0].quant is None
    assert int8.inputs[0].layout == "NCHW" and int8.inputs[0].shape == (1, 1, 8, 8)
    report = verify_artifacts(
        torch_models["cnn"], list(artifacts.values()), digits.x_test, digits.y_test, VerifyConfig()
    )
    assert report.passed, report.table()


def test_transformer_exact_gelu_needs_flex_erf(onnx_models, calibration, tmp_path):
    with pytest.raises(ConversionError, match=r"onnx2tf: the fp32 model needs TensorFlow op\(s\) Erf"):
        Onnx2TfConverter().convert(onnx_models["transformer"], Onnx2TfOptions(precisions=["fp32"]), tmp_path)
    assert not list(tmp_path.glob("*.tflite")), "nothing may be kept from a failed conversion"


def test_transformer_with_pseudo_erf(onnx_models, calibration, torch_models, digits, tmp_path):
    """Float paths hold parity with onnx2tf's builtin Erf; full int8 fails in LiteRT's DIV kernel and says so."""
    options = Onnx2TfOptions(precisions=["fp32", "fp16", "dynamic_range"], pseudo_ops=["Erf"])
    artifacts = Onnx2TfConverter().convert(onnx_models["transformer"], options, tmp_path)
    report = verify_artifacts(torch_models["transformer"], artifacts, digits.x_test, digits.y_test, VerifyConfig())
    assert report.passed, report.table()
    assert "Flex" not in "".join(report.rows[0]["ops"]["ops"])
    int8_dir = tmp_path / "int8"
    with pytest.raises(ConversionError, match=r"onnx2tf wrote a int8 model LiteRT cannot run: .* op DIV"):
        Onnx2TfConverter().convert(
            onnx_models["transformer"],
            Onnx2TfOptions(precisions=["int8"], pseudo_ops=["Erf"], calibration=calibration),
            int8_dir,
        )
    assert not int8_dir.exists() or not list(int8_dir.glob("*.tflite"))


def test_tflite_outputs_match_onnx_fp32_closely(tflite_models, onnx_models, digits):
    onnx_out = predict(onnx_models["mobilenet"], digits.x_test[:50])
    tflite_out = predict(tflite_models["mobilenet"]["fp32"], digits.x_test[:50])
    assert np.abs(onnx_out - tflite_out).max() < 1e-4


def test_failure_message_names_op_from_onnx2tf_output():
    output = (
        "\x1b[32mINFO:\x1b[0m onnx_op_type: Conv onnx_op_name: /stem/Conv\n"
        "\x1b[31mERROR:\x1b[0m The trace log is below.\n"
        "INFO: onnx_op_type: CustomThing onnx_op_name: /odd/CustomThing\n"
        "ERROR: OP is not yet implemented: CustomThing\n"
    )
    message = describe_failure(output)
    assert (
        message == "onnx2tf failed at op CustomThing (/odd/CustomThing): ERROR: OP is not yet implemented: CustomThing"
    )


def test_non_onnx_source_refused(torch_models, calibration, tmp_path):
    with pytest.raises(ConversionError, match="onnx2tf converts onnx artifacts, got torch") as info:
        run_converter("onnx2tf", torch_models["cnn"], {"calibration": calibration}, tmp_path)
    assert "converters that take torch: torch_onnx, litert_torch" in info.value.hint


def test_failing_int8_row_names_worst_tflite_layers(tflite_models, torch_models, digits):
    from edgekd.config.export import Threshold

    strict = VerifyConfig(int8=Threshold(agreement=1.0, max_abs=1e-6))  # int8 cannot meet this: force a failure
    artifacts = [tflite_models["cnn"]["fp32"], tflite_models["cnn"]["int8"]]
    report = verify_artifacts(torch_models["cnn"], artifacts, digits.x_test, digits.y_test, strict)
    int8 = report.rows[1]
    assert not int8["passed"] and any("max_abs_error" in f for f in int8["failures"])
    assert int8["worst_layers"] and {"layer", "op", "relative_error", "growth"} <= set(int8["worst_layers"][0])
    assert int8["worst_layers"][0]["op"] in int8["ops"]["ops"]


def test_cross_converter_rows_only_for_tflite_pairs_from_two_converters(tflite_models, onnx_models, digits):
    """Runs without litert-torch: a copy of the onnx2tf files relabelled as the second converter's."""
    from dataclasses import replace

    from edgekd.verify.parity import cross_check_converters

    onnx2tf_files = [tflite_models["cnn"]["fp32"], tflite_models["cnn"]["int8"]]
    assert cross_check_converters([*onnx2tf_files, onnx_models["cnn"]], digits.x_test[:40]) == []
    second = [
        replace(a, name=f"litert_torch_{a.precision}", producer="litert_torch edgekd-0.1.0") for a in onnx2tf_files
    ]
    rows = cross_check_converters([*onnx2tf_files, tflite_models["mobilenet"]["fp32"], *second], digits.x_test[:40])
    assert sorted((row["precision"], row["second"]) for row in rows) == [
        ("fp32", "litert_torch_fp32"),
        ("int8", "litert_torch_int8"),
    ]
    assert all(row["top1_agreement"] == 1.0 and row["max_abs_error"] == 0.0 for row in rows)
