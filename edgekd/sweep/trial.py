"""One trial: a pipeline run of a recipe variant in its own run directory, in four steps.

1. train (data, teacher, distill): data and teacher are seeded from the sweep's shared directory (cache hits);
   the KD student's training stops as soon as its validation accuracy falls below its peers' at the same
   epoch (`epoch_pruner`), and the finished curve is judged once more before anything is converted or timed;
2. convert and verify (export, calibrate, quantize, tflite, verify), in parallel with other trials;
3. bench, holding the device lock of every target it uses (one model at a time per device); a target error
   (a device that dropped) reruns the bench step `bench_retries` times;
4. handoff and report; the trial's figures are then read from its report.json.

A user error (RecipeError / UsageError) stops the sweep with its message; any other edgekd error fails the
trial only (recorded in the trial's user attrs as "error") and the sweep goes on. Any other exception is
edgekd's own bug: it stops the sweep too (the CLI reports it as an internal error, exit 70).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekd import preflight
from edgekd.errors import EdgekdError, RecipeError, TargetError, UsageError
from edgekd.fileio import read_json
from edgekd.pipeline import Pipeline, StageOutcome
from edgekd.stages import default_stages, stage_span
from edgekd.sweep.config import Pruning, SweepConfig
from edgekd.sweep.device_lock import DeviceLock
from edgekd.sweep.metrics import trial_figures, val_accuracy_curve
from edgekd.sweep.shared import SHARED_STAGES, prepare_shared, seed_trial
from edgekd.sweep.space import suggest, trial_recipe

_log = logging.getLogger(__name__)
STOP_ATTR = "stop"  # study user attr set by a trial that hit a user error: every worker stops
# the trial's steps, cut from the one list of stages (edgekd.stages.STAGE_NAMES); bench runs between them
TRAIN, CONVERT, FINISH = stage_span("data", "distill"), stage_span("export", "verify"), stage_span("handoff", "report")


class TrialFailed(EdgekdError):
    """A trial failed for a reason of its own (parity, conversion, a device): the sweep goes on."""


@dataclass(frozen=True)
class SweepContext:
    """What every trial of a sweep needs."""

    recipe_path: Path
    raw: dict[str, Any]  # the recipe table without [sweep]
    base_dir: Path
    sweep: SweepConfig
    sweep_dir: Path
    device_lock: DeviceLock

    def trial_dir(self, number: int) -> Path:
        return self.sweep_dir / "trials" / f"{number:04d}"


def is_user_error(exc: BaseException) -> bool:
    return isinstance(exc, (RecipeError, UsageError))


def run_trial(trial: Any, ctx: SweepContext) -> tuple[float, ...]:
    """Optuna objective: run the trial's pipeline, return its objective values (see module doc)."""
    import optuna

    values = suggest(trial, ctx.sweep.space)
    run_dir = ctx.trial_dir(trial.number)
    trial.set_user_attr("run_dir", str(run_dir))
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    trial.set_user_attr("values", json.loads(json.dumps(values, default=str)))
    try:
        outcomes = _run_pipeline(trial, ctx, values, run_dir)
        report = read_json(run_dir / "report.json")
        result = trial_figures(report, ctx.sweep.objectives, ctx.sweep.constraints)
    except EdgekdError as exc:
        trial.set_user_attr("error", {"type": type(exc).__name__, "message": exc.message, "hint": exc.hint})
        if is_user_error(exc):
            trial.study.set_user_attr(STOP_ATTR, f"trial {trial.number}: {exc.message}")
            raise
        raise TrialFailed(f"trial {trial.number} failed: {exc.message}", hint=exc.hint) from exc
    except optuna.TrialPruned:
        raise
    except Exception as exc:  # edgekd's own bug: every worker stops rather than repeat it on every trial
        trial.study.set_user_attr(STOP_ATTR, f"trial {trial.number}: internal error {type(exc).__name__}: {exc}")
        raise
    trial.set_user_attr("figures", result["figures"])
    trial.set_user_attr("constraints", result["violations"])
    for bound, violation in zip(ctx.sweep.constraints, result["violations"]):
        trial.set_constraint(bound.label, min(violation, 1e30))  # <= 0 feasible; 1e30: not measured
    note_cache_hits(trial, outcomes)
    return tuple(result["values"])


