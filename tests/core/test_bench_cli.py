"""`edgekd bench MODEL --target local --json`, `bench history`, `bench compare` (with a deliberately slower model)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from edgekd import console
from edgekd.commands.bench import bench_app
from edgekd.errors import ModelError, TargetError, UsageError

REPO = Path(__file__).resolve().parents[2]
from tests.support.bench_models import make_matmul_onnx

QUICK = ["--target", "local", "--runs", "40", "--warmup", "2"]


def make_app() -> typer.Typer:
    """The bench group mounted as the lead's CLI mounts it, with the global --json option."""
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
    folder = tmp_path_factory.mktemp("cli-models")
    return {
        "fast": make_matmul_onnx(folder / "fast.onnx", layers=1, size=64),
        "slow": make_matmul_onnx(folder / "slow.onnx", layers=16, size=256),
    }


def test_bench_json_prints_percentiles_memory_and_energy(
    cli: tuple[CliRunner, typer.Typer], models: dict[str, Path]
) -> None:
    runner, app = cli
    outcome = runner.invoke(app, ["bench", str(models["fast"]), *QUICK, "--json"])
    assert outcome.exit_code == 0, outcome.output
    document = json.loads(outcome.stdout)
    (row,) = document["results"]
    assert row["p50_ms"] > 0 and row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
    assert row["peak_rss_kb"] > 0 and len(row["latencies_ns"]) == 40
    assert row["energy_j_per_inference"] is not None or row["energy_unavailable"]
    assert document["run_id"]


def test_slower_model_is_flagged_by_compare(cli: tuple[CliRunner, typer.Typer], models: dict[str, Path]) -> None:
    runner, app = cli
    for name in ("fast", "slow"):
        assert runner.invoke(app, ["bench", "model", str(models[name]), *QUICK, "--no-energy"]).exit_code == 0
    listed = json.loads(runner.invoke(app, ["--json", "bench", "history"]).stdout)
    assert [r["results"] for r in listed["runs"][:2]] == [1, 1]
    flagged = runner.invoke(app, ["bench", "compare", "latest~1", "latest", "--json"])
    assert flagged.exit_code == 1, flagged.output
    report = json.loads(flagged.stdout)
    assert report["regressions"] == 1 and report["rows"][0]["verdict"] == "regression"
    assert report["rows"][0]["artifact"] == "fast → slow"
    same = runner.invoke(app, ["bench", "compare", "latest", "latest"])
    assert same.exit_code == 0 and "unchanged" in same.stdout
    shown = json.loads(runner.invoke(app, ["--json", "bench", "history", "latest"]).stdout)
    assert shown["results"][0]["artifact"] == "slow"


@pytest.mark.parametrize(
    ("args", "error", "needle"),
    [
        (["{fast}", "--target", "lokal"], TargetError, "did you mean 'local'"),
        (["/nonexistent/model.onnx"], ModelError, "does not exist"),
        (["{fast}", "--pin", "a,b"], UsageError, "--pin"),
    ],
)
def test_bad_input_is_a_typed_error(
    cli: tuple[CliRunner, typer.Typer], models: dict[str, Path], args: list[str], error: type, needle: str
) -> None:
    runner, app = cli
    outcome = runner.invoke(app, ["bench", *[a.format(fast=models["fast"]) for a in args]])
    assert isinstance(outcome.exception, error)
    assert needle in str(outcome.exception)
