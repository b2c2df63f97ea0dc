"""edgekd report --compare: slower, bigger, less accurate, newly failing; noise is not a regression."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from edgekd import console
from edgekd.commands.report import report_cmd
from edgekd.errors import UsageError
from edgekd.report.build import build_report
from edgekd.report.compare import compare_reports, compare_runs, load_run_report
from tests.support.report_run import make_run_dir


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return build_report(make_run_dir(tmp_path_factory.mktemp("a")))


def _kinds(result: dict) -> set[tuple[str, str | None, str | None]]:
    return {(r["kind"], r["artifact"], r["target"]) for r in result["regressions"]}


def test_same_run_with_fresh_noise_has_no_regressions(tmp_path: Path, baseline: dict) -> None:
    other = build_report(make_run_dir(tmp_path, seed=7))  # new latency samples, same medians
    result = compare_reports(baseline, other)
    assert result["regressions"] == [] and result["improvements"] == []
    assert all(row["verdict"] == "same" for row in result["latency"])


def test_slower_model_is_flagged_with_a_significance_test(baseline: dict) -> None:
    slower = copy.deepcopy(baseline)
    row = next(r for r in slower["bench"] if (r["artifact"], r["target"]) == ("onnx_int8", "local"))
    row["latencies_ns"] = [round(v * 1.3) for v in row["latencies_ns"]]
    row["p50_ms"] *= 1.3
    result = compare_reports(baseline, slower)
    assert _kinds(result) == {("slower", "onnx_int8", "local")}
    latency = next(r for r in result["latency"] if r["verdict"] == "slower")
    assert latency["p_value"] < 1e-6 and latency["ratio"] == pytest.approx(1.3)


def test_median_shift_without_significance_is_not_flagged(baseline: dict) -> None:
    """A p50 that moved by 6% on a noisy series with only 8 samples each is not called a regression."""
    a, b = copy.deepcopy(baseline), copy.deepcopy(baseline)
    row_a = a["bench"][0]
    row_a["latencies_ns"] = [1_000_000, 1_400_000, 800_000, 1_200_000, 900_000, 1_500_000, 700_000, 1_100_000]
    row_a["p50_ms"] = 1.05
    row_b = b["bench"][0]
    row_b["latencies_ns"] = [1_100_000, 1_300_000, 900_000, 1_250_000, 850_000, 1_450_000, 750_000, 1_200_000]
    row_b["p50_ms"] = 1.05 * 1.06
    result = compare_reports(a, b)
    assert result["regressions"] == []
    assert result["latency"][0]["p_value"] > 0.01


def test_bigger_less_accurate_and_newly_failing(baseline: dict) -> None:
    worse = copy.deepcopy(baseline)
    next(a for a in worse["artifacts"] if a["name"] == "tflite_fp32")["size_bytes"] *= 2
    parity = next(p for p in worse["parity"] if p["artifact"] == "onnx_int8")
    parity["accuracy"], parity["passed"] = 0.90, False
    worse["distill"]["student_accuracy"] = 0.93
    kinds = _kinds(compare_reports(baseline, worse))
    assert ("bigger", "tflite_fp32", None) in kinds
    assert ("fails parity", "onnx_int8", None) in kinds
    assert ("less accurate", "student (distill)", None) in kinds


def test_improvements_and_missing_artifacts(baseline: dict) -> None:
    better = copy.deepcopy(baseline)
    next(a for a in better["artifacts"] if a["name"] == "onnx_fp32")["size_bytes"] //= 2
    better["artifacts"] = [a for a in better["artifacts"] if a["name"] != "tflite_int8"]
    result = compare_reports(baseline, better)
    assert ("smaller", "onnx_fp32") in {(r["kind"], r["artifact"]) for r in result["improvements"]}
    assert result["only_in_a"] == ["tflite_int8"] and result["only_in_b"] == []


def test_runs_without_report_json_are_built_from_manifests(tmp_path: Path) -> None:
    run_a = make_run_dir(tmp_path / "a")
    run_b = make_run_dir(tmp_path / "b", seed=2)
    assert not (run_a / "report.json").exists()
    assert compare_runs(run_a, run_b)["regressions"] == []


def test_unknown_run_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "other.json").write_text(json.dumps({"schema": "something/1"}))
    with pytest.raises(UsageError):
        load_run_report(tmp_path / "other.json")
    with pytest.raises(UsageError):
        load_run_report("no-such-run-anywhere")


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _options(json_output: bool = typer.Option(False, "--json")) -> None:
        console.set_mode(json_output=json_output)

    app.command("report")(report_cmd)
    return app


def test_command_writes_reports_and_compares(tmp_path: Path, baseline: dict) -> None:
    run_a = make_run_dir(tmp_path / "a")
    runner = CliRunner()
    result = runner.invoke(_app(), ["--json", "report", str(run_a)])
    assert result.exit_code == 0, result.output
    assert {Path(p).name for p in json.loads(result.stdout)["paths"]} == {"report.json", "report.md", "report.html"}
    slower = copy.deepcopy(json.loads((run_a / "report.json").read_text()))
    for row in slower["bench"]:
        row["latencies_ns"] = [round(v * 1.5) for v in row["latencies_ns"]]
        row["p50_ms"] *= 1.5
    (tmp_path / "b.json").write_text(json.dumps(slower))
    args = ["--json", "report", "--compare", str(run_a), str(tmp_path / "b.json")]
    assert runner.invoke(_app(), args).exit_code == 0
    comment = tmp_path / "compare.md"
    failing = runner.invoke(_app(), [*args, "--fail-on-regression", "--markdown", str(comment)])
    assert failing.exit_code == 1
    assert len(json.loads(failing.stdout)["regressions"]) == 9
    text = comment.read_text(encoding="utf-8")
    assert "**❌ 9 regression(s)**" in text and "| slower | tflite_int8 | pi5 | p50 " in text
    console.set_mode()


def test_command_rejects_both_forms(tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["report", str(tmp_path), "--compare", str(tmp_path), str(tmp_path)])
    assert isinstance(result.exception, UsageError)


def test_runs_from_the_history(tmp_path: Path, baseline: dict) -> None:
    """`--compare latest~1 latest`: one run recorded with its report, one with bench results only."""
    from edgekd.bench.history import History

    history = History()  # EDGEKD_HISTORY points into the test's temporary directory
    history.record_run("digits:before", "r1", baseline["bench"], meta={"report": baseline})
    slower = copy.deepcopy(baseline["bench"])
    for row in slower:
        if row["artifact"] == "tflite_int8":
            row["latencies_ns"] = [round(v * 1.4) for v in row["latencies_ns"]]
            row["p50_ms"] *= 1.4
    history.record_run("digits:after", "r1", slower, meta={})
    result = compare_runs(Path("latest~1"), Path("latest"))
    assert _kinds(result) == {("slower", "tflite_int8", "local"), ("slower", "tflite_int8", "pi5")}
    assert load_run_report("digits:bef")["distill"] == baseline["distill"]  # a unique prefix works
    with pytest.raises(UsageError):
        load_run_report("digits:")  # ambiguous prefix: says so rather than picking one


def _unrelated(baseline: dict) -> dict:
    """Another recipe on other data: 28x28 images of 3 classes, its own artifact names and recipe hash."""
    other = copy.deepcopy(baseline)
    other["run"] = {"name": "fashion", "dir": "runs/fashion"}
    other["identity"] = {
        "recipe_name": "fashion",
        "recipe_hash": "b" * 64,
        "data_sha256": "c" * 64,
        "samples": 900,
        "input_shape": [1, 28, 28],
        "num_classes": 3,
        "label_names": ["shirt", "shoe", "bag"],
    }
    for section in ("artifacts",):
        for row in other[section]:
            row["name"] = "fashion_" + row["name"]
    for section in ("parity", "bench"):
        for row in other[section]:
            row["artifact"] = "fashion_" + row["artifact"]
    return other


def test_unrelated_runs_get_a_warning(tmp_path: Path, baseline: dict) -> None:
    other = _unrelated(baseline)
    result = compare_reports(baseline, other)
    assert result["unrelated"][:2] == [
        "different input shape ([1, 8, 8] vs [1, 28, 28])",
        "different number of classes (10 vs 3)",
    ]
    assert "no artifact or bench row in common" in result["unrelated"]
    assert "different recipes" not in " ".join(result["unrelated"])  # the baseline's recipe name is unknown
    named = {**baseline, "identity": {**baseline["identity"], "recipe_name": "digits"}}
    assert compare_reports(named, other)["unrelated"][-1] == (
        "different recipes (digits vs fashion) on different data (1797 vs 900 samples)"
    )
    assert result["warnings"] == [
        (
            f"digits and fashion look unrelated ({'; '.join(result['unrelated'])}): the "
            "changes below compare different models, not a regression of one"
        )
    ]
    # the same recipe, rerun: no warning (identity from manifests: same data, same task)
    assert compare_reports(baseline, copy.deepcopy(baseline))["warnings"] == []
    # a changed recipe (even renamed) on a new split of the same data is what --compare is for: no warning
    changed = copy.deepcopy(baseline)
    changed["identity"] = {
        **baseline["identity"],
        "recipe_hash": "d" * 64,
        "recipe_name": "digits-wide",
        "data_sha256": "e" * 64,
    }
    named["identity"]["recipe_hash"] = "f" * 64
    assert compare_reports(named, changed)["warnings"] == []


def test_unrelated_warning_in_the_command_and_the_comment(tmp_path: Path, baseline: dict) -> None:
    (tmp_path / "a.json").write_text(json.dumps(baseline))
    (tmp_path / "b.json").write_text(json.dumps(_unrelated(baseline)))
    comment = tmp_path / "compare.md"
    result = CliRunner().invoke(
        _app(), ["report", "--compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--markdown", str(comment)]
    )
    assert result.exit_code == 0, result.output
    assert " ".join(result.stdout.split()).startswith(
        "warning: digits and fashion look unrelated (different input shape"
    )
    assert "⚠️ **Warning**: digits and fashion look unrelated" in comment.read_text(encoding="utf-8")