def _run_pipeline(trial: Any, ctx: SweepContext, values: dict[str, Any], run_dir: Path) -> list[StageOutcome]:
    import optuna

    recipe = trial_recipe(ctx.raw, values, source=f"{ctx.recipe_path} (trial {trial.number}: {values})")
    preflight.check_recipe(recipe)
    shared = prepare_shared(recipe, ctx.base_dir, ctx.sweep_dir / "shared")
    seed_trial(ctx.sweep_dir / "shared", run_dir, shared)
    pipe = Pipeline(default_stages(), recipe, ctx.base_dir, run_dir, on_epoch=epoch_pruner(trial, ctx.sweep.pruning))
    enabled = {s.name for s in default_stages() if s.enabled(recipe)}

    def after_data(outcome: StageOutcome) -> None:
        preflight.check_with_data(recipe, outcome.summary)

    outcomes = pipe.execute(only=set(TRAIN) & enabled, after={"data": after_data})
    note_cache_hits(trial, outcomes)  # recorded now too: a trial pruned or failed later still shows them
    distill = next((o.summary for o in outcomes if o.stage == "distill"), {})
    curve = val_accuracy_curve(distill)
    trial.set_user_attr("val_accuracy", curve)
    trial.set_user_attr("val_best", max(curve) if curve else None)
    reason = prune_reason(trial.study, curve, ctx.sweep.pruning)
    if reason:
        trial.set_user_attr("pruned", reason)
        raise optuna.TrialPruned(reason)
    outcomes += pipe.execute(only=set(CONVERT) & enabled)
    note_cache_hits(trial, outcomes)
    if "bench" in enabled:
        outcomes += _bench(trial, pipe, recipe.bench.targets, ctx)
    outcomes += pipe.execute(only=set(FINISH) & enabled)
    return outcomes


def note_cache_hits(trial: Any, outcomes: list[StageOutcome]) -> None:
    """The shared stages (data, teacher, calibrate) this trial found in the stage cache so far."""
    trial.set_user_attr(
        "cache_hits", sorted({o.stage for o in outcomes if o.status == "cached" and o.stage in SHARED_STAGES})
    )


def _bench(trial: Any, pipe: Pipeline, targets: list[str], ctx: SweepContext) -> list[StageOutcome]:
    """The bench step under the device lock; a target error is retried (forced rerun: a failed bench's
    manifest would otherwise be a cache hit that re-raises the same gate error)."""
    windows: list[dict[str, Any]] = []
    for attempt in range(ctx.sweep.bench_retries + 1):
        with ctx.device_lock.hold(targets):
            window: dict[str, Any] = {"targets": sorted(targets), "attempt": attempt + 1, "start": time.time()}
            try:
                return pipe.execute(only={"bench"}, force=attempt > 0)
            except TargetError as exc:
                window["error"] = exc.message
                if attempt == ctx.sweep.bench_retries:
                    raise
                _log.warning("trial %s: bench failed (%s), retrying", trial.number, exc.message)
            finally:
                window["end"] = time.time()  # inside the lock: the device is free only after this
                windows.append(window)
                trial.set_user_attr("bench_windows", windows)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


KD_STUDENT = "student (KD)"  # the fit label of the distilled student (edgekd.distill.api)


def epoch_pruner(trial: Any, pruning: Pruning) -> Callable[[str, dict[str, Any]], None]:
    """The trainer's per-epoch hook: stop the KD student's training as soon as the trial is hopeless."""
    import optuna

    curve: list[float] = []

    def on_epoch(label: str, row: dict[str, Any]) -> None:
        accuracy = row.get("val_accuracy")
        if label != KD_STUDENT or not isinstance(accuracy, (int, float)):
            return
        curve.append(float(accuracy))
        reason = prune_reason_at_epoch(trial.study, curve, pruning)
        if reason:
            trial.set_user_attr("val_accuracy", list(curve))
            trial.set_user_attr("pruned", reason)
            raise optuna.TrialPruned(reason)

    return on_epoch


def prune_reason_at_epoch(study: Any, curve: list[float], pruning: Pruning) -> str | None:
    """Why a trial whose KD student reached `curve` so far is hopeless, or None: its best validation accuracy
    after epoch e is below the chosen percentile of the finished trials' best after their epoch e (Optuna's
    percentile pruner, applied by hand: multi-objective studies cannot use trial.should_prune)."""
    import numpy as np
    import optuna

    if pruning.kind == "none" or not curve:
        return None
    epoch, best = len(curve), max(curve)
    peers = []
    for finished in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        theirs = finished.user_attrs.get("val_accuracy")
        if isinstance(theirs, list) and len(theirs) >= epoch:
            peers.append(max(float(v) for v in theirs[:epoch]))
    if len(peers) < pruning.startup_trials:
        return None
    threshold = float(np.percentile(peers, pruning.percentile))
    if best < threshold:
        return (
            f"epoch {epoch}: best validation accuracy so far {best:.4f} is below the {pruning.percentile:g}th "
            f"percentile ({threshold:.4f}) of {len(peers)} finished trials at the same epoch"
        )
    return None


def prune_reason(study: Any, curve: list[float], pruning: Pruning) -> str | None:
    """Why a trial with this validation-accuracy curve is hopeless, or None (see Pruning)."""
    import numpy as np
    import optuna

    if pruning.kind == "none" or not curve:
        return None
    best = max(curve)
    if pruning.min_val_accuracy is not None and best < pruning.min_val_accuracy:
        return f"best validation accuracy {best:.4f} is below min_val_accuracy {pruning.min_val_accuracy:g}"
    finished = [
        t.user_attrs.get("val_best")
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    ]
    finished = [v for v in finished if isinstance(v, (int, float))]
    if len(finished) < pruning.startup_trials:
        return None
    threshold = float(np.percentile(finished, pruning.percentile))
    if best < threshold:
        return (
            f"best validation accuracy {best:.4f} is below the {pruning.percentile:g}th percentile "
            f"({threshold:.4f}) of {len(finished)} finished trials"
        )
    return None
