"""`edgekd bench` of an ONNX model with symbolic height/width (never a silent 1x1 input; the shape comes from
--shape, --inputs or the sidecar and is recorded in the result) and a run count that no benchmark needs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from edgekd import console
from edgekd.artifacts import TensorSpec, create_artifact
from edgekd.errors import BenchError, UsageError
from tests.core.test_bench_cli import make_app

QUICK = ["--target", "local", "--runs", "5", "--warmup", "1", "--no-energy", "--no-history"]


@pytest.fixture
def cli() -> Iterator[tuple[CliRunner, typer.Typer]]:
    yield CliRunner(), make_app()
    console.set_mode()


def symbolic_image_model(path: Path) -> Path:
    """A conv-free image model exported elsewhere: input ["N", 3, "height", "width"]."""
    import onnx
    from onnx import TensorProto, helper

    dims = ["N", 3, "height", "width"]
    graph = helper.make_graph(
        [helper.make_node("Relu", ["image"], ["out"])],
        "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, dims)],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_symbolic_dims_are_refused_without_a_shape(cli: tuple[CliRunner, typer.Typer], tmp_path: Path) -> None:
    runner, app = cli
    model = symbolic_image_model(tmp_path / "net.onnx")
    outcome = runner.invoke(app, ["bench", str(model), *QUICK])
    assert isinstance(outcome.exception, BenchError), outcome.output
    assert outcome.exception.message == (
        "net.onnx: local: input 'image' has symbolic dimensions ['N', 3, 'height', "
        "'width']: the shape to benchmark cannot be known"
    )
    assert "edgekd bench --shape image=1,3,<height>,<width>" in (outcome.exception.hint or "")


@pytest.mark.parametrize("how", ["--shape", "--inputs", "sidecar"])
def test_the_shape_used_comes_from_the_user_and_is_recorded(
    cli: tuple[CliRunner, typer.Typer], tmp_path: Path, how: str
) -> None:
    runner, app = cli
    model = symbolic_image_model(tmp_path / "net.onnx")
    extra: list[str] = []
    if how == "--shape":
        extra = ["--shape", "image=1,3,24,20"]
    elif how == "--inputs":
        np.savez(tmp_path / "one.npz", image=np.zeros((1, 3, 24, 20), np.float32))
        extra = ["--inputs", str(tmp_path / "one.npz")]
    else:  # the sidecar a pipeline (or the user) wrote records the exported shape
        create_artifact(
            model,
            name="net",
            format="onnx",
            precision="fp32",
            producer="test",
            inputs=[TensorSpec("image", ("N", 3, 24, 20), "float32", "NCHW")],
        )
    outcome = runner.invoke(app, ["--json", "bench", str(model), *QUICK, *extra])
    assert outcome.exit_code == 0, outcome.output
    (row,) = json.loads(outcome.stdout)["results"]
    assert row["env"]["input_shapes"] == {"image": [1, 3, 24, 20]}
    out = tmp_path / "full.json"
    human = runner.invoke(app, ["bench", str(model), *QUICK, *extra, "--out", str(out)])
    assert human.exit_code == 0 and "net inputs: image 1x3x24x20" in human.output
    assert json.loads(out.read_text())["results"][0]["env"]["input_shapes"] == {"image": [1, 3, 24, 20]}


def test_a_wrong_shape_names_the_model_shape(cli: tuple[CliRunner, typer.Typer], tmp_path: Path) -> None:
    runner, app = cli
    model = symbolic_image_model(tmp_path / "net.onnx")
    outcome = runner.invoke(app, ["bench", str(model), *QUICK, "--shape", "image=1,1,24,20"])
    assert isinstance(outcome.exception, BenchError)
    assert (
        "input 'image' has shape [1, 1, 24, 20] from --shape, the model expects ['N', 3, 'height', 'width']"
        in outcome.exception.message
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--runs", "1000000000000"], "--runs 1000000000000 is more than 1,000,000 runs per runner process"),
        (["--warmup", "5000000"], "--warmup 5000000 is more than 1,000,000 runs per runner process"),
        (["--shape", "image=1,x"], "--shape 'image=1,x' is not a shape"),
    ],
)
def test_unbounded_work_and_bad_shapes_are_refused(
    cli: tuple[CliRunner, typer.Typer], tmp_path: Path, args: list[str], needle: str
) -> None:
    runner, app = cli
    model = symbolic_image_model(tmp_path / "net.onnx")
    outcome = runner.invoke(app, ["bench", str(model), "--target", "local", *args])
    assert isinstance(outcome.exception, UsageError), outcome.output
    assert outcome.exception.message == needle
    assert "--duration" in (outcome.exception.hint or "") or "NAME=" in (outcome.exception.hint or "")
