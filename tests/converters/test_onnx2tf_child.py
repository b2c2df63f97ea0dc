"""The onnx2tf child process does the same work whatever the user's shell: its `onnxsim` step runs from
edgekd's own environment even when that environment's bin folder is not on PATH (an unactivated venv)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from edgekd.converters.onnx_tflite import _run_child


def _foreign_onnx(path: Path) -> Path:
    """A one-input ONNX written by onnx.helper (no edgekd sidecar, never simplified): logits = relu(x @ W + b)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.standard_normal((16, 10)).astype(np.float32), "W"),
        numpy_helper.from_array(np.zeros(10, np.float32), "b"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["h"]),
        helper.make_node("Add", ["h", "b"], ["a"]),
        helper.make_node("Relu", ["a"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "foreign",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


@pytest.mark.slow
def test_onnxsim_runs_without_the_venv_on_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # as with `.venv/bin/edgekd` from a shell that never activated it
    assert Path(sys.executable).parent.joinpath("onnxsim").exists(), "the test environment has onnxsim's command"
    job = {
        "onnx": str(_foreign_onnx(tmp_path / "foreign.onnx")),
        "out": str(tmp_path / "out"),
        "input_name": "x",
        "keep_nchw": False,
        "dynamic_range": False,
        "int8": False,
        "int8_io": "int8",
        "quant_type": "per-channel",
        "pseudo_ops": [],
        "calibration": None,
        "onnxsim": True,
    }
    output = _run_child(job, tmp_path)
    assert "Failed to optimize the onnx file" not in output, output[-2000:]
    assert (tmp_path / "out" / "foreign_float32.tflite").exists()
