from __future__ import annotations

from typing import Literal

from edgekd.config.base import StrictModel


class ReportConfig(StrictModel):
    html: bool = True
    markdown: bool = True
    history: bool = True  # record the run in the SQLite history
    plot_format: Literal["svg", "png"] = "svg"  # how plots are embedded in report.html (both are data: URIs)
