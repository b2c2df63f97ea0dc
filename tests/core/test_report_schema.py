"""report.json schema 2 (raw samples in ns) and the reader for schema 1 (raw samples in ms).

golden/report_schema1.json was written by edgekd at commit 01e72d0 (schema `edgekd.report/1`, bench rows with
`latencies_ms`), from tests/support/report_run.make_run_dir(runs=24) of that commit.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekd.errors import UsageError
from edgekd.report.build import build_report
from edgekd.report.compare import compare_runs, load_run_report
from edgekd.report.html import render_html
from edgekd.report.markdown import render_markdown
from edgekd.report.plots import render_plots
from edgekd.report.schema import REPORT_SCHEMA, upgrade_report
from tests.support.report_run import make_run_dir

OLD = Path(__file__).parent / "golden" / "report_schema1.json"


def test_the_current_schema_keeps_raw_samples_as_integer_nanoseconds(tmp_path: Path) -> None:
    report = build_report(make_run_dir(tmp_path, runs=24))
    assert report["schema"] == REPORT_SCHEMA == "edgekd.report/2"
    for row in report["bench"]:
        assert "latencies_ms" not in row and len(row["latencies_ns"]) == 24
        assert all(isinstance(v, int) for v in row["latencies_ns"])


def test_an_old_report_is_read_in_the_current_schema() -> None:
    raw = json.loads(OLD.read_text(encoding="utf-8"))
    assert raw["schema"] == "edgekd.report/1" and "latencies_ms" in raw["bench"][0]
    report = load_run_report(OLD)
    assert report["schema"] == REPORT_SCHEMA and report["upgraded_from"] == "edgekd.report/1"
    for old_row, row in zip(raw["bench"], report["bench"], strict=True):
        assert "latencies_ms" not in row
        assert row["latencies_ns"] == [round(v * 1e6) for v in old_row["latencies_ms"]]
    assert upgrade_report(report) is report  # already current: returned as it is


def test_an_old_report_still_renders(tmp_path: Path) -> None:
    report = load_run_report(OLD)
    markdown = render_markdown(report)
    assert "onnx_int8" in markdown
    plots = render_plots(report)
    assert any(plot.key == "latency" for plot in plots)  # drawn from the converted samples
    html = render_html(report, plots)
    assert "Latency per artifact and target" in html


def test_an_old_report_compares_with_a_new_run(tmp_path: Path) -> None:
    """The same figures (make_run_dir of the same seed and size), once in ms and once in ns: nothing changed."""
    new = make_run_dir(tmp_path, runs=24)
    result = compare_runs(OLD, new)
    assert result["regressions"] == [] and result["improvements"] == []
    assert {row["method"] for row in result["latency"]} == {"mann-whitney-u"}
    assert all(row["verdict"] == "same" and row["p_value"] == pytest.approx(1.0) for row in result["latency"])


def test_a_report_of_a_newer_schema_is_refused_by_name(tmp_path: Path) -> None:
    newer = json.loads(OLD.read_text(encoding="utf-8")) | {"schema": "edgekd.report/9"}
    (tmp_path / "report.json").write_text(json.dumps(newer))
    with pytest.raises(UsageError, match="edgekd.report/9") as caught:
        load_run_report(tmp_path / "report.json")
    assert "edgekd version that wrote it" in (caught.value.hint or "")


def test_an_old_report_kept_in_the_history_compares_with_a_new_run(tmp_path: Path) -> None:
    """`edgekd run` stores its whole report in the history; one stored by an older edgekd is read as schema 2."""
    from edgekd.bench.history import History

    old = json.loads(OLD.read_text(encoding="utf-8"))
    History().record_run("digits:old", "r1", old["bench"], meta={"report": old})  # EDGEKD_HISTORY: the test's tmp
    report = load_run_report("digits:old")
    assert report["upgraded_from"] == "edgekd.report/1" and "latencies_ns" in report["bench"][0]
    result = compare_runs(Path("digits:old"), make_run_dir(tmp_path, runs=24))
    assert result["regressions"] == [] and {row["method"] for row in result["latency"]} == {"mann-whitney-u"}
