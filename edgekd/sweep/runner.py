"""`edgekd sweep`: open (or join) the study, run trials in this process and in N-1 spawned workers, write results.

Counting: the study is finished when `n_trials` trials are COMPLETE or PRUNED, or FAILED for a reason of their
own (their "error" attr). A trial failed by the heartbeat (its worker died) does not count: Optuna's
RetryHeartbeatStaleTrialCallback enqueues its parameters again and that retry counts instead. A worker with nothing
left to start waits while others' trials are running, so the results are written once every trial is over.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edgekd import console
from edgekd.errors import UsageError
from edgekd.recipe import resolve_path
from edgekd.sweep.config import SweepConfig, load_sweep_recipe
from edgekd.sweep.device_lock import device_lock_for
from edgekd.sweep.space import check_space
from edgekd.sweep.storage import open_storage, open_study, quiet_optuna, redact, storage_url, sweep_fingerprint
from edgekd.sweep.trial import STOP_ATTR, SweepContext, TrialFailed, run_trial

_log = logging.getLogger(__name__)


def sweep_directory(sweep: SweepConfig, recipe_name: str, base_dir: Path) -> Path:
    return resolve_path(base_dir, sweep.out) or Path("runs") / f"{recipe_name}-sweep"


def run_sweep(
    recipe_path: Path,
    *,
    storage: str | None = None,
    worker: bool = False,
    resume: bool = False,
    n_trials: int | None = None,
    workers: int = 1,
    worker_index: int = 0,
    check: bool = False,
) -> Path:
    """Run (or join) a sweep; returns the sweep directory. Results are written by the process that started
    the study (not by --worker processes). `check`: validate the recipe, space and storage URL, print the plan,
    and stop before anything is written (no sweep directory, no study)."""
    if workers < 1:
        raise UsageError(f"--workers {workers}: must be at least 1", hint="--workers 2 runs two trials at a time")
    if worker and resume:
        raise UsageError(
            "--worker and --resume together",
            hint="a worker always joins the study as it is; use --resume on the machine that started the sweep",
        )
    if n_trials is not None and n_trials < 1:
        raise UsageError(f"--n-trials {n_trials}: must be at least 1", hint="omit it to use [sweep] n_trials")
    if check and (worker or resume):
        raise UsageError(
            f"--check with {'--worker' if worker else '--resume'}: --check runs no trials",
            hint="check the recipe with --check alone, then start, join or resume the sweep without it",
        )
    quiet_optuna()
    recipe, sweep, raw, base_dir = load_sweep_recipe(recipe_path)
    check_space(recipe, raw, sweep, str(recipe_path))  # a bad space is refused before any trial
    sweep_dir = sweep_directory(sweep, recipe.run.name, base_dir).resolve()
    url = storage_url(sweep_dir, storage)
    name = sweep.study or recipe.run.name
    total = n_trials or sweep.n_trials
    if check:
        _print_plan(recipe_path, sweep, sweep_dir, redact(url), name, total, workers)
        return sweep_dir
    if resume and url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        raise UsageError(
            f"no study {name!r} to resume in {redact(url)}", hint="start it without --resume"
        )  # nothing made
    sweep_dir.mkdir(parents=True, exist_ok=True)
    study = open_study(
        open_storage(url, sweep),
        name,
        sweep,
        sweep_fingerprint(sweep, recipe.recipe_hash()),
        _sampler(sweep, worker_index if not worker or worker_index else os.getpid()),
        mode="join" if worker else "resume" if resume else "new",
    )
    if resume:
        import optuna

        optuna.storages.fail_stale_trials(study)
        study.set_user_attr(STOP_ATTR, None)
    ctx = SweepContext(Path(recipe_path), raw, base_dir, sweep, sweep_dir, device_lock_for(url))
    if not worker:
        console.say(
            f"[bold]edgekd sweep[/] {recipe_path} → {sweep_dir}  (study {name!r} in {redact(url)}, "
            f"{total} trials, {workers} worker{'s' if workers > 1 else ''})"
        )
    # Spawned processes are --worker processes of this study; a --worker's own children offset their sampler
    # seeds by pid (index 0), so two machines' workers never draw the same sequence.
    children = [_spawn(recipe_path, url, total, 0 if worker else index) for index in range(1, workers)]
    try:
        work(study, ctx, total)
    finally:
        failed_children = [c.args for c in children if c.wait() != 0]
    if failed_children:
        _log.warning("%d worker process(es) exited with an error", len(failed_children))
    stop = study.user_attrs.get(STOP_ATTR)
    if stop:
        raise UsageError(
            f"the sweep stopped: {stop}",
            hint="fix the cause; --resume continues if the recipe is unchanged, "
            "a changed recipe needs a new study ([sweep] study or out)",
        )
    if not worker:
        from edgekd.sweep.results import print_summary, write_results

        results = write_results(study, sweep, sweep_dir, redact(url), recipe_path)
        print_summary(results, sweep_dir)
    return sweep_dir


def _print_plan(
    recipe_path: Path, sweep: SweepConfig, sweep_dir: Path, url: str, name: str, total: int, workers: int
) -> None:
    """What `--check` found valid: the sweep that would run."""
    console.say(f"[bold]edgekd sweep --check[/] {recipe_path}: recipe and search space OK")
    console.say(
        f"  {total} trials, {workers} worker{'s' if workers > 1 else ''}, study {name!r} in {url} → {sweep_dir}"
    )
    for key, dim in sweep.space.items():
        span = dim.choices if dim.choices is not None else f"{dim.low:g}..{dim.high:g}{' (log)' if dim.log else ''}"
        console.say(f"  space {key}: {span}")
    for item in sweep.objectives:
        console.say(f"  objective: {item.direction} {item.label}")
    for bound in sweep.constraints:
        console.say(
            f"  constraint: {bound.label} {'<=' if bound.max is not None else '>='} "
            f"{bound.max if bound.max is not None else bound.min:g}"
        )


def counted(study: Any) -> tuple[int, int]:
    """(trials that count towards n_trials, trials running now): see module doc."""
    import optuna

    state = optuna.trial.TrialState
    done = running = 0
    for trial in study.get_trials(deepcopy=False):
        if trial.state in (state.COMPLETE, state.PRUNED) or (trial.state == state.FAIL and "error" in trial.user_attrs):
            done += 1
        elif trial.state == state.RUNNING:
            running += 1
    return done, running


def work(study: Any, ctx: SweepContext, total: int) -> None:
    """Run trials one at a time until the study has `total` counted trials (or a user error stops it)."""
    import optuna

    while not study.user_attrs.get(STOP_ATTR):
        optuna.storages.fail_stale_trials(study)  # a dead worker's trial -> FAIL, its retry enqueued
        done, running = counted(study)
        if done >= total:
            return
        if done + running >= total:
            time.sleep(min(2.0, ctx.sweep.heartbeat_s))  # others are finishing the last trials
            continue
        study.optimize(lambda trial: run_trial(trial, ctx), n_trials=1, catch=(TrialFailed,))


def _sampler(sweep: SweepConfig, offset: int) -> Any:
    """Constraints reach the samplers through Trial.set_constraint (trial.py), Optuna 5's way."""
    import optuna

    seed = None if sweep.seed is None else sweep.seed + offset  # workers of one study draw different values
    if sweep.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if sweep.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True)


def _spawn(recipe_path: Path, url: str, total: int, index: int) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable,
        "-m",
        "edgekd.sweep",
        str(recipe_path),
        "--storage",
        url,
        "--worker",
        "--n-trials",
        str(total),
        "--worker-index",
        str(index),
    ]
    return subprocess.Popen(argv)  # our own interpreter and module, argv a list
