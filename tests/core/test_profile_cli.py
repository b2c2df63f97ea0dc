"""`edgekd bench profile MODEL` (profile_cmd, mounted here as the lead mounts it under `bench`)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from edgekd import console
from edgekd.commands.profile import profile_cmd
from edgekd.errors import ModelError, UsageError

REPO = Path(__file__).resolve().parents[2]
from tests.core.test_profile_ort import conv_stack

RECORDINGS = REPO / "tests" / "support" / "recordings" / "profile"
QUICK = ["--runs", "5", "--warmup", "1"]


def make_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """edgekd (test mount)."""

    bench = typer.Typer()
    bench.command("profile")(profile_cmd)

    @bench.callback()
    def bench_root() -> None:
        """bench (test mount)."""

    app.add_typer(bench, name="bench")
    return app


@pytest.fixture
def cli() -> Iterator[tuple[CliRunner, typer.Typer]]:
    yield CliRunner(), make_app()
    console.set_mode()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return conv_stack(tmp_path_factory.mktemp("profile-cli") / "conv_stack.onnx", channels=8, size=16)


def test_json_document_with_profile_overlay_and_fallback_verdict(cli, model, tmp_path):
    runner, app = cli
    overlay, saved = tmp_path / "latency.json", tmp_path / "profile.json"
    outcome = runner.invoke(
        app,
        [
            "bench",
            "profile",
            str(model),
            *QUICK,
            "--optimization",
            "none",
            "--json",
            "--provider",
            "XnnpackExecutionProvider",
            "--provider",
            "CPUExecutionProvider",
            "--explorer",
            str(overlay),
            "--out",
            str(saved),
        ],
    )
    assert outcome.exit_code == 0, outcome.output
    document = json.loads(outcome.stdout)
    [profile] = document["profiles"]
    assert profile["schema"] == "edgekd.profile/1" and profile["runs"] == 5
    assert {row["op"] for row in profile["rows"]} >= {"conv0", "relu0", "fc"}
    assert [v["code"] for v in document["verdicts"]] == ["accelerator_fallback"]
    assert document["explorer"]["unmatched"] == []
    assert set(json.loads(overlay.read_text())["results"]) == {row["op"] for row in profile["rows"]}
    assert json.loads(saved.read_text()) == document


def test_human_output_names_top_ops_types_and_comparison(cli, model, tmp_path):
    runner, app = cli
    other = conv_stack(tmp_path / "deeper.onnx", channels=8, size=16, depth=6)
    outcome = runner.invoke(
        app, ["bench", "profile", str(model), *QUICK, "--top", "2", "--compare", str(other)], env={"COLUMNS": "200"}
    )
    assert outcome.exit_code == 0, outcome.output
    text = outcome.stdout
    assert "top 2 ops" in text and "time by op type" in text and "profiler overhead: profiled median" in text
    assert "conv_stack.onnx vs deeper.onnx by op type" in text
    assert "carries 0 QuantizeLinear and 0 DequantizeLinear nodes" in text


def test_tflite_from_benchmark_output_with_requested_delegate(cli, tmp_path):
    runner, app = cli
    model = tmp_path / "deeplabv3.tflite"
    model.write_bytes(b"stand-in: the profile comes from the recorded output")
    recording = shutil.copy(RECORDINGS / "deeplabv3_nnapi_partial.txt", tmp_path / "out.txt")
    outcome = runner.invoke(
        app,
        ["bench", "profile", str(model), "--benchmark-output", str(recording), "--provider", "NNAPI"],
        env={"COLUMNS": "200"},
    )
    assert outcome.exit_code == 0, outcome.output
    assert "warning: accelerator_fallback" in outcome.stdout and "asked for NNAPI, but 5 of 8" in outcome.stdout


def test_tflite_is_profiled_op_by_op_here_without_a_benchmark_output(cli, tmp_path):
    """No benchmark_model output: every operator of the .tflite (made by TensorFlow's converter, not edgekd)
    is timed as a model of its own in LiteRT; the rows are the file's operators, in order."""
    from tests.support.bench_models import make_tflite

    runner, app = cli
    model = make_tflite(tmp_path / "m.tflite", layers=2)
    outcome = runner.invoke(app, ["bench", "profile", str(model), "--json", "--runs", "20", "--warmup", "2"])
    assert outcome.exit_code == 0, outcome.output
    (profile,) = json.loads(outcome.stdout)["profiles"]
    assert [row["op_type"] for row in profile["rows"]] == ["FULLY_CONNECTED"] * 3
    assert profile["source"].startswith("LiteRT ") and "op by op" in profile["source"]
    assert {row["provider"] for row in profile["rows"]} <= {"XNNPACK", "CPU"}
    assert all(row["ms"] >= 0 for row in profile["rows"])
    assert {row["provider"] for row in profile["rows"]} == {"XNNPACK"}
    assert json.loads(outcome.stdout)["verdicts"] == []  # fully delegated: no fallback verdict


def _matmul_then_cumsum(path: Path) -> Path:
    """A TensorFlow model whose CUMSUM XNNPACK cannot take (its FULLY_CONNECTED it can)."""
    import numpy as np
    import tensorflow as tf

    weight = tf.constant(np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([1, 16], tf.float32, name="x")])
    def model(x: tf.Tensor) -> tf.Tensor:
        return tf.math.cumsum(tf.matmul(x, weight), axis=1)

    path.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions([model.get_concrete_function()], model).convert())
    return path


def test_an_op_xnnpack_cannot_take_gives_the_fallback_verdict(cli, tmp_path):
    """Placement from the op-by-op profile: the CUMSUM runs on TFLite's builtin kernels although XNNPACK was
    asked for, and the accelerator_fallback verdict names it."""
    runner, app = cli
    model = _matmul_then_cumsum(tmp_path / "cumsum.tflite")
    outcome = runner.invoke(app, ["bench", "profile", str(model), "--json", "--runs", "20", "--warmup", "2"])
    assert outcome.exit_code == 0, outcome.output
    document = json.loads(outcome.stdout)
    placement = {row["op_type"]: row["provider"] for row in document["profiles"][0]["rows"]}
    assert placement == {"FULLY_CONNECTED": "XNNPACK", "CUMSUM": "CPU"}
    (verdict,) = document["verdicts"]
    assert verdict["code"] == "accelerator_fallback" and "CUMSUM" in verdict["message"]


def test_tflite_that_is_not_a_model_is_refused_in_one_line(cli, tmp_path):
    runner, app = cli
    model = tmp_path / "m.tflite"
    model.write_bytes(b"x")
    outcome = runner.invoke(app, ["bench", "profile", str(model)])
    assert isinstance(outcome.exception, ModelError)
    assert "cannot profile m.tflite" in outcome.exception.message


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--optimization", "max"], "--optimization 'max' is not one of"),
        (["--compare-benchmark-output", "x.txt"], "needs --compare"),
        (["--benchmark-output", "x.txt"], "--benchmark-output is for .tflite models"),
    ],
)
def test_wrong_option_combinations_are_refused(cli, model, args, message):
    runner, app = cli
    outcome = runner.invoke(app, ["bench", "profile", str(model), *QUICK, *args])
    assert isinstance(outcome.exception, UsageError) and message in outcome.exception.message
