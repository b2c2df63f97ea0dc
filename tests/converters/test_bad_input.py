"""Bad model files and mismatched data: one clear ModelError, never a crash or a half-written file."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgekd.artifacts import describe_file, load_artifact
from edgekd.commands.export import verify_cmd
from edgekd.errors import ModelError
from edgekd.verify.backends import predict
from edgekd.verify.model_io import load_onnx


def _truncated_copy(src, dst, keep: float = 0.5):
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


@pytest.mark.parametrize("suffix", [".onnx", ".tflite"])
def test_verify_refuses_truncated_and_garbage_files(suffix, onnx_models, tflite_models, tmp_path):
    source = onnx_models["cnn"].path if suffix == ".onnx" else tflite_models["cnn"]["fp32"].path
    for broken in (_truncated_copy(source, tmp_path / f"cut{suffix}"), tmp_path / f"junk{suffix}"):
        if broken.name.startswith("junk"):
            broken.write_bytes(b"\x00not a model at all" * 10)
        with pytest.raises(ModelError) as info:
            verify_cmd(broken, None, None, None)
        assert broken.name in info.value.message and "\n" not in info.value.message
        assert info.value.hint


def test_changed_file_is_refused_by_its_sidecar(onnx_models, tmp_path):
    copy = tmp_path / "student.onnx"
    shutil.copy(onnx_models["cnn"].path, copy)
    shutil.copy(onnx_models["cnn"].sidecar, tmp_path / "student.onnx.json")
    with open(copy, "ab") as handle:
        handle.write(b"\x00")
    with pytest.raises(ModelError, match="changed since it was written"):
        load_artifact(copy)


def test_empty_onnx_graph_is_refused(tmp_path):
    import onnx

    path = tmp_path / "empty.onnx"
    onnx.save(onnx.helper.make_model(onnx.helper.make_graph([], "g", [], [])), str(path))
    with pytest.raises(ModelError, match="holds no ONNX graph"):
        load_onnx(path)


def test_onnx_with_wrong_inputs_for_the_data(onnx_models, tflite_models, digits):
    images_16 = np.zeros((4, 1, 16, 16), dtype=np.float32)
    with pytest.raises(ModelError, match=r"expects inputs of shape \(1, 1, 8, 8\)"):
        predict(describe_file(onnx_models["cnn"].path), images_16)
    with pytest.raises(ModelError, match="takes rank-4 inputs, the data is rank 2"):
        predict(onnx_models["cnn"], digits.x_test.reshape(len(digits.x_test), -1))
    with pytest.raises(ModelError, match=r"expects inputs of shape \(1, 8, 8, 1\)"):
        predict(tflite_models["cnn"]["int8"], images_16)
