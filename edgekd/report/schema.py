"""report.json's schema version, and the reader that brings an older report up to it.

- `edgekd.report/2`: bench rows carry their raw samples as `latencies_ns` (integers, the unit the runner
  measures in and every other edgekd schema uses); each row of `stages` names the `tools` (distribution ->
  version) and, for bench, the `key_facts` (targets' inventory entries and identities) in its cache key.
- `edgekd.report/1`: raw samples were `latencies_ms` (floats). `upgrade_report` converts them, so an old
  report.json still renders and compares.
"""

from __future__ import annotations

import copy
from typing import Any

REPORT_SCHEMA = "edgekd.report/2"
OLD_SCHEMAS = ("edgekd.report/1",)
KNOWN_SCHEMAS = (REPORT_SCHEMA, *OLD_SCHEMAS)


def is_report(document: Any) -> bool:
    """True for a report.json of any schema this edgekd reads."""
    return isinstance(document, dict) and document.get("schema") in KNOWN_SCHEMAS


def upgrade_report(report: dict[str, Any]) -> dict[str, Any]:
    """The report in the current schema (a copy when it was older; the same dict when it was current)."""
    if report.get("schema") == REPORT_SCHEMA:
        return report
    from edgekd.bench.significance import raw_latencies_ns

    upgraded = copy.deepcopy(report)
    for row in upgraded.get("bench") or []:
        if isinstance(row, dict) and "latencies_ms" in row:
            row["latencies_ns"] = raw_latencies_ns(row)
            del row["latencies_ms"]
    upgraded["schema"] = REPORT_SCHEMA
    upgraded["upgraded_from"] = report.get("schema")
    return upgraded
