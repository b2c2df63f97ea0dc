"""Reports of a run: report.json (for tools and CI), report.md (for a pull request), report.html (to look at).

`build_report` (edgekd.report.build) assembles the JSON from the stage manifests; `write_reports` renders
and writes the three files atomically. matplotlib is imported only when the HTML is drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekd.config.report import ReportConfig
from edgekd.fileio import atomic_write_json, atomic_write_text


def write_reports(run_dir: Path, report: dict[str, Any], config: ReportConfig) -> list[Path]:
    """Write report.json, and report.md / report.html when the config asks for them; return their paths."""
    run_dir = Path(run_dir)
    paths = [run_dir / "report.json"]
    atomic_write_json(paths[0], report)
    if config.markdown:
        from edgekd.report.markdown import render_markdown

        paths.append(run_dir / "report.md")
        atomic_write_text(paths[-1], render_markdown(report))
    if config.html:
        from edgekd.report.html import render_html
        from edgekd.report.plots import render_plots

        paths.append(run_dir / "report.html")
        atomic_write_text(paths[-1], render_html(report, render_plots(report, image_format=config.plot_format)))
    return paths
