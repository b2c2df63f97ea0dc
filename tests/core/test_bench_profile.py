"""`edgekd bench MODEL --profile` and `[bench] profile = true`: the per-op profile joins the bench result.

The runner profiles after its timed loop (a second session), once per artifact and target (first repeat),
so the timed figures stay unprofiled; the host attaches the OpProfile (edgekd.profile/1) with the same
process's unprofiled median and the profiler's overhead. `edgekd bench profile MODEL` reaches profile_cmd.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from edgekd import console
from edgekd.commands.bench import bench_app

REPO = Path(__file__).resolve().parents[2]
from tests.support.bench_models import make_matmul_onnx

QUICK = ["--target", "local", "--runs", "30", "--warmup", "2", "--no-energy"]


def make_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root(json_output: bool = typer.Option(False, "--json")) -> None:
        console.set_mode(json_output=json_output)

    app.add_typer(bench_app, name="bench")
    return app


@pytest.fixture
def cli() -> Iterator[tuple[CliRunner, typer.Typer]]:
    yield CliRunner(), make_app()
    console.set_mode()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("profile-models")
    return {
        "one": make_matmul_onnx(folder / "one.onnx", layers=1, size=128),
        "two": make_matmul_onnx(folder / "two.onnx", layers=2, size=128),
    }


def test_bench_profile_attaches_one_profile_per_model_to_the_result_and_its_json(
    cli: tuple[CliRunner, typer.Typer], models: dict[str, Path], tmp_path: Path
) -> None:
    from edgekd.bench.result import BenchResult
    from edgekd.profile.schema import SCHEMA, OpProfile

    runner, app = cli
    out = tmp_path / "results.json"
    outcome = runner.invoke(
        app,
        [
            "bench",
            str(models["one"]),
            str(models["two"]),
            *QUICK,
            "--repeats",
            "2",
            "--profile",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert outcome.exit_code == 0, outcome.output
    rows = json.loads(outcome.stdout)["results"]
    assert [row["artifact"] for row in rows] == ["one", "two"]
    for row, layers in zip(rows, (1, 2)):
        profile = OpProfile.from_dict(row["profile"])
        assert row["profile"]["schema"] == SCHEMA and profile.target == "local" and profile.runtime == "ort"
        assert [r.op_type for r in profile.rows] == ["MatMul", "Relu"] * layers
        assert profile.runs == 30 and profile.source.startswith("onnxruntime 1.")
        assert profile.median_ms and profile.profiled_median_ms and "unprofiled" in (profile.overhead or "")
        assert len(row["latencies_ns"]) == 60  # two repeats timed; only the first was also profiled
    saved = json.loads(out.read_text())["results"]
    assert BenchResult.from_dict(saved[0]).profile == saved[0]["profile"] and saved[0]["profile"]["rows"]


def test_bench_without_profile_has_none(cli: tuple[CliRunner, typer.Typer], models: dict[str, Path]) -> None:
    runner, app = cli
    outcome = runner.invoke(app, ["bench", str(models["one"]), *QUICK, "--json"])
    assert outcome.exit_code == 0, outcome.output
    assert json.loads(outcome.stdout)["results"][0]["profile"] is None


def test_bench_profile_prints_the_per_op_views(cli: tuple[CliRunner, typer.Typer], models: dict[str, Path]) -> None:
    runner, app = cli
    outcome = runner.invoke(app, ["bench", str(models["two"]), *QUICK, "--profile"])
    assert outcome.exit_code == 0, outcome.output
    assert "top 5 ops" in outcome.output and "time by op type" in outcome.output and "MatMul_0" in outcome.output


def test_bench_profile_subcommand_routes_to_the_profile_command(
    cli: tuple[CliRunner, typer.Typer], models: dict[str, Path]
) -> None:
    runner, app = cli
    outcome = runner.invoke(app, ["bench", "profile", str(models["two"]), "--runs", "5", "--json"])
    assert outcome.exit_code == 0, outcome.output
    (profile,) = json.loads(outcome.stdout)["profiles"]
    assert profile["model"] == "two.onnx" and {r["op_type"] for r in profile["rows"]} == {"MatMul", "Relu"}


def test_runner_argv_profiles_timed_runs_only() -> None:
    """--profile goes to the timed invocation, never to the baseline or the energy reference (runs=0)."""
    from edgekd.bench.orchestrate import runner_argv
    from edgekd.config.bench import BenchConfig

    class Host:
        def python_argv(self) -> list[str]:
            return ["python3"]

    config = BenchConfig(profile=True)
    assert "--profile" in runner_argv(Host(), "r.py", "m.onnx", "ort", config, profile=True)  # type: ignore[arg-type]
    assert "--profile" not in runner_argv(Host(), "r.py", "m.onnx", "ort", config, profile=False)  # type: ignore[arg-type]
    assert "--profile" not in runner_argv(Host(), "r.py", "m.onnx", "ort", config, runs=0, profile=True)  # type: ignore[arg-type]
    assert "--profile" not in runner_argv(Host(), "r.py", None, "ort", config, profile=True)  # type: ignore[arg-type]


def test_recipe_key_profile_is_declared() -> None:
    from edgekd.config.bench import BenchConfig

    assert BenchConfig().profile is False and BenchConfig(profile=True).profile is True
    assert "per-op profile" in BenchConfig.model_fields["profile"].description


def test_profile_of_torch_onnx_and_tflite_artifacts_on_the_local_target(tmp_path: Path) -> None:
    """Every artifact kind gets a profile entry: torch through torch.profiler (rows per op name, self time),
    ONNX through ORT's profiler, TFLite (no profiler in LiteRT's Python interpreter) the reason."""
    from edgekd.artifacts import describe_file
    from edgekd.bench.orchestrate import bench_artifacts
    from edgekd.config.bench import BenchConfig
    from edgekd.profile.schema import OpProfile
    from edgekd.targets.local import LocalTarget
    from tests.core.test_bench_orchestrate import torch_artifact
    from tests.support.bench_models import make_tflite

    onnx = describe_file(make_matmul_onnx(tmp_path / "m.onnx", layers=1, size=64))
    tflite = describe_file(make_tflite(tmp_path / "d.fp32.tflite"))
    config = BenchConfig(runs=10, warmup=1, energy=False, governor=None, profile=True)
    results = bench_artifacts(LocalTarget(), [torch_artifact(tmp_path), onnx, tflite], config)
    profiles = {r.artifact: OpProfile.from_dict(r.profile) for r in results if r.profile}
    assert set(profiles) == {"student_torch", "m", "d.fp32"}
    torch_profile = profiles["student_torch"]
    assert torch_profile.source.startswith("torch 2.") and torch_profile.runs == 10
    assert any("conv" in row.op_type for row in torch_profile.rows) and torch_profile.total_ms > 0
    assert [row.op_type for row in profiles["m"].rows] == ["MatMul", "Relu"]
    assert [row.op_type for row in profiles["d.fp32"].rows] == ["FULLY_CONNECTED", "FULLY_CONNECTED"]
    assert "op by op" in profiles["d.fp32"].source and not profiles["d.fp32"].profile_unavailable
