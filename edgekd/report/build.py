"""Assemble report.json from a run directory's stage manifests.

Every stage leaves `<run_dir>/.edgekd/stages/<stage>.json` = {"stage", "key", "seconds", "artifacts",
"summary"}. The report joins them: model artifacts with their size, the distillation comparison, the
parity table, benchmark rows (raw latencies kept for plots and comparisons), environments per target,
a Pareto front, every warning worth a human's attention and the outcome verdicts (edgekd.verdicts);
with `[bench] profile = true`, the per-op profiles (`profiles`) and fp32-vs-int8 by op type
(`profile_comparisons`, edgekd.report.profiles).
A partial run still gets a report: a missing stage leaves its part empty (`None` or `[]`), never an
exception. A stage that failed leaves a manifest with `"status": "failed"` and an `"error"` record
(`type`, `message`, `hint`, `exit_code`, `not_run`); the report names it in `failure`, marks it
"failed" in `stages`, marks the stages it kept from running "not run" (their manifests, if any, are
left over from an earlier run and are not read) and sets `passed` to false.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekd.errors import UsageError
from edgekd.report.bench_rows import MAX_LATENCY_SAMPLES, accuracy_of, bench_row, environments, pareto_points
from edgekd.report.failures import STAGE_ORDER, pipeline_order, split_failures
from edgekd.report.formatting import kd_gap, number
from edgekd.report.profiles import collect_profiles, int8_comparisons
from edgekd.report.provenance import identity
from edgekd.report.quantization import quantization_section
from edgekd.report.schema import REPORT_SCHEMA

if TYPE_CHECKING:
    from edgekd.recipe import Recipe

__all__ = ["MAX_LATENCY_SAMPLES", "REPORT_SCHEMA", "accuracy_of", "bench_row", "build_report", "pareto_points"]
REPORT_FORMATS = ("torch", "onnx", "tflite")
#: Torch models that are baselines, not the deliverable: kept out of "artifacts".
_BASELINE_WORDS = ("teacher", "scratch")
_PARITY_CONTRACT = ("artifact", "top1_agreement", "max_abs_error", "accuracy", "passed")
_DISTILL_CONTRACT = ("teacher_accuracy", "student_accuracy", "scratch_accuracy", "teacher_params", "student_params")


def stages_dir(run_dir: Path) -> Path:
    return Path(run_dir) / ".edgekd" / "stages"


def load_manifests(run_dir: Path) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Read every stage manifest. Unreadable ones become warnings, so one bad file never hides the rest."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(
            f"run directory {run_dir} does not exist",
            hint="give the directory `edgekd run` wrote (runs/<name> beside the recipe by default)",
        )
    folder = stages_dir(run_dir)
    if not folder.parent.is_dir():
        raise UsageError(
            f"{run_dir} is not an edgekd run directory (no .edgekd/stages/ inside)",
            hint="give the directory `edgekd run` wrote, e.g. runs/digits",
        )
    manifests: dict[str, dict[str, Any]] = {}
    warnings: list[dict[str, Any]] = []
    if not folder.is_dir():  # a run that stopped before its first stage finished (or recorded its failure)
        return manifests, [_warning("report", "no stage has finished in this run directory yet")]
    for file in sorted(folder.glob("*.json")):
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")  # noqa: TRY004 - caught just below with json's errors
        except (OSError, ValueError) as exc:
            warnings.append(
                _warning("report", f"stage manifest {file.name} is unreadable ({exc}); that stage is left out")
            )
            continue
        manifests[str(data.get("stage") or file.stem)] = data
    return manifests, warnings


def build_report(run_dir: Path, *, now: datetime | None = None, recipe: Recipe | None = None) -> dict[str, Any]:
    """The report.json document of a run (see the module docstring and the contract in issue 2).

    `recipe` (an edgekd Recipe, optional) adds its [run] name and hash to `identity`, which
    `report --compare` uses to tell unrelated runs apart.
    """
    from edgekd.verdicts import compute

    run_dir = Path(run_dir)
    manifests, warnings = load_manifests(run_dir)
    manifests, failures = split_failures(manifests)
    summaries = {name: m["summary"] if isinstance(m.get("summary"), dict) else {} for name, m in manifests.items()}
    artifacts, artifact_warnings = _model_artifacts(run_dir, manifests)
    parity = [_parity_row(row) for row in _rows(summaries.get("verify"), "rows")]
    bench = [bench_row(row) for row in _rows(summaries.get("bench"), "results")]
    profiles = collect_profiles(bench)
    distill = _distill(run_dir, manifests) if "distill" in manifests else None
    report: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "created": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "run": {"name": run_dir.resolve().name, "dir": str(run_dir.resolve())},
        "identity": identity(manifests, recipe),
        "failure": failures[0] if failures else None,
        "stages": _stage_overview(manifests, failures),
        "data": summaries.get("data") if "data" in manifests else None,
        "artifacts": artifacts,
        "distill": distill,
        "parity": parity,
        "bench": bench,
        "environments": environments(bench),
        "handoff": dict(summaries["handoff"]) if "handoff" in manifests else None,
        "quantization": quantization_section(summaries.get("quantize")),
        "profiles": profiles,
    }
    report["profile_comparisons"] = int8_comparisons(report, run_dir)
    report["pareto"] = pareto_points(report)
    report["warnings"] = (
        _failure_warnings(failures)
        + warnings
        + artifact_warnings
        + _collect_warnings(report)
        + _stage_warnings(summaries)
    )
    report["passed"] = run_passed(report)
    report["verdicts"] = [verdict.to_dict() for verdict in compute(report)]
    return report


def run_passed(report: dict[str, Any]) -> bool | None:
    """False if a stage failed or an artifact fails parity; True if every artifact passes; None if not verified."""
    if report.get("failure"):
        return False
    parity = report.get("parity") or []
    return all(row.get("passed") is True for row in parity) if parity else None


def _failure_warnings(failures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same line the pipeline's report stage writes for this run's failure (so it is never doubled)."""
    return [_warning(f["stage"], f"stage {f['stage']} failed ({f['type']}): {f['message']}") for f in failures]


