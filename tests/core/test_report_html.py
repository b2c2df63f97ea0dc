"""report.html: self-contained (nothing remote, no script), escaped, with the plots the issue asks for."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from edgekd.config.report import ReportConfig
from edgekd.report import write_reports
from edgekd.report.build import build_report
from edgekd.report.html import render_html
from edgekd.report.plots import render_plots
from tests.support.report_run import make_run_dir


class _Resources(HTMLParser):
    """Every URL-bearing attribute, every tag name, and the CSP meta content."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.tags: list[str] = []
        self.csp: str | None = None
        self.images: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href", "srcset", "action", "poster", "data")]
        if tag == "meta" and values.get("http-equiv") == "Content-Security-Policy":
            self.csp = values.get("content")
        if tag == "img":
            self.images.append(values)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    run = make_run_dir(tmp_path_factory.mktemp("run"))
    return run, write_reports(run, build_report(run), ReportConfig())


def _parse(path: Path) -> _Resources:
    parser = _Resources()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_writes_three_files(written: tuple[Path, list[Path]]) -> None:
    run, paths = written
    assert [p.name for p in paths] == ["report.json", "report.md", "report.html"]
    assert json.loads((run / "report.json").read_text())["schema"] == "edgekd.report/2"
    assert not list(run.glob(".report*"))  # no temporary files left behind


def test_html_loads_nothing_remote(written: tuple[Path, list[Path]]) -> None:
    run, _ = written
    html = (run / "report.html").read_text(encoding="utf-8")
    page = _parse(run / "report.html")
    assert not {"script", "iframe", "object", "embed", "base"} & set(page.tags)
    for url in page.urls:
        assert url.startswith(("data:", "#")), url[:80]
    assert "url(" not in html.split("<style>")[1].split("</style>")[0]  # no CSS fetches
    assert page.csp is not None and "default-src 'none'" in page.csp and "img-src data:" in page.csp


def test_html_has_the_required_plots_and_sections(written: tuple[Path, list[Path]]) -> None:
    run, _ = written
    html = (run / "report.html").read_text(encoding="utf-8")
    page = _parse(run / "report.html")
    assert len(page.images) >= 3
    ids = {"plot-distill", "plot-latency", "plot-pareto", "plot-energy"}
    assert all(f'id="{i}"' in html for i in ids)
    for section in ("pipeline", "distill", "parity", "latency", "pareto", "energy", "environment", "warnings"):
        assert f'<section id="{section}">' in html, section
    for image in page.images:
        assert image["alt"]
        header, payload = str(image["src"]).split(",", 1)
        data = base64.b64decode(payload)
        assert header == "data:image/svg+xml;base64" and data.lstrip().startswith(b"<?xml")
    assert "Not measured on <b>local</b>: no RAPL powercap" in html
    assert '<td class="fail">FAIL</td>' in html


def test_png_plots(tmp_path: Path) -> None:
    report = build_report(make_run_dir(tmp_path, stages=("data", "teacher", "distill", "verify", "bench")))
    plots = render_plots(report, image_format="png")
    assert {p.key for p in plots} >= {"distill", "latency", "pareto"}
    for plot in plots:
        assert plot.mime == "image/png" and plot.data.startswith(b"\x89PNG\r\n\x1a\n")


def test_manifest_text_is_escaped(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path, stages=("verify",))
    manifest = run / ".edgekd" / "stages" / "verify.json"
    data = json.loads(manifest.read_text())
    data["summary"]["rows"][0]["artifact"] = '<script>alert("x")</script>'
    data["summary"]["rows"][0]["failures"] = ['<img src="https://evil.example/x.png">']
    data["summary"]["rows"][0]["passed"] = False
    manifest.write_text(json.dumps(data))
    html = render_html(build_report(run), [])
    assert "<script>" not in html and '<img src="https' not in html
    assert "&lt;script&gt;" in html


def test_config_switches_off_markdown_and_html(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path, stages=("data",))
    paths = write_reports(run, build_report(run), ReportConfig(html=False, markdown=False))
    assert [p.name for p in paths] == ["report.json"]
    assert not (run / "report.html").exists()


def test_empty_run_renders(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path, stages=("data",))
    report = build_report(run)
    assert render_plots(report) == []
    html = render_html(report, [])
    assert "parity not verified" in html and "The bench stage did not run." in html
