"""Multi-objective sweeps over recipe values (Optuna), each trial a pipeline run, results as a Pareto front.

Modules: config ([sweep] table), space (search space -> trial recipes, the check before trial 1), storage
(SQLite / PostgreSQL study with heartbeats), device_lock (one model at a time per device), shared (the teacher
trained once per sweep), trial (one trial's pipeline in steps), metrics (figures from a run's report),
runner (workers and counting), results (report.json / report.html).
"""

from __future__ import annotations

from edgekd.sweep.runner import run_sweep

__all__ = ["run_sweep"]
