"""report.md: a golden file for the demo-like run, and cells that cannot break the table."""

from __future__ import annotations

import os
from pathlib import Path

from edgekd.report.build import build_report
from edgekd.report.markdown import cell, render_markdown
from tests.support.report_run import make_run_dir

GOLDEN = Path(__file__).parent / "golden" / "report.md"


def test_markdown_matches_golden(tmp_path: Path) -> None:
    text = render_markdown(build_report(make_run_dir(tmp_path)))
    if os.environ.get("EDGEKD_UPDATE_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8"), "rerun with EDGEKD_UPDATE_GOLDEN=1 if the change is intended"


def test_markdown_does_not_depend_on_time_or_location(tmp_path: Path) -> None:
    first = render_markdown(build_report(make_run_dir(tmp_path / "a")))
    second = render_markdown(build_report(make_run_dir(tmp_path / "b", seed=3)))
    assert first == second  # different directory, latency samples and creation time: same comment


def test_partial_run_markdown(tmp_path: Path) -> None:
    text = render_markdown(build_report(make_run_dir(tmp_path, stages=("data", "teacher", "distill"))))
    assert "Parity: not verified" in text
    assert "## Distillation" in text and "## Latency" not in text
    assert "bench ·" in text  # shown as not run in the pipeline line


def test_cells_escape_pipes_newlines_and_html() -> None:
    assert cell("a|b\nc<script>") == "a\\|b c&lt;script&gt;"


def test_hostile_artifact_name_stays_inside_its_cell() -> None:
    report = {
        "run": {"name": "x"},
        "parity": [{"artifact": "evil|<img src=x>", "passed": False}],
        "artifacts": [],
        "bench": [],
        "stages": [],
    }
    text = render_markdown(report)
    row = next(line for line in text.splitlines() if line.startswith("| evil"))
    assert row.count(" | ") == 8  # nine columns, the pipe in the name is escaped
    assert "<img" not in text


def test_comment_stays_under_the_github_limit(tmp_path: Path) -> None:
    report = build_report(make_run_dir(tmp_path))
    report["environments"] = {f"device{i}": {f"key{j}": "x" * 40 for j in range(60)} for i in range(40)}
    text = render_markdown(report)
    assert len(text) < 65_536
    assert "Environment tables left out" in text and "## Latency" in text
