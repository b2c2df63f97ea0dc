from __future__ import annotations

from edgekd.config.base import StrictModel


class ReportConfig(StrictModel):
    html: bool = True
    markdown: bool = True
    history: bool = True  # record the run in the SQLite history
