"""Multi-objective sweeps over recipe values (Optuna), each trial a pipeline run, results as a Pareto front.

Modules: config ([sweep] table), space (search space -> trial recipes, the check before trial 1), storage
(SQLite / PostgreSQL study with heartbeats), device_lock (one model at a time per device), shared (the teacher
trained once per sweep), trial (one trial's pipeline in steps), metrics (figures from a run's report),
runner (workers and counting), results (report.json / report.html).

One machine (SQLite study in the sweep directory, 2 trials at a time):
    edgekd sweep sweep.toml --workers 2
Two machines sharing a PostgreSQL study (both need the recipe, its data and edgekd; the database must exist):
    machine A:  edgekd sweep RECIPE --storage postgresql://edgekd:PASS@db-host:5432/sweeps --workers 2
    machine B:  edgekd sweep RECIPE --storage postgresql://edgekd:PASS@db-host:5432/sweeps --worker --workers 2
A starts the study and writes `<sweep>/report.json` and `report.html` when every trial is over; B's workers join
and stop when the study has its trials. Each machine trains the teacher once in its own `<sweep>/shared`.
After a crash or Ctrl-C: the same command with `--resume` (A) continues; dead workers' trials are marked failed
once their heartbeat is `grace_s` old and their parameters are tried once more.
The schema of the sweep's report.json is in edgekd/sweep/results.py.
"""

from __future__ import annotations

from edgekd.sweep.runner import run_sweep

__all__ = ["run_sweep"]
