"""litert-torch: fp32 and PT2E int8 for every model family, and the cross-converter check against onnx2tf.

litert-torch is optional (about 1 GB); without it only these tests skip, and available() says why.
"""

from __future__ import annotations

import pytest

from edgekd.config.export import LiteRtTorchOptions, VerifyConfig
from edgekd.converters.torch_tflite import LiteRtTorchConverter
from edgekd.errors import ConversionError
from edgekd.registry import run_converter
from edgekd.verify.parity import cross_check_converters, verify_artifacts


def test_available_explains_how_to_install_when_missing():
    reason = LiteRtTorchConverter().available()
    try:
        import litert_torch  # noqa: F401
    except ImportError:
        assert reason is not None and "pip install -r requirements-litert.txt" in reason
    else:
        assert reason is None


needs_litert = pytest.mark.skipif(
    LiteRtTorchConverter().available() is not None, reason=str(LiteRtTorchConverter().available())
)


@pytest.fixture(scope="module")
def litert_models(torch_models, calibration):
    options = {"precisions": ["fp32", "int8"], "calibration": calibration, "name_prefix": "litert_torch"}
    return {
        name: {
            a.precision: a for a in run_converter("litert_torch", artifact, options, artifact.path.parent / "litert")
        }
        for name, artifact in torch_models.items()
    }


@pytest.mark.covers("converter:litert_torch")
@needs_litert
@pytest.mark.slow
@pytest.mark.parametrize("name", ["cnn", "mobilenet", "transformer"])
def test_fp32_and_pt2e_int8_pass_parity(name, litert_models, torch_models, digits):
    artifacts = litert_models[name]
    assert artifacts["int8"].inputs[0].dtype == "int8" and artifacts["int8"].inputs[0].quant is not None
    assert artifacts["fp32"].inputs[0].layout == "NCHW" and artifacts["fp32"].name == "litert_torch_fp32"
    report = verify_artifacts(
        torch_models[name], list(artifacts.values()), digits.x_test, digits.y_test, VerifyConfig()
    )
    assert report.passed, report.table()


@needs_litert
@pytest.mark.slow
def test_cross_converter_check_pairs_onnx2tf_and_litert_torch(litert_models, tflite_models, digits):
    files = [*tflite_models["cnn"].values(), *litert_models["cnn"].values()]
    rows = cross_check_converters(files, digits.x_test)
    assert {row["precision"] for row in rows} == {"fp32", "int8"}
    fp32 = next(row for row in rows if row["precision"] == "fp32")
    assert fp32["top1_agreement"] == 1.0 and fp32["max_abs_error"] < 1e-4
    assert {p.split()[0] for p in fp32["producers"]} == {"onnx2tf", "litert_torch"}


@needs_litert
def test_fp16_is_refused_unless_skipped(torch_models, calibration, tmp_path):
    options = LiteRtTorchOptions(precisions=["fp16"], calibration=calibration)
    with pytest.raises(ConversionError, match="litert_torch writes only fp32, int8; asked for fp16"):
        LiteRtTorchConverter().convert(torch_models["cnn"], options, tmp_path)
    skipping = options.model_copy(update={"skip_unsupported": True})
    assert LiteRtTorchConverter().convert(torch_models["cnn"], skipping, tmp_path) == []
