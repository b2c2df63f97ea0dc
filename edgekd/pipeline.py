"""The pipeline: ordered stages, a run directory, a content-addressed stage cache, resume, a lock.

A stage's cache key is sha256 of (stage name, its config, the sha256 of every input artifact, the keys of
the stages it needs, the installed versions of the tools it runs (`Stage.tools`: PyPI distribution names),
facts outside the recipe that decide its result (`Stage.key_facts`: bench's target entries and device
identities), the edgekd version). The tools' versions and the facts are written into the manifest too, so
the report shows what went into each key. The Stage protocol and its contexts live in edgekd.stages.protocol
(re-exported here). A stage writes into a private temporary directory; when it returns, its files are moved into the
run directory and only then is its manifest `.edgekd/stages/<stage>.json` written. So a run killed at any
point resumes at the first stage whose manifest is missing, stale or whose files changed on disk, and a
half-written file is never taken for a finished one.

A stage that fails does not lose the run's report: its manifest is written with `"status": "failed"` and an
`"error"` record (`type`, `message`, `hint`, `exit_code`, `not_run`: the later stages it kept from running),
the stages after it are not run except those marked `runs_after_failure` (the report), and only then does the
error propagate with its own exit code. A failed manifest is never a cache hit.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from edgekd import __version__
from edgekd.artifacts import Artifact
from edgekd.errors import EdgekdError
from edgekd.fileio import atomic_write_json, storage_error
from edgekd.recipe import Recipe
from edgekd.run_directory import MANIFEST_SCHEMA, RunDirectory, cache_valid, commit, disk_full, relative_entry
from edgekd.stages.protocol import KeyContext, Stage, StageContext, StageResult

__all__ = [
    "MANIFEST_SCHEMA",
    "KeyContext",
    "Pipeline",
    "RunDirectory",
    "Stage",
    "StageContext",
    "StageOutcome",
    "StageResult",
    "cache_key",
    "installed_version",
    "tool_versions",
]

_log = logging.getLogger(__name__)


@dataclass
class StageOutcome:
    stage: str
    status: str  # "ran" | "cached" | "skipped" (disabled / not selected) | "failed" | "not_run" (after a failure)
    seconds: float
    artifacts: list[Artifact] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None  # for "failed": the failure record written into the stage's manifest


def failure_record(exc: BaseException, not_run: list[str]) -> dict[str, Any]:
    """What a failed stage's manifest says about its error (the report renders it)."""
    return {
        "type": type(exc).__name__,
        "message": (exc.message if isinstance(exc, EdgekdError) else None) or str(exc) or type(exc).__name__,
        "hint": exc.hint if isinstance(exc, EdgekdError) else None,
        "exit_code": exc.exit_code if isinstance(exc, EdgekdError) else 70,  # not an EdgekdError: edgekd's own bug
        "not_run": not_run,
    }


def installed_version(distribution: str) -> str:
    """The installed version of a PyPI distribution, or "absent" (installing it later changes the key too)."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "absent"


def tool_versions(distributions: tuple[str, ...] | list[str]) -> dict[str, str]:
    """{distribution: installed version} for the tools a stage declares (sorted, so order never changes a key)."""
    return {name: installed_version(name) for name in sorted(set(distributions))}


def cache_key(
    stage: str,
    config: dict[str, Any],
    inputs: list[Artifact],
    upstream: dict[str, str] | None = None,
    tools: dict[str, str] | None = None,
    facts: dict[str, Any] | None = None,
) -> str:
    """Key of a stage's result. `upstream` holds the keys of the stages it needs: some stages hand on
    results rather than files (verify's parity rows, bench's latencies), so a change of their config must
    reach what reads them (handoff, report) just as a changed file does. (Keys, not the results
    themselves: results carry timings, which would make every downstream stage rerun.) `tools` holds the
    versions of the tools the stage runs, `facts` what else outside the recipe decides its result."""
    payload = {
        "stage": stage,
        "config": config,
        "inputs": sorted((a.name, a.sha256) for a in inputs),
        "upstream": upstream or {},
        "tools": tools or {},
        "facts": facts or {},
        "edgekd": __version__,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class KeyParts:
    """What went into a stage's key besides config and inputs; written into its manifest for the report."""

    key: str
    tools: dict[str, str]
    facts: dict[str, Any]

    def manifest_fields(self) -> dict[str, Any]:
        return {"tools": self.tools, **({"key_facts": self.facts} if self.facts else {})}


