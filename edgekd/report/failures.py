"""A run's failed stage, as the pipeline records it in the stage's manifest, read back for the report.

A stage that raises leaves `.edgekd/stages/<stage>.json` with `"status": "failed"` and an `"error"`
record (`type`, `message`, `hint`, `exit_code`, `not_run`: the later stages it kept from running);
see edgekd.pipeline.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from edgekd.stages import STAGE_NAMES

#: Pipeline order (edgekd.stages.STAGE_NAMES) of the stages a report reports on: not the report itself.
STAGE_ORDER = tuple(name for name in STAGE_NAMES if name != "report")


def pipeline_order(names: Any) -> list[str]:
    return [s for s in STAGE_ORDER if s in names] + sorted(set(names) - set(STAGE_ORDER))


def split_failures(manifests: dict[str, dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """(manifests of stages that finished in this run's history, failure records in pipeline order).

    A failure record is {"stage", "type", "message", "hint", "exit_code", "not_run"} (plus "gate": true when a
    finished stage's gate stopped the run: that stage's own results are kept); the manifests of
    the stages a failure kept from running are dropped (stale results of an earlier run) unless they
    finished after the failure (a later `--only` run).
    """
    failures, stale = [], set()
    for name in pipeline_order(manifests):
        manifest = manifests[name]
        gate = manifest.get("gate") if isinstance(manifest.get("gate"), dict) else None
        if manifest.get("status") == "failed" or gate is not None:
            # a raised stage ("error"), or a finished stage whose gate stopped the run ("gate": its results stay)
            recorded = manifest.get("error")
            error: dict[str, Any] = gate if gate is not None else recorded if isinstance(recorded, dict) else {}
            not_run = [str(s) for s in error.get("not_run") or [] if isinstance(s, str)]
            failures.append({"stage": name, "type": error.get("type"), "message": error.get("message") or "no message",
                             "hint": error.get("hint"), "exit_code": error.get("exit_code"), "not_run": not_run,
                             **({"gate": True} if gate is not None else {})})  # fmt: skip
            failed_at = _finished_at({"finished_at": gate["at"]} if gate is not None and gate.get("at") else manifest)
            stale |= {s for s in not_run if s in manifests and not _after(_finished_at(manifests[s]), failed_at)}
    done = {name: m for name, m in manifests.items() if m.get("status") != "failed" and name not in stale}
    return done, failures


def _finished_at(manifest: dict[str, Any]) -> datetime | None:
    try:
        return datetime.strptime(str(manifest.get("finished_at")), "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return None


def _after(when: datetime | None, reference: datetime | None) -> bool:
    return when is not None and reference is not None and when > reference
