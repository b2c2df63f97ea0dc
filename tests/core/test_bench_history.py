"""SQLite history and run comparison with a significance test."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from edgekd.bench.compare import EXIT_REGRESSION, compare
from edgekd.bench.history import History, default_history_path
from edgekd.bench.result import BenchResult
from edgekd.errors import BenchError
from edgekd.measure import compute_stats


def result(name: str, latencies: np.ndarray, target: str = "local") -> BenchResult:
    samples = [int(x) for x in latencies]
    return BenchResult(
        artifact=name,
        artifact_sha256="ab" * 32,
        format="onnx",
        precision="fp32",
        target=target,
        runtime="ort",
        versions={"runtime": "1.32.0"},
        latencies_ns=samples,
        stats=compute_stats(samples),
        init_ms=1.0,
        first_ms=0.5,
        peak_rss_kb=70000,
        baseline_rss_kb=50000,
        env={"device": target, "cpu_model": "test cpu", "temps_c_after": {"cpu": 50.0}},
    )


def samples(median_us: float, n: int = 300, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(np.log(median_us * 1000), 0.03, n)


@pytest.fixture
def history(tmp_path: Path) -> History:
    return History(tmp_path / "h.sqlite")


def test_default_path_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EDGEKD_HISTORY", str(tmp_path / "x.sqlite"))
    assert default_history_path() == tmp_path / "x.sqlite" and History().path == tmp_path / "x.sqlite"
    monkeypatch.delenv("EDGEKD_HISTORY")
    assert default_history_path() == Path.home() / ".local/share/edgekd/history.sqlite"


def test_record_list_resolve_and_read_back(history: History) -> None:
    history.record_run("run-a", "hash1", [result("m", samples(100))], {"note": "first"})
    history.record_run("run-b", None, [result("m", samples(100, seed=1)).summary()], {})
    runs = history.runs()
    assert [r["run_id"] for r in runs] == ["run-b", "run-a"] and runs[1]["recipe_hash"] == "hash1"
    assert runs[1]["meta"] == {"note": "first"} and runs[0]["results"] == 1
    assert history.resolve("latest") == "run-b" and history.resolve("latest~1") == "run-a"
    (stored,) = history.results("run-a")
    assert stored["schema"] == "edgekd.bench/1" and len(stored["latencies_ns"]) == 300
    assert BenchResult.from_dict(stored).stats == result("m", samples(100)).stats
    with sqlite3.connect(history.path) as db:  # environments are stored once per distinct machine/software
        assert db.execute("SELECT COUNT(*) FROM environments").fetchone()[0] == 1


def test_recording_a_run_again_replaces_it(history: History) -> None:
    history.record_run("r", None, [result("a", samples(100)), result("b", samples(100))], {})
    history.record_run("r", None, [result("a", samples(120))], {})
    assert len(history.runs()) == 1 and [r["artifact"] for r in history.results("r")] == ["a"]


def test_unknown_runs_get_suggestions(history: History) -> None:
    history.record_run("20261129-baseline", None, [result("m", samples(100))], {})
    assert history.resolve("20261129") == "20261129-baseline"  # unique prefix
    with pytest.raises(BenchError, match="no run 'baselin'") as caught:
        history.resolve("baselin")
    with pytest.raises(BenchError, match="latest~5"):
        history.resolve("latest~5")
    assert caught.value.hint and "bench history" in caught.value.hint


def test_corrupt_or_newer_database_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"not a database" * 100)
    with pytest.raises(BenchError, match="not a usable SQLite database"):
        History(bad).runs()
    newer = tmp_path / "newer.sqlite"
    with sqlite3.connect(newer) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(BenchError, match="newer edgekd"):
        History(newer).runs()


@pytest.mark.parametrize(
    ("factor", "verdict", "exit_code"),
    [(1.20, "regression", EXIT_REGRESSION), (0.80, "improvement", 0), (1.02, "unchanged", 0), (1.0, "unchanged", 0)],
)
def test_compare_verdicts(history: History, factor: float, verdict: str, exit_code: int) -> None:
    history.record_run("a", None, [result("m", samples(100))], {})
    history.record_run("b", None, [result("m", samples(100 * factor, seed=1))], {})
    comparison = compare("a", "b", history=history)
    (row,) = comparison.rows
    assert row.verdict == verdict and comparison.exit_code == exit_code
    assert row.method == "mann-whitney-u" and row.p_value is not None
    if factor != 1.0:
        assert row.p_value < 0.01  # even 2% is significant with 300 samples: the threshold keeps it "unchanged"


def test_compare_summaries_without_raw_samples_uses_confidence_intervals(history: History) -> None:
    history.record_run("a", None, [result("m", samples(100)).summary()], {})
    history.record_run("b", None, [result("m", samples(130, seed=1)).summary()], {})
    (row,) = compare("a", "b", history=history).rows
    assert (row.method, row.verdict) == ("ci-overlap", "regression")


def test_compare_pairs_by_name_and_reports_missing(history: History) -> None:
    history.record_run("a", None, [result("x", samples(100)), result("y", samples(100))], {})
    history.record_run("b", None, [result("x", samples(100)), result("z", samples(100))], {})
    verdicts = {row.artifact: row.verdict for row in compare("a", "b", history=history).rows}
    assert verdicts == {"x": "unchanged", "y": "only-in-a", "z": "only-in-b"}


def test_compare_json_result_files(tmp_path: Path) -> None:
    for name, median in (("a", 100), ("b", 150)):
        (tmp_path / f"{name}.json").write_text(json.dumps({"results": [result("m", samples(median)).to_dict()]}))
    comparison = compare(tmp_path / "a.json", tmp_path / "b.json")
    assert comparison.exit_code == EXIT_REGRESSION and comparison.to_dict()["regressions"] == 1
