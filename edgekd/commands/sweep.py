"""`edgekd sweep RECIPE`: a multi-objective search over the recipe's `[sweep]` space (see edgekd/sweep).

Two machines sharing one PostgreSQL study (the database must exist; every worker needs the recipe and data):
    machine A:  edgekd sweep sweep.toml --storage postgresql://edgekd@db-host/sweeps --workers 2
    machine B:  edgekd sweep sweep.toml --storage postgresql://edgekd@db-host/sweeps --worker --workers 2
Machine A creates the study and writes the results when every trial is over; B's workers join it and stop when
the study has its trials. After a crash: `edgekd sweep RECIPE --resume` (same --storage) continues.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def sweep_cmd(
    recipe: Annotated[Path, typer.Argument(help="a recipe with a [sweep] table")],
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            help="study database URL: postgresql://user@host/db for many machines; default: SQLite in "
            "the sweep directory",
        ),
    ] = None,
    worker: Annotated[
        bool,
        typer.Option(
            "--worker",
            help="join an existing (or starting) study and run trials; results are written by the "
            "process that started it",
        ),
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="continue a study that was interrupted (its dead workers' trials are marked failed and retried)",
        ),
    ] = False,
    n_trials: Annotated[
        int | None, typer.Option("--n-trials", help="trials to finish (completed or pruned); default: [sweep] n_trials")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", help="trials run at a time on this machine (processes)")] = 1,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="validate the recipe, the search space, objectives, constraints and --storage URL, print "
            "the sweep that would run, and stop (no trial, nothing written)",
        ),
    ] = False,
    worker_index: Annotated[
        int, typer.Option("--worker-index", hidden=True, help="offset of this worker's sampler seed (set by --workers)")
    ] = 0,
) -> None:
    """Search students, losses and quantization options for the best one within a device budget."""
    from edgekd.sweep import run_sweep

    run_sweep(
        recipe,
        storage=storage,
        worker=worker,
        resume=resume,
        n_trials=n_trials,
        workers=workers,
        worker_index=worker_index,
        check=check,
    )
