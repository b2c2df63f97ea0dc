"""`edgekd bench --mlperf` and `[bench] min_runs`: a timed run held to both a run floor and a duration.

MLPerf's single-stream rule (≥ 1024 queries and ≥ 60 s, p90 reported) is tested with the preset's constants
made small (the rule's logic, not its minute).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekd.commands import bench as bench_command
from edgekd.errors import RecipeError, UsageError
from tests.core.test_bench_profile import cli, models  # noqa: F401 - fixtures shared with the profile tests
from tests.runner.test_runner import run_runner


def test_runner_keeps_running_until_both_floors(onnx_model_file: Path) -> None:
    status, doc = run_runner("--model", onnx_model_file, "--duration", 0.01, "--min-runs", 500, "--warmup", 0)
    assert status == 0 and len(doc["latencies_ns"]) >= 500


def test_runner_refuses_min_runs_without_duration(onnx_model_file: Path) -> None:
    status, doc = run_runner("--model", onnx_model_file, "--min-runs", 5)
    assert status == 3 and doc["error"]["message"] == "--min-runs needs --duration and a count from 1 to 1000000"


@pytest.fixture(scope="module")
def onnx_model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.bench_models import make_matmul_onnx

    return make_matmul_onnx(tmp_path_factory.mktemp("mlperf") / "m.onnx")


def test_mlperf_preset_gives_p90_over_the_floor_of_runs(cli, models, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setattr(bench_command, "MLPERF_MIN_RUNS", 300)
    monkeypatch.setattr(bench_command, "MLPERF_SECONDS", 0.05)
    runner, app = cli
    outcome = runner.invoke(
        app, ["bench", str(models["one"]), "--target", "local", "--warmup", "1", "--no-energy", "--mlperf", "--json"]
    )
    assert outcome.exit_code == 0, outcome.output
    (row,) = json.loads(outcome.stdout)["results"]
    assert row["mlperf"]["headline"] == "p90" and row["mlperf"]["p90_ms"] == row["p90_ms"]
    assert row["mlperf"]["runs"] >= 300 and len(row["latencies_ns"]) >= 300
    assert row["mlperf"]["rule"] == {"min_runs": 300, "min_seconds": 0.05}


def test_mlperf_prints_the_p90_headline(cli, models, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setattr(bench_command, "MLPERF_MIN_RUNS", 50)
    monkeypatch.setattr(bench_command, "MLPERF_SECONDS", 0.01)
    runner, app = cli
    outcome = runner.invoke(app, ["bench", str(models["one"]), "--target", "local", "--no-energy", "--mlperf"])
    assert outcome.exit_code == 0, outcome.output
    assert "MLPerf single-stream one on local: p90 " in " ".join(outcome.output.split())


def test_mlperf_with_runs_is_refused(cli, models) -> None:  # noqa: F811
    runner, app = cli
    outcome = runner.invoke(app, ["bench", str(models["one"]), "--mlperf", "--runs", "10"])
    assert isinstance(outcome.exception, UsageError)
    assert (
        outcome.exception.message
        == "--mlperf runs for a duration with a floor of runs; --runs cannot be combined with it"
    )


def test_recipe_min_runs_without_duration_is_refused() -> None:
    """Refused when the recipe is read, before training (never accepted and ignored)."""
    from edgekd.bench.orchestrate import check_work_bounds
    from edgekd.config.bench import BenchConfig
    from edgekd.recipe import parse_recipe

    with pytest.raises(RecipeError, match="min_runs goes with duration_s"):
        parse_recipe({"bench": {"min_runs": 10}})
    check_work_bounds(BenchConfig(min_runs=10, duration_s=1.0))
