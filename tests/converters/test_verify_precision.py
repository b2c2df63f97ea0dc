"""A .tflite file's precision is read from its tensors (never its name), and LiteRT's C++ log lines stay off
the user's terminal."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys

import pytest

from edgekd.artifacts import describe_file
from edgekd.commands.export import _with_precision
from edgekd.verify.model_io import native_stderr_captured, tflite_precision

XNNPACK_LINE = "Created TensorFlow Lite XNNPACK delegate"


def test_precision_of_every_onnx2tf_file_from_its_tensors(tflite_models):
    for precision, artifact in tflite_models["cnn"].items():
        assert tflite_precision(artifact.path) == precision, artifact.path.name


def test_int8_file_without_sidecar_or_telling_name_is_judged_as_int8(tflite_models, tmp_path):
    """Was judged fp32 by its file name (max_abs 1e-4, agreement 0.999) and failed the gate."""
    plain = tmp_path / "model.tflite"
    shutil.copy(tflite_models["cnn"]["int8"].path, plain)
    assert _with_precision(describe_file(plain)).precision == "int8"
    misnamed = tmp_path / "student.fp16.tflite"  # the name lies: the tensors decide
    shutil.copy(tflite_models["cnn"]["fp32"].path, misnamed)
    assert _with_precision(describe_file(misnamed)).precision == "fp32"


def test_int8_with_float_io_is_int8(onnx_models, calibration, tmp_path):
    """Float inputs/outputs around integer activations (QUANTIZE ... DEQUANTIZE) are int8, not dynamic range."""
    from edgekd.registry import run_converter

    options = {"precisions": ["int8"], "int8_io": "float", "calibration": calibration}
    [artifact] = run_converter("onnx2tf", onnx_models["cnn"], options, tmp_path)
    assert artifact.inputs[0].dtype == "float32" and tflite_precision(artifact.path) == "int8"


def test_native_stderr_drops_info_and_logs_the_rest(capfd, caplog):
    with caplog.at_level(logging.WARNING), native_stderr_captured():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\nERROR: something real\n")
    assert capfd.readouterr().err == ""
    assert [r.getMessage() for r in caplog.records] == ["LiteRT: ERROR: something real"]


@pytest.mark.slow
def test_litert_info_line_stays_off_the_terminal(tflite_models):
    """In a fresh process (LiteRT prints the line once per process): a bare interpreter prints it, edgekd's does not,
    and `edgekd verify` of a .tflite shows none on stderr."""
    path = str(tflite_models["cnn"]["fp32"].path)
    bare = (
        "from ai_edge_litert.interpreter import Interpreter; import sys; "
        "i = Interpreter(model_path=sys.argv[1]); i.allocate_tensors()"
    )
    ours = "from edgekd.verify.model_io import tflite_interpreter; import sys; tflite_interpreter(sys.argv[1])"
    runs = {
        code: subprocess.run(
            [sys.executable, "-c", code, path], capture_output=True, text=True, timeout=120, check=False
        )
        for code in (bare, ours)
    }
    assert XNNPACK_LINE in runs[bare].stderr  # the control: this LiteRT does print it
    assert runs[ours].returncode == 0 and XNNPACK_LINE not in runs[ours].stderr
    done = subprocess.run(
        [sys.executable, "-m", "edgekd.cli", "verify", path], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert XNNPACK_LINE not in done.stderr + done.stdout