class Pipeline:
    """Runs stages in order against a run directory, reusing cached results."""

    def __init__(self, stages: list[Stage], recipe: Recipe, base_dir: Path, run_dir: Path, *,
                 on_epoch: Callable[[str, dict[str, Any]], None] | None = None) -> None:  # fmt: skip
        self.stages = stages
        self.recipe = recipe
        self.base_dir = base_dir
        self.run = RunDirectory(run_dir)
        self.on_epoch = on_epoch  # e.g. a sweep's pruner: it may stop a training stage by raising

    def execute(
        self,
        *,
        force: bool = False,
        only: set[str] | None = None,
        on_event: Callable[[StageOutcome | str], None] | None = None,
        progress: Any = None,
        after: dict[str, Callable[[StageOutcome], None]] | None = None,
    ) -> list[StageOutcome]:
        """Run every enabled stage (or only those in `only`, plus what they need from the cache).

        `after[name]` is called with that stage's outcome (ran, cached, or skipped but read from the cache)
        before the next stage starts; an error it raises stops the run there (preflight after the data)."""
        hooks = after or {}
        notify = on_event or (lambda _event: None)
        outcomes: list[StageOutcome] = []
        produced: dict[str, list[Artifact]] = {}
        summaries: dict[str, dict[str, Any]] = {}
        keys: dict[str, str] = {}
        gate_error: EdgekdError | None = None
        failure: Exception | None = None  # a stage raised: later stages are not run, the report still is
        selected = [s for s in self.stages if s.enabled(self.recipe) and (only is None or s.name in only)]
        with self.run.locked():
            for stage in self.stages:
                if stage not in selected:
                    manifest = self.run.read_manifest(stage.name)
                    if manifest and only is not None:  # let later selected stages see cached upstream results
                        produced[stage.name] = self.run.artifacts_of(manifest)
                        summaries[stage.name] = manifest.get("summary", {})
                        keys[stage.name] = str(manifest.get("key", ""))
                        if stage.name in hooks and manifest.get("status") != "failed":
                            hooks[stage.name](
                                StageOutcome(stage.name, "skipped", 0.0, produced[stage.name], summaries[stage.name])
                            )
                    outcomes.append(StageOutcome(stage.name, "skipped", 0.0))
                    continue
                if (gate_error is not None or failure is not None) and not stage.runs_after_failure:
                    outcomes.append(StageOutcome(stage.name, "not_run", 0.0))
                    continue
                inputs = {name: produced.get(name, []) for name in stage.needs}
                key_error: EdgekdError | None = None
                try:  # bench's key reads the inventory: an unknown target fails the stage, recorded like any failure
                    parts = self.key_parts(stage, inputs, summaries, keys)
                except EdgekdError as exc:
                    parts, key_error = KeyParts(f"unkeyed:{stage.name}", {}, {}), exc
                key = parts.key
                manifest = self.run.read_manifest(stage.name)
                if key_error is None and manifest is not None and not force and cache_valid(self.run, manifest, key):
                    outcome = StageOutcome(
                        stage.name, "cached", 0.0, self.run.artifacts_of(manifest), manifest.get("summary", {})
                    )
                else:
                    notify(stage.name)
                    try:
                        if key_error is not None:
                            raise key_error
                        outcome = self._run_stage(stage, parts, inputs, summaries, progress)
                    except Exception as exc:  # noqa: BLE001 - recorded, the report runs, then re-raised below
                        if failure is not None or gate_error is not None:
                            _log.warning("stage %s failed after an earlier failure: %s", stage.name, exc)
                            break  # the report of a failed run failed too: the first error is the one to show
                        later = [s.name for s in selected[selected.index(stage) + 1 :]
                                 if not s.runs_after_failure]  # fmt: skip
                        outcome = self._record_failure(stage, parts, exc, later)
                        failure = exc
                        key = f"failed:{hashlib.sha256(json.dumps(outcome.error, sort_keys=True).encode()).hexdigest()}"
                produced[stage.name] = outcome.artifacts
                summaries[stage.name] = outcome.summary
                keys[stage.name] = key
                outcomes.append(outcome)
                notify(outcome)
                if outcome.status != "failed":
                    if gate_error is None and (gate_error := stage.gate(self.recipe, outcome.summary)) is not None:
                        later = [s.name for s in selected[selected.index(stage) + 1 :]
                                 if not s.runs_after_failure]  # fmt: skip
                        self._record_gate(stage, gate_error, later)
                    if stage.name in hooks:
                        hooks[stage.name](outcome)
        if failure is not None:
            raise failure
        if gate_error is not None:
            raise gate_error
        return outcomes

    def key_parts(
        self,
        stage: Stage,
        inputs: dict[str, list[Artifact]],
        summaries: dict[str, dict[str, Any]],
        keys: dict[str, str],
    ) -> KeyParts:
        """The stage's cache key and the tool versions and facts that went into it."""
        ctx = KeyContext(recipe=self.recipe, base_dir=self.base_dir, inputs=inputs, summaries=dict(summaries))
        tools = tool_versions(stage.tools(ctx))
        facts = stage.key_facts(ctx)
        upstream = {name: keys[name] for name in stage.needs if name in keys}
        files = [a for arts in inputs.values() for a in arts]
        return KeyParts(cache_key(stage.name, stage.config(self.recipe), files, upstream, tools, facts), tools, facts)

    def _record_gate(self, stage: Stage, error: EdgekdError, not_run: list[str]) -> None:
        """A gate stopped the run after `stage` finished: its manifest keeps its results (a cache hit replays
        the gate) and gains a `gate` record, so the report names the stop and ignores later stages' old results."""
        manifest = self.run.read_manifest(stage.name)
        if manifest is None:
            return
        manifest["gate"] = {**failure_record(error, not_run), "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        try:
            atomic_write_json(self.run.manifest_path(stage.name), manifest)
        except (OSError, EdgekdError) as write_error:  # the gate's own error still wins
            _log.warning("could not record the gate of stage %s: %s", stage.name, write_error)

    def _record_failure(self, stage: Stage, parts: KeyParts, exc: Exception, not_run: list[str]) -> StageOutcome:
        """Write the failed stage's manifest (no artifacts, an error record) so the report can show it."""
        error = failure_record(exc, not_run)
        manifest = {
            "schema": MANIFEST_SCHEMA,
            "stage": stage.name,
            "status": "failed",
            "key": parts.key,
            **parts.manifest_fields(),
            "seconds": 0.0,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "edgekd": __version__,
            "artifacts": [],
            "summary": {},
            "error": error,
        }
        try:
            atomic_write_json(self.run.manifest_path(stage.name), manifest)
        except (OSError, EdgekdError) as write_error:  # e.g. the disk is full: the stage's own error still wins
            _log.warning("could not record the failure of stage %s: %s", stage.name, write_error)
        return StageOutcome(stage.name, "failed", 0.0, [], {}, error)

    def _run_stage(
        self,
        stage: Stage,
        parts: KeyParts,
        inputs: dict[str, list[Artifact]],
        summaries: dict[str, dict[str, Any]],
        progress: Any,
    ) -> StageOutcome:
        key = parts.key
        started = time.perf_counter()
        try:
            self.run.tmp.mkdir(parents=True, exist_ok=True)
            stale = self.run.manifest_path(stage.name)
            if stale.exists():
                stale.unlink()  # the old outputs are about to be replaced
        except OSError as exc:
            raise storage_error(exc, self.run.meta) from None
        # One workdir per (stage, key). A killed attempt of a resumable stage (training) leaves its
        # checkpoints there for the next attempt with the same key; anything else left over is stale.
        workdir = self.run.tmp / f"{stage.name}-{key[:16]}"
        resumable = stage.resumable
        for leftover in self.run.tmp.glob(f"{stage.name}-*"):
            if leftover != workdir or not resumable:
                shutil.rmtree(leftover, ignore_errors=True)
        resume = workdir.exists()
        workdir.mkdir(parents=True, exist_ok=True)
        ctx = StageContext(
            recipe=self.recipe,
            base_dir=self.base_dir,
            run_dir=self.run.path,
            workdir=workdir,
            inputs=inputs,
            summaries=dict(summaries),
            progress=progress,
            resume=resume,
            on_epoch=self.on_epoch,
        )
        succeeded = False
        try:
            result = stage.run(ctx)
            artifacts = commit(self.run, workdir, result.artifacts)
            succeeded = True
        except EdgekdError:
            raise
        except OSError as exc:
            raise storage_error(exc, self.run.path) from None
        except Exception:
            # Libraries report a full disk in their own ways (torch.save: "unexpected pos"); check the disk.
            if disk_full(workdir):
                raise storage_error(OSError(errno.ENOSPC, "No space left on device"), self.run.path) from None
            raise
        finally:
            if succeeded or not resumable:
                shutil.rmtree(workdir, ignore_errors=True)
        seconds = time.perf_counter() - started
        manifest = {
            "schema": MANIFEST_SCHEMA,
            "stage": stage.name,
            "key": key,
            **parts.manifest_fields(),
            "seconds": round(seconds, 3),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "status": "done",
            "edgekd": __version__,
            "artifacts": [relative_entry(a, self.run.path) for a in artifacts],
            "summary": result.summary,
        }
        atomic_write_json(self.run.manifest_path(stage.name), manifest)
        return StageOutcome(stage.name, "ran", seconds, artifacts, result.summary)
