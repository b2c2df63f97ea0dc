"""`edgekd verify` of a two-input ONNX model (built here with onnx.helper, not by edgekd): it runs on the user's
named arrays or on seeded random inputs, holds parity against another ONNX model, and refuses what cannot
feed it with a typed error (never an internal error)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekd.commands.export import verify_cmd
from edgekd.errors import DataError, ModelError, ParityError


def _two_input_model(path: Path, seed: int) -> Path:
    """logits = flatten(a + b) @ W, inputs a and b of shape (batch, 1, 8, 8), batch symbolic."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.random.default_rng(seed).standard_normal((64, 10)).astype(np.float32), "W")
    nodes = [
        helper.make_node("Add", ["a", "b"], ["s"]),
        helper.make_node("Flatten", ["s"], ["f"]),
        helper.make_node("MatMul", ["f", "W"], ["logits"]),
    ]
    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", 1, 8, 8]) for name in ("a", "b")]
    graph = helper.make_graph(
        nodes,
        "two_inputs",
        inputs,
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


@pytest.fixture
def models(tmp_path: Path) -> dict[str, Path]:
    return {
        "model": _two_input_model(tmp_path / "two.onnx", 0),
        "same": _two_input_model(tmp_path / "same.onnx", 0),
        "other": _two_input_model(tmp_path / "other.onnx", 1),
    }


def test_runs_on_seeded_random_inputs_without_data(models, capsys):
    verify_cmd(models["model"], None, None, None)
    said = " ".join(capsys.readouterr().out.split())
    assert "loads and runs; ran on 64 seeded random inputs (no labels: agreement and error only)" in said


def test_parity_against_an_onnx_reference(models, capsys):
    verify_cmd(models["model"], models["same"], None, None)
    assert "on 64 seeded random inputs" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(ParityError, match=r"1 of 1 artifacts failed the parity gate \(two\)"):
        verify_cmd(models["model"], models["other"], None, None)


def test_named_arrays_with_labels_from_data(models, tmp_path, capsys):
    rng = np.random.default_rng(3)
    data = tmp_path / "pairs.npz"
    np.savez(
        data,
        a=rng.random((12, 1, 8, 8), dtype=np.float32),
        b=rng.random((12, 1, 8, 8), dtype=np.float32),
        y=rng.integers(0, 10, 12),
    )
    verify_cmd(models["model"], models["same"], None, data)
    assert "on 12 samples from pairs.npz" in capsys.readouterr().out
    only_a = tmp_path / "only_a.npz"
    np.savez(only_a, a=np.zeros((3, 1, 8, 8), dtype=np.float32))
    with pytest.raises(DataError, match=r"only_a.npz has no array for input\(s\) b \(it has a\)"):
        verify_cmd(models["model"], None, None, only_a)


def test_named_inputs_feed_only_onnx_models(tmp_path):
    from edgekd.artifacts import Artifact
    from edgekd.verify.backends import predict

    torch_model = Artifact(path=tmp_path / "student.pt", name="student_torch", format="torch", sha256="0" * 64)
    feeds = {"a": np.zeros((2, 1, 8, 8), np.float32), "b": np.zeros((2, 1, 8, 8), np.float32)}
    with pytest.raises(
        ModelError, match=r"samples for several named inputs \(a, b\) can feed only an ONNX model, not a torch one"
    ):
        predict(torch_model, feeds)


def test_one_array_for_two_inputs_is_a_model_error(models):
    from edgekd.artifacts import describe_file
    from edgekd.verify.backends import predict

    with pytest.raises(ModelError, match=r"two.onnx has 2 inputs \(a, b\); one data array cannot feed them"):
        predict(describe_file(models["model"]), np.zeros((2, 1, 8, 8), np.float32))


def test_cli_exit_codes(models):
    """Was exit 70 ("Required inputs (['b']) are missing") with and without --reference."""
    for extra in ([], ["--reference", str(models["same"])]):
        done = subprocess.run(
            [sys.executable, "-m", "edgekd.cli", "verify", str(models["model"]), *extra],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "internal error" not in done.stderr


def test_data_that_is_a_directory_or_a_loop_is_named(models, tmp_path):
    (tmp_path / "arrays").mkdir()
    os.symlink("loop", tmp_path / "loop")
    with pytest.raises(DataError, match=r"--data .*arrays is a directory, expected an .npz file"):
        verify_cmd(models["model"], None, None, tmp_path / "arrays")
    with pytest.raises(DataError, match=r"--data .*loop is a symlink loop"):
        verify_cmd(models["model"], None, None, tmp_path / "loop")
