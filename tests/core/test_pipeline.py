"""The pipeline mechanism with small stages: cache hits, invalidation, resume, locking, gates."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from edgekd.artifacts import create_artifact
from edgekd.errors import EdgekdError, LockError, ParityError
from edgekd.pipeline import Pipeline, RunDirectory, StageContext, StageResult
from edgekd.recipe import Recipe, parse_recipe
from edgekd.stages.base import BaseStage


class WriteStage(BaseStage):
    """Writes `<name>.txt` = upstream contents + its config value; counts its runs."""

    def __init__(self, name: str, needs: tuple[str, ...] = (), fail: bool = False) -> None:
        self.name = name
        self.needs = needs
        self.fail = fail
        self.runs = 0

    def config(self, recipe: Recipe) -> dict[str, Any]:
        return {"runs": recipe.bench.runs}

    def run(self, ctx: StageContext) -> StageResult:
        self.runs += 1
        upstream = "".join(a.path.read_text() for a in ctx.all_inputs())
        path = ctx.workdir / f"{self.name}.txt"
        path.write_text(f"{upstream}{self.name}{ctx.recipe.bench.runs};")
        if self.fail:
            raise EdgekdError(f"{self.name} failed on purpose")
        return StageResult([create_artifact(path, name=self.name, format="txt")], {"n": self.runs})


def make(tmp_path: Path, runs: int = 5) -> tuple[Pipeline, list[WriteStage]]:
    stages = [WriteStage("a"), WriteStage("b", ("a",)), WriteStage("c", ("b",))]
    return Pipeline(stages, parse_recipe({"bench": {"runs": runs}}), tmp_path, tmp_path / "run"), stages


def test_second_run_is_all_cache_hits(tmp_path: Path) -> None:
    pipeline, stages = make(tmp_path)
    first = pipeline.execute()
    assert [o.status for o in first] == ["ran"] * 3
    second = pipeline.execute()
    assert [o.status for o in second] == ["cached"] * 3
    assert [s.runs for s in stages] == [1, 1, 1]
    assert (tmp_path / "run" / "c.txt").read_text() == "a5;b5;c5;"


def test_deleting_an_artifact_reruns_its_stage_only_downstream(tmp_path: Path) -> None:
    pipeline, _ = make(tmp_path)
    pipeline.execute()
    (tmp_path / "run" / "b.txt").unlink()
    outcomes = pipeline.execute()
    assert [o.status for o in outcomes] == ["cached", "ran", "cached"]  # b is reproduced identically
    (tmp_path / "run" / "b.txt").write_text("edited by hand")
    outcomes = pipeline.execute()
    assert [o.status for o in outcomes] == ["cached", "ran", "cached"]


def test_config_change_invalidates_every_dependent_stage(tmp_path: Path) -> None:
    pipeline, _ = make(tmp_path, runs=5)
    pipeline.execute()
    changed, _ = make(tmp_path, runs=6)
    assert [o.status for o in changed.execute()] == ["ran", "ran", "ran"]


def test_failed_stage_keeps_completed_ones_and_resumes(tmp_path: Path) -> None:
    stages = [WriteStage("a"), WriteStage("b", ("a",), fail=True)]
    pipeline = Pipeline(stages, parse_recipe({}), tmp_path, tmp_path / "run")
    with pytest.raises(EdgekdError, match="failed on purpose"):
        pipeline.execute()
    run = tmp_path / "run"
    assert (run / "a.txt").exists() and not (run / "b.txt").exists()
    assert not list((run / ".edgekd" / "tmp").iterdir())  # no half-written stage output left behind
    stages[1].fail = False
    assert [o.status for o in pipeline.execute()] == ["cached", "ran"]


def test_corrupt_manifest_is_a_cache_miss(tmp_path: Path) -> None:
    pipeline, _ = make(tmp_path)
    pipeline.execute()
    (tmp_path / "run" / ".edgekd" / "stages" / "a.json").write_text("{not json")
    assert [o.status for o in pipeline.execute()] == ["ran", "cached", "cached"]


def _hold_lock(path: str, ready: Any, release: Any) -> None:
    with RunDirectory(Path(path)).locked():
        ready.set()
        release.wait(10)


def test_two_runs_on_one_directory_are_refused(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(tmp_path / "run"), ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        pipeline, _ = make(tmp_path)
        with pytest.raises(LockError, match="in use by edgekd pid"):
            pipeline.execute()
    finally:
        release.set()
        holder.join(10)
    assert [o.status for o in pipeline.execute()] == ["ran"] * 3


class GateStage(WriteStage):
    def gate(self, recipe: Recipe, summary: dict[str, Any]) -> EdgekdError | None:
        return ParityError("gate closed")


class AfterFailure(WriteStage):
    runs_after_failure = True


def test_gate_error_skips_later_stages_but_not_the_report(tmp_path: Path) -> None:
    stages = [GateStage("verify"), WriteStage("bench", ("verify",)), AfterFailure("report", ("verify",))]
    pipeline = Pipeline(stages, parse_recipe({}), tmp_path, tmp_path / "run")
    with pytest.raises(ParityError):
        pipeline.execute()
    assert [s.runs for s in stages] == [1, 0, 1]
    with pytest.raises(ParityError):  # a cache hit replays the gate
        pipeline.execute()
    assert [s.runs for s in stages] == [1, 0, 1]


class Training(WriteStage):
    """Checkpoints into its workdir, then dies the first time; the next attempt must see the checkpoint."""

    resumable = True

    def run(self, ctx: StageContext) -> StageResult:
        checkpoint = ctx.workdir / "checkpoints" / "epoch.txt"
        if not ctx.resume:
            checkpoint.parent.mkdir()
            checkpoint.write_text("epoch 7")
            raise KeyboardInterrupt
        self.resumed_from = checkpoint.read_text()
        return super().run(ctx)


def test_a_killed_training_stage_resumes_from_its_checkpoints(tmp_path: Path) -> None:
    stage = Training("distill")
    pipeline = Pipeline([stage], parse_recipe({}), tmp_path, tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        pipeline.execute()
    assert [o.status for o in pipeline.execute()] == ["ran"]
    assert stage.resumed_from == "epoch 7"
    assert not any((tmp_path / "run" / ".edgekd" / "tmp").iterdir())


def test_a_different_key_never_resumes_another_keys_checkpoints_in_the_same_run_directory(tmp_path: Path) -> None:
    """Same run directory, same stage, another config: the killed attempt's checkpoints are there, and must be
    neither resumed (that would train the new config from the old one's epoch 7) nor left behind."""
    tmp = tmp_path / "run" / ".edgekd" / "tmp"
    with pytest.raises(KeyboardInterrupt):
        Pipeline([Training("distill")], parse_recipe({}), tmp_path, tmp_path / "run").execute()
    [killed] = list(tmp.iterdir())
    assert (killed / "checkpoints" / "epoch.txt").read_text() == "epoch 7"
    changed = Training("distill")
    with pytest.raises(KeyboardInterrupt):  # it started afresh: no checkpoint, so it wrote one and died again
        Pipeline([changed], parse_recipe({"bench": {"runs": 3}}), tmp_path, tmp_path / "run").execute()
    assert not hasattr(changed, "resumed_from")
    [fresh] = list(tmp.iterdir())
    assert fresh != killed and not killed.exists()  # the other key's checkpoints were removed, not reused


class Measure(BaseStage):
    """Hands on a result (no file), like bench."""

    name = "bench"

    def config(self, recipe: Recipe) -> dict[str, Any]:
        return {"runs": recipe.bench.runs}

    def run(self, ctx: StageContext) -> StageResult:
        return StageResult([], {"p50": ctx.recipe.bench.runs * 0.1})


def test_a_changed_upstream_result_reruns_the_stages_that_read_it(tmp_path: Path) -> None:
    report = WriteStage("report", ("bench",))
    report.config = lambda recipe: {}  # type: ignore[method-assign]  # depends on the recipe only through bench
    first = Pipeline([Measure(), report], parse_recipe({"bench": {"runs": 5}}), tmp_path, tmp_path / "run")
    first.execute()
    again = Pipeline([Measure(), report], parse_recipe({"bench": {"runs": 6}}), tmp_path, tmp_path / "run")
    assert [o.status for o in again.execute()] == ["ran", "ran"]
    assert [o.status for o in again.execute()] == ["cached", "cached"]


class SeesFailures(AfterFailure):
    """A report stand-in: records the failed manifests it finds (what the report builder reads)."""

    def run(self, ctx: StageContext) -> StageResult:
        manifests = RunDirectory(ctx.run_dir).manifests()
        self.failures = {name: m["error"] for name, m in manifests.items() if m.get("status") == "failed"}
        return super().run(ctx)


def test_a_failed_stage_is_recorded_the_report_still_runs_and_the_error_propagates(tmp_path: Path) -> None:
    stages = [
        WriteStage("a"),
        WriteStage("b", ("a",), fail=True),
        WriteStage("c", ("b",)),
        SeesFailures("report", ("b",)),
    ]
    pipeline = Pipeline(stages, parse_recipe({}), tmp_path, tmp_path / "run")
    events: list[Any] = []
    with pytest.raises(EdgekdError, match="b failed on purpose"):
        pipeline.execute(on_event=events.append)
    assert [s.runs for s in stages] == [1, 1, 0, 1]
    statuses = {e.stage: e.status for e in events if not isinstance(e, str)}
    assert statuses == {"a": "ran", "b": "failed", "report": "ran"}
    manifest = RunDirectory(tmp_path / "run").read_manifest("b")
    assert manifest is not None and manifest["status"] == "failed"
    assert manifest["error"] == {"type": "EdgekdError", "message": "b failed on purpose", "hint": None,
                                 "exit_code": 1, "not_run": ["c"]}  # fmt: skip
    assert stages[3].failures == {"b": manifest["error"]}
    with pytest.raises(EdgekdError):  # a failed manifest is never a cache hit: b runs again
        pipeline.execute()
    assert [s.runs for s in stages] == [1, 2, 0, 1]  # same failure: the report is a cache hit
    stages[1].fail = False
    assert [o.status for o in pipeline.execute()] == ["cached", "ran", "ran", "ran"]
    assert RunDirectory(tmp_path / "run").read_manifest("b")["status"] == "done"  # type: ignore[index]


def test_an_after_hook_sees_the_stage_outcome_and_can_stop_the_run_before_the_next_stage(tmp_path: Path) -> None:
    """Preflight's hook: runs after the named stage (ran or cached), before any later stage starts."""
    stages = [WriteStage("a"), WriteStage("b", ("a",))]
    pipeline = Pipeline(stages, parse_recipe({}), tmp_path, tmp_path / "run")
    seen: list[tuple[str, dict[str, Any]]] = []

    def refuse(outcome: Any) -> None:
        seen.append((outcome.status, outcome.summary))
        raise EdgekdError("refused after a")

    with pytest.raises(EdgekdError, match="refused after a"):
        pipeline.execute(after={"a": refuse})
    assert seen == [("ran", {"n": 1})] and [s.runs for s in stages] == [1, 0]
    assert RunDirectory(tmp_path / "run").read_manifest("b") is None  # a refusal is not a failed stage
    pipeline.execute(after={"a": lambda outcome: seen.append((outcome.status, outcome.summary))})
    assert seen[-1] == ("cached", {"n": 1}) and [s.runs for s in stages] == [1, 1]


class Buggy(WriteStage):
    def run(self, ctx: StageContext) -> StageResult:
        raise ValueError("a bug in edgekd")


def test_an_internal_error_in_a_stage_is_recorded_as_exit_70_and_still_gets_its_report(tmp_path: Path) -> None:
    stages = [WriteStage("a"), Buggy("b", ("a",)), SeesFailures("report", ("b",))]
    pipeline = Pipeline(stages, parse_recipe({}), tmp_path, tmp_path / "run")
    with pytest.raises(ValueError, match="a bug in edgekd"):  # propagated as it is: the CLI logs its traceback
        pipeline.execute()
    assert stages[2].failures["b"]["type"] == "ValueError" and stages[2].failures["b"]["exit_code"] == 70


def test_a_report_that_fails_after_a_failure_does_not_hide_the_first_error(tmp_path: Path) -> None:
    report = AfterFailure("report", ("b",), fail=True)
    stages = [WriteStage("a"), WriteStage("b", ("a",), fail=True), report]
    pipeline = Pipeline(stages, parse_recipe({}), tmp_path, tmp_path / "run")
    with pytest.raises(EdgekdError, match="^b failed on purpose$"):
        pipeline.execute()
    assert report.runs == 1
