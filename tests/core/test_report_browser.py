"""report.html in a real headless Chromium: no console errors, every image loads, nothing remote, a screenshot."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from edgekd.config.report import ReportConfig
from edgekd.report import write_reports
from edgekd.report.build import build_report
from tests.support.chromium import check_page, find_chromium
from tests.support.report_run import make_run_dir

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def _need_chromium() -> None:
    if find_chromium() is None:
        message = "chromium is not installed (apt-get install -y chromium; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


@pytest.mark.parametrize("plot_format", ["svg", "png"])
def test_report_opens_cleanly(tmp_path: Path, plot_format: str) -> None:
    run = make_run_dir(tmp_path)
    write_reports(run, build_report(run), ReportConfig(plot_format=plot_format))
    shot = tmp_path / f"report-{plot_format}.png"
    result = check_page(run / "report.html", shot)
    assert result.console_errors == []
    assert result.remote_requests == [] and result.failed_requests == []
    assert result.title == "edgekd report: digits"
    assert len(result.images) >= 3
    for image in result.images:
        assert image["complete"] and image["naturalWidth"] > 0 and image["naturalHeight"] > 0, image
    width, height = _png_size(shot)
    assert width >= 1000 and height > 2000  # the whole page, not just the first screen


def test_checker_sees_broken_pages(tmp_path: Path) -> None:
    """The same check fails on a page with a broken image, a console error and a remote fetch."""
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><head><title>broken</title></head><body>"
        '<img src="data:image/png;base64,AAAA" alt="corrupt">'
        '<img src="http://127.0.0.1:9/remote.png" alt="remote">'
        "<script>console.error('boom')</script></body></html>",
        encoding="utf-8",
    )
    result = check_page(page, tmp_path / "broken.png", timeout=20)
    assert any("boom" in e for e in result.console_errors)
    assert any(image["naturalWidth"] == 0 for image in result.images)
    assert result.remote_requests == ["http://127.0.0.1:9/remote.png"]
