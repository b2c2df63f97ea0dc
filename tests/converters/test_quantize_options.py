"""`edgekd quantize`: every option takes effect for its converter or is refused; bad calibration paths and
empty sets are typed errors; onnx2tf's silent failures and mislabelled precisions are named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekd.commands.export import calibration_artifact, quantize_cmd
from edgekd.errors import ConversionError, DataError, UsageError


def _quantize(model: Path, calibration: Path, out: Path, **options) -> None:
    """quantize_cmd with every option not given left at None, as typer passes them."""
    names = ("to", "mode", "per_channel", "method", "activation_type", "int8_io", "keep_nchw")
    given = {"to": "onnx", **{name: None for name in names[1:]}, **options}
    quantize_cmd(model, calibration, out, **given)


@pytest.mark.parametrize(
    ("to", "options", "refused"),
    [
        (
            "tflite",
            {"method": "entropy", "activation_type": "uint8"},
            "--method, --activation-type do not apply to --to tflite",
        ),
        ("tflite", {"mode": "dynamic"}, "--mode does not apply to --to tflite"),
        ("onnx", {"int8_io": "float", "keep_nchw": True}, "--int8-io, --keep-nchw do not apply to --to onnx"),
    ],
)
def test_options_of_the_other_converter_are_refused(to, options, refused, tmp_path):
    with pytest.raises(UsageError) as info:
        _quantize(tmp_path / "never-read.onnx", tmp_path / "never-read.npz", tmp_path, to=to, **options)
    assert info.value.message.startswith(refused)
    assert f"--to {to} takes" in info.value.message and "--per-channel/--per-tensor" in info.value.message
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_tflite_per_tensor_takes_effect(onnx_models, calibration, tflite_models, tmp_path):
    """--per-tensor reaches onnx2tf: one scale per weight tensor, where per-channel has one per output channel."""
    from edgekd.verify.model_io import tflite_interpreter

    _quantize(onnx_models["cnn"].path, calibration.path, tmp_path, to="tflite", per_channel=False)
    per_tensor = tmp_path / "student.int8.tflite"
    per_channel = tflite_models["cnn"]["int8"].path  # same options, per-channel (the default)
    assert per_tensor.read_bytes() != per_channel.read_bytes()

    def conv_weight_scales(path: Path) -> list[int]:
        details = tflite_interpreter(path).get_tensor_details()
        return [
            len(d["quantization_parameters"]["scales"])
            for d in details
            if len(d["shape"]) == 4
            and d["dtype"] == np.int8
            and len(d["quantization_parameters"]["scales"]) > 0
            and "conv" in d["name"].lower()
        ]

    assert conv_weight_scales(per_channel) and max(conv_weight_scales(per_channel)) > 1
    assert conv_weight_scales(per_tensor) and set(conv_weight_scales(per_tensor)) == {1}
    import json

    assert json.loads((tmp_path / "student.int8.tflite.json").read_text())["config"]["per_channel"] is False


def test_calibration_paths_say_what_is_wrong(tmp_path):
    (tmp_path / "calib_dir").mkdir()
    os.symlink("loop_b", tmp_path / "loop_a")
    os.symlink("loop_a", tmp_path / "loop_b")
    os.symlink("gone.npz", tmp_path / "dangling")
    cases = {
        "calib_dir": "is a directory, expected an .npz file",
        "loop_a": "is a symlink loop",
        "dangling": "is a broken symlink (to gone.npz, which does not exist)",
        "absent.npz": "does not exist",
    }
    for name, message in cases.items():
        with pytest.raises(DataError) as info:
            calibration_artifact(tmp_path / name)
        assert f"calibration set {tmp_path / name} {message}" in info.value.message, name
        assert info.value.hint


@pytest.mark.parametrize("to", ["onnx", "tflite"])
def test_empty_calibration_set_is_a_data_error(to, onnx_models, tmp_path):
    empty = tmp_path / "empty.npz"
    np.savez(empty, x=np.zeros((0, 1, 8, 8), dtype=np.float32))
    with pytest.raises(
        DataError, match=r"the calibration set from empty.npz holds no samples \(array 'x' has shape \(0, 1, 8, 8\)\)"
    ):
        _quantize(onnx_models["cnn"].path, empty, tmp_path / "out", to=to)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_empty_calibration_exit_code_is_1_not_70(onnx_models, tmp_path):
    empty = tmp_path / "empty.npz"
    np.savez(empty, x=np.zeros((0, 1, 8, 8), dtype=np.float32))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgekd.cli",
            "quantize",
            str(onnx_models["cnn"].path),
            "-c",
            str(empty),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "holds no samples" in done.stderr and "internal error" not in done.stderr


@pytest.mark.slow
def test_exact_gelu_int8_names_erf_and_the_opset_20_fix(onnx_models, torch_models, calibration, tmp_path):
    """Opset 18 decomposes GELU into Erf: onnx2tf exits 0 without the int8 file; the error names Erf and the
    fix, and the fix works (opset 20 keeps Gelu -> builtin GELU)."""
    from edgekd.registry import run_converter

    int8_options = {"precisions": ["int8"], "calibration": calibration}
    with pytest.raises(ConversionError) as info:
        run_converter("onnx2tf", onnx_models["transformer"], int8_options, tmp_path / "a")
    assert info.value.message.startswith(
        "onnx2tf: no int8 model was written: int8 calibration runs the model in LiteRT, "
        "which has no builtin kernel for TensorFlow op(s) Erf (Flex)"
    )
    assert "edgekd export --opset 20" in info.value.hint and "pseudo_ops = ['Erf']" in info.value.hint

    [opset20] = run_converter("torch_onnx", torch_models["transformer"], {"opset": 20}, tmp_path / "onnx20")
    int8 = run_converter("onnx2tf", opset20, int8_options, tmp_path / "b")
    assert int8[0].precision == "int8" and int8[0].path.exists()


@pytest.mark.slow
def test_dynamic_range_without_int8_tensors_is_refused(onnx_models, calibration, tmp_path):
    """The tiny MobileNet's weights are all under 1024 elements: TF leaves its dynamic-range file fp32."""
    from edgekd.registry import run_converter

    with pytest.raises(ConversionError) as info:
        run_converter("onnx2tf", onnx_models["mobilenet"], {"precisions": ["fp32", "dynamic_range"]}, tmp_path)
    assert "the dynamic_range model of student.onnx has no int8 tensor" in info.value.message
    assert "drop dynamic_range" in info.value.hint
    assert not list(tmp_path.glob("*.tflite")), "nothing may be kept from a refused conversion"


def test_missing_output_reason_read_from_onnx2tf_warnings():
    """onnx2tf 1.29's own lines (colour codes kept) when int8 calibration hits a Flex op, and any other failure."""
    from edgekd.converters.onnx_tflite import missing_output_error

    flex = (
        "RuntimeError: Select TensorFlow op(s), included in the given model, is(are) not supported by this interpreter. "
        "Make sure you apply/link the Flex delegate before inference. Node number 41 (FlexErf) failed to prepare.\n"
        "\x1b[33mWARNING:\x1b[0m Full INT8 Quantization tflite output failed.\n"
    )
    error = missing_output_error(flex, "int8", "student_full_integer_quant.tflite")
    assert error.message.endswith("which has no builtin kernel for TensorFlow op(s) Erf (Flex)")
    other = missing_output_error("RuntimeError: Quantization not yet supported for op: 'CUSTOM'.\n", "int8", "s.tflite")
    assert (
        other.message
        == "onnx2tf: no int8 model was written (s.tflite missing): Quantization not yet supported for op: 'CUSTOM'."
    )
    assert (
        missing_output_error("", "int8", "s.tflite").message == "onnx2tf: no int8 model was written (s.tflite missing)"
    )
