"""The seams between the bench core, the targets and the pipeline: tool summaries as statistics, a Pi
profile's threads and pinning, the bench stage as a fleet, and pipeline history rows in `bench compare`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgekd.artifacts import Artifact, create_artifact
from edgekd.bench.compare import compare
from edgekd.bench.history import History
from edgekd.bench.orchestrate import bench_artifacts
from edgekd.config.bench import BenchConfig
from edgekd.errors import TargetError
from edgekd.measure import Stats, compute_stats
from edgekd.pipeline import StageContext
from edgekd.recipe import parse_recipe
from edgekd.stages import delivery
from edgekd.targets.local import LocalTarget
from edgekd.targets.ssh.entry import load_profile

REPO = Path(__file__).resolve().parents[2]
from tests.support.bench_models import make_matmul_onnx

FAST = {"runs": 20, "warmup": 1, "energy": False}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    path = make_matmul_onnx(tmp_path_factory.mktemp("models") / "chain.onnx", layers=2, size=32)
    return create_artifact(path, name="chain", format="onnx", precision="fp32", producer="test")


# -- statistics from a tool's summary ------------------------------------------------------------


def test_one_summary_is_taken_as_printed() -> None:
    stats = Stats.from_summaries(
        [
            {
                "count": 50,
                "mean_ms": 2.0,
                "std_ms": 0.1,
                "min_ms": 1.8,
                "max_ms": 2.9,
                "p50_ms": 1.95,
                "p90_ms": 2.2,
                "p99_ms": 2.8,
            }
        ],
        "onnxruntime_perf_test",
    )
    figures = stats.ms()
    assert (
        figures["runs"] == 50 and figures["p50_ms"] == pytest.approx(1.95) and figures["p99_ms"] == pytest.approx(2.8)
    )
    assert figures["std_ms"] == pytest.approx(0.1) and figures["min_ms"] == pytest.approx(1.8)
    assert figures["iqr_ms"] is None and figures["mad_ms"] is None and figures["ci95_median_ms"] is None
    assert not stats.unstable and stats.source == "tool-summary"
    assert Stats.from_dict(stats.to_dict()) == stats  # survives the history's JSON


def test_repeats_pool_exactly_and_missing_percentiles_stay_empty() -> None:
    rng = np.random.default_rng(0)
    first, second = rng.normal(2.0, 0.05, 40), rng.normal(2.4, 0.05, 60)
    summaries = [
        {
            "count": len(x),
            "mean_ms": float(x.mean()),
            "std_ms": float(x.std(ddof=1)),
            "min_ms": float(x.min()),
            "max_ms": float(x.max()),
        }
        for x in (first, second)
    ]
    stats = Stats.from_summaries(summaries, "tflite-benchmark_model")
    pooled = np.concatenate([first, second])
    assert stats.n == 100 and stats.mean_ns == pytest.approx(pooled.mean() * 1e6)
    assert stats.std_ns == pytest.approx(pooled.std(ddof=1) * 1e6)
    assert stats.min_ns == pytest.approx(pooled.min() * 1e6) and stats.max_ns == pytest.approx(pooled.max() * 1e6)
    assert stats.p50_ns is None and stats.p90_ns is None and stats.center_ns == stats.mean_ns
    assert any("does not report p50/p90/p99" in w for w in stats.warnings)
    assert stats.unstable  # std/mean ≈ 0.1 > 0.074: two repeats at different speeds


def test_a_summary_without_a_mean_is_refused() -> None:
    with pytest.raises(ValueError, match="no average"):
        Stats.from_summaries([{"count": 5}], "benchmark_model")


# -- a Pi profile's threads and pinning ----------------------------------------------------------


class ProfiledTarget(LocalTarget):
    """The local machine standing in for a Pi with the rpi5 profile (4 threads, cores 0-3)."""

    def __init__(self, tmp: Path) -> None:
        super().__init__("pi5", workdir_parent=tmp / "work", sysfs=tmp / "sys")
        self.profile = load_profile("rpi5")
        self.argvs: list[list[str]] = []

    def run(self, argv, timeout):  # type: ignore[no-untyped-def]
        self.argvs.append(list(argv))
        return super().run(argv, timeout)


def _option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_profile_fills_what_the_user_left_unset(model: Artifact, tmp_path: Path) -> None:
    target = ProfiledTarget(tmp_path)
    [result] = bench_artifacts(target, [model], BenchConfig(**FAST))
    timed = [argv for argv in target.argvs if "--model" in argv]
    count = target.info().cores or 0
    cores = [c for c in range(4) if c < count]
    threads = min(4, count)  # the profile's 4 threads, capped at the cores this machine has
    assert timed and all(
        _option(a, "--threads") == str(threads) and _option(a, "--pin") == ",".join(map(str, cores)) for a in timed
    )
    settings = result.env["settings"]
    assert settings["from_profile"] == {"profile": "Raspberry Pi 5", "threads": threads, "pin_cores": cores}
    assert settings["set_by_user"] == [] and result.config["threads"] == threads and result.env["threads"] == threads
    if count < 4:
        assert (
            f"profile Raspberry Pi 5 runs 4 threads; the device has {count} cores, so {count} threads were used"
            in settings["notes"]
        )


def test_profile_threads_are_capped_at_the_devices_cores(model: Artifact, tmp_path: Path) -> None:
    """A 2-core board given the 4-thread rpi5 profile: 2 threads, and env.settings says why."""
    target = ProfiledTarget(tmp_path)
    two_cores = replace(target.info(), cores=2)
    target.info = lambda: two_cores  # type: ignore[method-assign]
    [result] = bench_artifacts(target, [model], BenchConfig(**FAST))
    assert all(_option(a, "--threads") == "2" for a in target.argvs if "--model" in a)
    settings = result.env["settings"]
    assert settings["threads"] == 2 and settings["from_profile"]["threads"] == 2
    assert (
        settings["notes"][0] == "profile Raspberry Pi 5 runs 4 threads; the device has 2 cores, so 2 threads were used"
    )


def test_the_users_threads_and_pinning_always_win(model: Artifact, tmp_path: Path) -> None:
    target = ProfiledTarget(tmp_path)
    [result] = bench_artifacts(target, [model], BenchConfig(threads=1, pin_cores=[0], **FAST))
    timed = [argv for argv in target.argvs if "--model" in argv]
    assert all(_option(a, "--threads") == "1" and _option(a, "--pin") == "0" for a in timed)
    assert result.env["settings"]["from_profile"] == {} and result.env["settings"]["set_by_user"] == [
        "threads",
        "pin_cores",
    ]
    # Half a choice: the user's threads, the profile's pinning.
    target = ProfiledTarget(tmp_path)
    [result] = bench_artifacts(target, [model], BenchConfig(threads=2, **FAST))
    assert result.env["settings"]["from_profile"].keys() == {"profile", "pin_cores"} and result.config["threads"] == 2


def test_recipe_section_counts_as_the_users_choice() -> None:
    recipe = parse_recipe({"bench": {"threads": 1}})
    assert "threads" in recipe.bench.model_fields_set and "pin_cores" not in recipe.bench.model_fields_set


# -- the bench stage as a fleet ------------------------------------------------------------------


class BrokenTarget(LocalTarget):
    def connect(self) -> None:
        raise TargetError(f"{self.name} is unreachable", hint="check the cable")


def _stage_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: Artifact, names: list[str], **bench: Any) -> Any:
    def make_target(name: str, _inventory: Any, *, options: Any = None) -> LocalTarget:
        cls = BrokenTarget if name.startswith("broken") else LocalTarget
        return cls(name, workdir_parent=tmp_path / "work", sysfs=tmp_path / "sys", options=options)

    monkeypatch.setattr("edgekd.inventory.make_target", make_target)
    monkeypatch.setattr(delivery, "deployable_models", lambda _ctx: [model])
    recipe = parse_recipe({"bench": {"targets": names, **FAST, **bench}})
    ctx = StageContext(
        recipe=recipe, base_dir=tmp_path, run_dir=tmp_path / "run", workdir=tmp_path / "wd", inputs={}, summaries={}
    )
    stage = delivery.BenchStage()
    return stage, recipe, stage.run(ctx)


def test_bench_stage_keeps_the_others_results_and_fails_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: Artifact
) -> None:
    stage, recipe, result = _stage_run(tmp_path, monkeypatch, model, ["local", "broken-pi", "box2"])
    rows = result.summary["results"]
    assert [row["target"] for row in rows] == ["local", "box2"]
    assert all(len(row["latencies_ns"]) == 20 and all(isinstance(v, int) for v in row["latencies_ns"]) for row in rows)
    assert list(result.summary["failed_targets"]) == ["broken-pi"]
    error = stage.gate(recipe, result.summary)
    assert isinstance(error, TargetError) and "broken-pi: broken-pi is unreachable" in error.message
    assert "results of box2, local are kept" in error.message and "--only bench" in (error.hint or "")
    assert stage.gate(recipe, {"results": rows, "failed_targets": {}}) is None


def test_the_bench_stage_makes_its_targets_with_the_recipes_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: Artifact
) -> None:
    """[bench] allow_charging reaches the targets at construction (a target made without it would refuse)."""
    _stage, _recipe, result = _stage_run(tmp_path, monkeypatch, model, ["local"], allow_charging=True)
    assert [row["target"] for row in result.summary["results"]] == ["local"]


def test_bench_stage_with_only_a_failing_target_raises_its_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: Artifact
) -> None:
    with pytest.raises(TargetError, match="broken is unreachable"):
        _stage_run(tmp_path, monkeypatch, model, ["broken"])
    with pytest.raises(TargetError, match="every target") as caught:
        _stage_run(tmp_path, monkeypatch, model, ["broken", "broken2"])
    assert "broken2 is unreachable" in caught.value.message


# -- pipeline history rows in `bench compare` ----------------------------------------------------


def _pipeline_row(latencies_ms: np.ndarray, unit: str = "ns") -> dict[str, Any]:
    """A bench row as the pipeline's report records it: summary figures plus raw samples in ns (report.json
    schema 2), or in ms (`unit="ms"`: rows an older edgekd left in the history)."""
    from edgekd.report.build import bench_row

    stats = compute_stats((latencies_ms * 1e6).astype(np.int64))
    row = {"artifact": "student_int8", "target": "local", "runtime": "ort", **stats.ms(), "warnings": [], "env": {}}
    if unit == "ms":
        return {**bench_row(row), "latencies_ms": [float(v) for v in latencies_ms]}
    return bench_row({**row, "latencies_ns": [round(float(v) * 1e6) for v in latencies_ms]})


def test_compare_uses_the_raw_samples_of_pipeline_runs(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    store = History(tmp_path / "history.sqlite")
    before = rng.lognormal(np.log(2.0), 0.3, 300)
    store.record_run("digits:/runs/a", "hash", [_pipeline_row(before)], {"run_dir": "/runs/a"})
    store.record_run("digits:/runs/b", "hash", [_pipeline_row(before * 1.15)], {"run_dir": "/runs/b"})
    [row] = compare("digits:/runs/a", "digits:/runs/b", history=store).rows
    assert row.method == "mann-whitney-u" and row.p_value is not None and row.p_value < 0.01
    assert row.verdict == "regression" and row.n_a == row.n_b == 300
    [same] = compare("digits:/runs/a", "digits:/runs/a", history=store).rows
    assert same.method == "mann-whitney-u" and same.verdict == "unchanged"


def test_compare_reads_old_history_rows_in_milliseconds(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    store = History(tmp_path / "history.sqlite")
    before = rng.lognormal(np.log(2.0), 0.3, 300)
    store.record_run("digits:/runs/old", "hash", [_pipeline_row(before, unit="ms")], {"run_dir": "/runs/old"})
    store.record_run("digits:/runs/new", "hash", [_pipeline_row(before * 1.15)], {"run_dir": "/runs/new"})
    [row] = compare("digits:/runs/old", "digits:/runs/new", history=store).rows
    assert row.method == "mann-whitney-u" and row.verdict == "regression" and row.n_a == row.n_b == 300


@pytest.mark.parametrize("error", [None, "out of memory", ["x"]])
def test_a_runner_error_that_is_not_an_object_is_a_bench_error(error: object) -> None:
    import json

    from edgekd.bench.orchestrate import RUN_SCHEMA, parse_runner_output
    from edgekd.errors import BenchError
    from edgekd.target_protocol import Completed

    stdout = json.dumps({"schema": RUN_SCHEMA, "error": error})
    with pytest.raises(BenchError, match="did not describe"):
        parse_runner_output(Completed(["runner"], 1, stdout, "", 0.1), "phone")


def _tool_row(mean_ms: float, std_ms: float, runs: int = 100) -> dict[str, Any]:
    summary = {
        "count": runs,
        "mean_ms": mean_ms,
        "std_ms": std_ms,
        "min_ms": mean_ms - std_ms,
        "max_ms": mean_ms + 3 * std_ms,
        "p50_ms": mean_ms,
    }
    stats = Stats.from_summaries([summary], "onnxruntime_perf_test")
    return {"artifact": "m", "target": "pixel", "runtime": "onnxruntime_perf_test", **stats.ms(), "latencies_ns": []}


def test_compare_tool_summaries_with_welch_t() -> None:
    [slower] = compare([_tool_row(2.0, 0.1)], [_tool_row(2.3, 0.1)]).rows
    assert slower.method == "welch-t-from-summary" and slower.p_value is not None and slower.p_value < 1e-6
    assert slower.verdict == "regression"
    [noisy] = compare([_tool_row(2.0, 1.5, runs=10)], [_tool_row(2.3, 1.5, runs=10)]).rows
    assert noisy.method == "welch-t-from-summary" and noisy.verdict == "unchanged"  # 15% slower, but within noise