def _rows(summary: dict[str, Any] | None, key: str) -> list[dict[str, Any]]:
    """The row dicts under `key` of a stage summary; anything else (a hand-edited manifest) is skipped."""
    rows = (summary or {}).get(key)
    return [row for row in rows if isinstance(row, dict) and row.get("artifact")] if isinstance(rows, list) else []


def _sidecars(manifest: dict[str, Any] | None) -> list[dict[str, Any]]:
    items = (manifest or {}).get("artifacts")
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _warning(source: str, message: str, *, artifact: str | None = None, target: str | None = None) -> dict[str, Any]:
    return {"source": source, "artifact": artifact, "target": target, "message": message}


def _stage_overview(manifests: dict[str, dict[str, Any]], failures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every pipeline stage in order: done, failed (with its error) or not run, with its time and outputs."""
    failed = {f["stage"]: f for f in failures}
    names = list(STAGE_ORDER) + sorted((set(manifests) | set(failed)) - set(STAGE_ORDER) - {"report"})
    rows = []
    for name in names:
        manifest = manifests.get(name)
        row = {
            "stage": name,
            "status": "done" if manifest is not None else "failed" if name in failed else "not run",
            "seconds": number(manifest.get("seconds")) if manifest else None,
            "key": (manifest.get("key") or None) if manifest else None,
            "artifacts": len(_sidecars(manifest)),
        }
        if manifest is not None and isinstance(manifest.get("tools"), dict):  # what went into the key
            row["tools"] = dict(manifest["tools"])
        if manifest is not None and isinstance(manifest.get("key_facts"), dict):
            row["key_facts"] = public_facts(manifest["key_facts"])
        if name in failed:
            row["error"] = {k: v for k, v in failed[name].items() if k != "stage"}
        elif manifest is None:
            blocker = next((f["stage"] for f in failures if name in f["not_run"]), None)
            if blocker:
                row["not_run_because"] = f"stage {blocker} failed"
        rows.append(row)
    return rows


#: Identity fields a report (shared in pull requests) shows as a digest: systemd's machine-id is confidential.
_PRIVATE_IDENTITY = ("machine_id",)


def public_facts(facts: dict[str, Any]) -> dict[str, Any]:
    """A stage's key facts for the report: each target's entry and identity, private identifiers as a digest
    (sha256, 16 hex digits: still tells two machines apart; the key itself used the full value)."""
    import hashlib

    shown = copy.deepcopy(facts)
    for target in (shown.get("targets") or {}).values():
        identity = target.get("identity") if isinstance(target, dict) else None
        if not isinstance(identity, dict):
            continue
        for field in _PRIVATE_IDENTITY:
            if identity.get(field):
                identity[field] = "sha256:" + hashlib.sha256(str(identity[field]).encode()).hexdigest()[:16]
    return shown


def _is_deliverable(stage: str, sidecar: dict[str, Any]) -> bool:
    if sidecar.get("format") not in REPORT_FORMATS or stage == "teacher":
        return False
    name = str(sidecar.get("name", "")).lower()
    return not (sidecar.get("format") == "torch" and any(word in name for word in _BASELINE_WORDS))


def _model_artifacts(
    run_dir: Path, manifests: dict[str, dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The student torch model and its exports, in pipeline order, with the size of the file on disk."""
    rows: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    seen: set[str] = set()
    for stage in pipeline_order(manifests):
        for sidecar in _sidecars(manifests[stage]):
            if not _is_deliverable(stage, sidecar):
                continue
            name = str(sidecar.get("name") or Path(str(sidecar.get("path", "?"))).name)
            if name in seen:
                continue
            seen.add(name)
            path = str(sidecar.get("path", ""))
            size = _file_size(run_dir, path)
            if size is None:
                size = sidecar.get("size_bytes")
                warnings.append(_warning("artifacts", f"{path} is missing from the run directory", artifact=name))
            rows.append(
                {
                    "name": name,
                    "format": sidecar.get("format"),
                    "precision": sidecar.get("precision"),
                    "path": path,
                    "sha256": sidecar.get("sha256"),
                    "size_bytes": size,
                    "stage": stage,
                    "producer": sidecar.get("producer"),
                }
            )
    return rows, warnings


def _file_size(run_dir: Path, path: str) -> int | None:
    file = Path(path) if Path(path).is_absolute() else run_dir / path
    try:
        return file.stat().st_size
    except OSError:
        return None


def _distill(run_dir: Path, manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Teacher vs KD student vs scratch student: the contract keys first, everything else after."""
    summary = dict(manifests["distill"].get("summary") or {})
    result = {key: summary.pop(key, None) for key in _DISTILL_CONTRACT}
    result.update(summary)
    # File sizes of the three torch models, found by role word in the artifact name.
    for stage in ("teacher", "distill"):
        for sidecar in _sidecars(manifests.get(stage)):
            if sidecar.get("format") != "torch":
                continue
            name = str(sidecar.get("name", "")).lower()
            role = "teacher" if "teacher" in name else "scratch" if "scratch" in name else "student"
            result.setdefault(f"{role}_size_bytes", _file_size(run_dir, str(sidecar.get("path", ""))))
    return result


def _parity_row(row: dict[str, Any]) -> dict[str, Any]:
    result = {key: row.get(key) for key in _PARITY_CONTRACT}
    result.update({key: value for key, value in row.items() if key not in result})
    result.setdefault("ops", None)
    result.setdefault("failures", [])
    return result


def _collect_warnings(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Things a reader must not miss: failed parity, unstable or throttled runs, energy not measured."""
    found: list[dict[str, Any]] = []
    for row in report["parity"]:
        if row.get("passed") is False:
            reasons = "; ".join(_failure_text(f) for f in row.get("failures") or []) or "see the parity table"
            found.append(_warning("verify", f"parity failed: {reasons}", artifact=row.get("artifact")))
    for row in report["bench"]:
        where = {"artifact": row.get("artifact"), "target": row.get("target")}
        found.extend(_warning("bench", message, **where) for message in row["warnings"])
        if row.get("energy_j_per_inference") is None and row.get("energy_unavailable"):
            found.append(_warning("energy", f"energy not measured: {row['energy_unavailable']}", **where))
    distill = report.get("distill") or {}
    if distill.get("within_noise"):
        gap = kd_gap(distill) or "gap unknown"
        found.append(_warning("distill", f"distillation did not measurably help: KD minus scratch student {gap}"))
    for stage in report["stages"]:
        if stage["status"] == "not run" and stage["stage"] in ("verify", "bench"):
            why = f" ({stage['not_run_because']})" if stage.get("not_run_because") else ""
            found.append(_warning("report", f"stage {stage['stage']} did not run{why}; its section is empty"))
    return _merge_energy_warnings(found)


def _stage_warnings(summaries: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """What a stage noted about its own choices (a calibration set capped at the training split, a checkpoint
    rule that fell back, FitNets across model families), one warning each, under the stage's name."""
    return [_warning(stage, str(message)) for stage, summary in summaries.items()
            for message in summary.get("warnings") or [] if isinstance(message, str)]  # fmt: skip


def _merge_energy_warnings(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One 'energy not measured' line per target and reason, not one per artifact."""
    merged: list[dict[str, Any]] = []
    seen: set[tuple[Any, str]] = set()
    for item in found:
        if item["source"] == "energy":
            key = (item["target"], item["message"])
            if key in seen:
                continue
            seen.add(key)
            item = {**item, "artifact": None}
        merged.append(item)
    return merged


def _failure_text(failure: Any) -> str:
    if isinstance(failure, dict):
        metric = failure.get("metric", "?")
        value, limit = failure.get("value"), failure.get("limit", failure.get("threshold"))
        return f"{metric} {value} (limit {limit})" if limit is not None else f"{metric} {value}"
    return str(failure)
