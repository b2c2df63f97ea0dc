"""Where the study lives: SQLite in the sweep directory by default, or an RDB URL that every worker joins.

Every storage is an Optuna RDBStorage with a heartbeat: a worker that dies mid-trial (SIGKILL, power loss)
stops beating, and after `grace_s` the next worker to start a trial (or `--resume`) marks it FAIL;
RetryHeartbeatStaleTrialCallback then enqueues the same parameters once more, so the study still finishes.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from edgekd.errors import StorageError, UsageError
from edgekd.sweep.config import SweepConfig

STUDY_SCHEMA_ATTR = "edgekd_sweep"  # study user attr: hash of the space/objectives the study was made for


def storage_url(sweep_dir: Path, storage: str | None) -> str:
    if storage:
        scheme = storage.split(":", 1)[0].split("+", 1)[0]
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise UsageError(
                f"--storage {redact(storage)}: unsupported database {scheme!r}",
                hint="postgresql://user@host:5432/db (many machines) or sqlite:///path (one machine)",
            )
        return storage
    return f"sqlite:///{(sweep_dir / 'study.sqlite3').resolve()}"


def redact(url: str) -> str:
    """The URL without its password (messages and report.json never show it)."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def quiet_optuna() -> None:
    """Optuna's per-trial INFO lines and experimental-feature warnings (heartbeat) stay off the console."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def open_storage(url: str, sweep: SweepConfig) -> Any:
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    quiet_optuna()

    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": 300}  # several worker processes write one file
    try:
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=sweep.heartbeat_s,
            grace_period=sweep.grace_s,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
        )
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise StorageError(
            f"cannot open the study storage {redact(url)}: {str(exc).splitlines()[0]}",
            hint="check the URL, that the server is running and that the user may connect",
        ) from None


def sweep_fingerprint(sweep: SweepConfig, recipe_hash: str) -> str:
    """What workers of one study must agree on: the space, objectives, constraints and the base recipe."""
    payload = {
        "space": {k: v.model_dump(mode="json") for k, v in sweep.space.items()},
        "objectives": [o.model_dump(mode="json") for o in sweep.objectives],
        "constraints": [c.model_dump(mode="json") for c in sweep.constraints],
        "recipe": recipe_hash,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def open_study(storage: Any, name: str, sweep: SweepConfig, fingerprint: str, sampler: Any, *, mode: str) -> Any:
    """mode "new": a fresh study (refused if one exists); "resume": an existing one; "join": either."""
    import optuna

    exists = any(s.study_name == name for s in optuna.get_all_study_summaries(storage))
    if mode == "new" and exists:
        raise UsageError(
            f"study {name!r} already exists in {redact(storage.url)}",
            hint="continue it with --resume, join it with --worker, or choose another [sweep] out/study",
        )
    if mode == "resume" and not exists:
        raise UsageError(f"no study {name!r} to resume in {redact(storage.url)}", hint="start it without --resume")
    directions = [o.direction for o in sweep.objectives]
    study = optuna.create_study(
        storage=storage, study_name=name, directions=directions, sampler=sampler, load_if_exists=True
    )
    stored = study.user_attrs.get(STUDY_SCHEMA_ATTR)
    if stored is None:
        study.set_user_attr(STUDY_SCHEMA_ATTR, fingerprint)
    elif stored != fingerprint:
        raise UsageError(
            f"study {name!r} was made for another search space, objectives or base recipe",
            hint="run the recipe the study was started with, or choose another [sweep] study name",
        )
    if [d.name.lower() for d in study.directions] != directions:
        raise UsageError(f"study {name!r} has other objective directions", hint="use the study's own recipe")
    return study
