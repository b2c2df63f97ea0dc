"""A SQLite history of benchmark runs, their results and environments.

Default file: $EDGEKD_HISTORY, else ~/.local/share/edgekd/history.sqlite. A run recorded again under the
same id (a rerun of the same recipe) replaces its earlier results. Results are stored whole as JSON
(raw latencies included when given) beside a few indexed columns for listing.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgekd.bench.result import BenchResult
from edgekd.errors import BenchError, StorageError
from edgekd.registry import suggest

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    recipe_hash TEXT,
    meta TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS environments (
    env_sha TEXT PRIMARY KEY,
    env TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    artifact TEXT NOT NULL,
    artifact_sha256 TEXT,
    target TEXT,
    runtime TEXT,
    p50_ms REAL,
    p99_ms REAL,
    peak_rss_kb INTEGER,
    energy_j REAL,
    env_sha TEXT REFERENCES environments(env_sha),
    result TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_by_run ON results(run_id);
"""
# Environment keys that describe the machine and software, not the moment (temperatures and load vary).
_STABLE_ENV_KEYS = (
    "device",
    "kind",
    "arch",
    "cpu_model",
    "cores",
    "os",
    "python",
    "numpy",
    "runtime",
    "runtime_version",
    "threads",
    "xnnpack",
)


def default_history_path() -> Path:
    if os.environ.get("EDGEKD_HISTORY"):
        return Path(os.environ["EDGEKD_HISTORY"])
    return Path.home() / ".local" / "share" / "edgekd" / "history.sqlite"


def _as_dict(result: BenchResult | dict[str, Any]) -> dict[str, Any]:
    """A result as stored: BenchResult.to_dict(), or a given dict (summary or full) as is."""
    return result.to_dict() if isinstance(result, BenchResult) else dict(result)


def _flat(result: dict[str, Any]) -> dict[str, Any]:
    """The summary figures of a stored result, whether it is a to_dict() or a summary() dict."""
    summary = result.get("summary")
    return summary if isinstance(summary, dict) else result


class History:
    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_history_path()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with closing(sqlite3.connect(self.path, timeout=30)) as db:
                db.execute("PRAGMA foreign_keys = ON")
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise BenchError(
                        f"history {self.path} was written by a newer edgekd (schema {version})",
                        hint="upgrade edgekd, or set EDGEKD_HISTORY to another file",
                    )
                db.executescript(_SCHEMA)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                with db:
                    yield db
        except sqlite3.DatabaseError as exc:
            if "disk is full" in str(exc) or "readonly" in str(exc):
                raise StorageError(
                    f"cannot write the history {self.path}: {exc}",
                    hint="free space, or set EDGEKD_HISTORY to a writable file",
                ) from None
            raise BenchError(
                f"the history {self.path} is not a usable SQLite database: {exc}",
                hint="move it away (a new one is created) or set EDGEKD_HISTORY",
            ) from None
        except OSError as exc:
            raise StorageError(
                f"cannot open the history {self.path}: {exc.strerror or exc}",
                hint="set EDGEKD_HISTORY to a writable file",
            ) from None

    def record_run(
        self,
        run_id: str,
        recipe_hash: str | None,
        results: Sequence[BenchResult] | Sequence[dict[str, Any]],
        meta: dict[str, Any] | None = None,
    ) -> None:
        """Store a run and its results (replacing an earlier recording of the same run id)."""
        created = datetime.now(UTC).isoformat(timespec="seconds")
        with self._connect() as db:
            db.execute("DELETE FROM results WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
            db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?)",
                (run_id, created, recipe_hash, json.dumps(meta or {}, default=str, sort_keys=True)),
            )
            items: list[BenchResult | dict[str, Any]] = list(results)
            for position, result in enumerate(items):
                data = _as_dict(result)
                flat = _flat(data)
                env = flat.get("env") or data.get("env") or {}
                stable = {key: env.get(key) for key in _STABLE_ENV_KEYS if key in env}
                env_text = json.dumps(stable, sort_keys=True, default=str)
                env_sha = hashlib.sha256(env_text.encode()).hexdigest()
                db.execute("INSERT OR IGNORE INTO environments VALUES (?, ?)", (env_sha, env_text))
                db.execute(
                    "INSERT INTO results (run_id, position, artifact, artifact_sha256, target, runtime, p50_ms,"
                    " p99_ms, peak_rss_kb, energy_j, env_sha, result) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run_id,
                        position,
                        flat.get("artifact", f"result{position}"),
                        flat.get("artifact_sha256"),
                        flat.get("target"),
                        flat.get("runtime"),
                        flat.get("p50_ms"),
                        flat.get("p99_ms"),
                        flat.get("peak_rss_kb"),
                        flat.get("energy_j_per_inference"),
                        env_sha,
                        json.dumps(data, default=str),
                    ),
                )

    def runs(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Recorded runs, newest first: run_id, created, recipe_hash, meta, results (count)."""
        query = (
            "SELECT r.run_id, r.created, r.recipe_hash, r.meta, COUNT(x.id) FROM runs r "
            "LEFT JOIN results x ON x.run_id = r.run_id GROUP BY r.run_id ORDER BY r.created DESC, r.rowid DESC"
        )
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        with self._connect() as db:
            rows = db.execute(query).fetchall()
        return [
            {"run_id": r[0], "created": r[1], "recipe_hash": r[2], "meta": json.loads(r[3]), "results": r[4]}
            for r in rows
        ]

    def resolve(self, ref: str) -> str:
        """A run id from `ref`: an exact id, `latest`, `latest~N` (N runs before), or a unique prefix."""
        runs = [str(run["run_id"]) for run in self.runs()]
        if ref in runs:
            return ref
        if ref == "latest" or ref.startswith("latest~"):
            back = ref.partition("~")[2]
            index = int(back) if back.isdigit() else (0 if not back else -1)
            if 0 <= index < len(runs):
                return runs[index]
            raise BenchError(
                f"no run '{ref}' in the history ({len(runs)} run(s) recorded)", hint="see `edgekd bench history`"
            )
        matches = [run for run in runs if run.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        close = suggest(ref, runs)
        hint = f"did you mean '{close}'? " if close else ""
        if len(matches) > 1:
            raise BenchError(f"'{ref}' matches {len(matches)} runs", hint=hint + "give more of the run id")
        raise BenchError(
            f"no run '{ref}' in the history {self.path}",
            hint=hint + "see `edgekd bench history`, or use latest / latest~1",
        )

    def results(self, run_id: str) -> list[dict[str, Any]]:
        """The stored result dicts of a run (to_dict() form where recorded from BenchResults)."""
        resolved = self.resolve(run_id)
        with self._connect() as db:
            rows = db.execute("SELECT result FROM results WHERE run_id = ? ORDER BY position", (resolved,)).fetchall()
        return [json.loads(row[0]) for row in rows]
