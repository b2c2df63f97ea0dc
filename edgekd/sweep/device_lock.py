"""One model at a time per physical device: a lock around the bench step of concurrent trials.

Design: the lock lives where the study lives, so every worker that can join the study can take it and nothing
else has to be reachable (a device over SSH may be a bare board with no lock tooling, and a lock file on it
would outlive a worker that died):
- SQLite study (one machine, several worker processes): an `fcntl.flock` on `device-locks/<target>.lock`
  beside the SQLite file. The kernel drops it when the holder exits or is SIGKILLed.
- PostgreSQL study (many machines): a session-level `pg_advisory_lock(key)` on a connection of its own, key =
  the first 8 bytes of sha256("edgekd.target_protocol:" + target name) as a signed int64. The server drops it when the
  holder's connection ends (a killed worker's socket closes), so a dead worker never keeps a device.

The lock is named by the target's name in targets.toml: two names for one physical device are two locks.
Several targets are taken in sorted order, so two trials never wait for each other crosswise.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from edgekd.errors import StorageError, UsageError


class DeviceLock(Protocol):
    def hold(self, targets: list[str]) -> contextlib.AbstractContextManager[None]:
        """Hold every target's lock (blocking until free) for the duration of the block."""
        ...


class FileDeviceLock:
    """flock-based lock files in one directory (beside the SQLite study)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, target: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", target)
        return self.directory / f"{safe}-{hashlib.sha256(target.encode()).hexdigest()[:8]}.lock"

    @contextlib.contextmanager
    def hold(self, targets: list[str]) -> Iterator[None]:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create the device-lock folder {self.directory}: {exc.strerror}",
                hint="the sweep directory must be writable",
            ) from None
        with contextlib.ExitStack() as stack:
            for target in sorted(set(targets)):
                handle = stack.enter_context(open(self.path(target), "a+"))  # closed by the stack
                fcntl.flock(handle, fcntl.LOCK_EX)  # released on close, or by the kernel if we die
            yield


def advisory_key(target: str) -> int:
    """A signed 64-bit pg_advisory_lock key for a target name (stable across machines and Python runs)."""
    return int.from_bytes(hashlib.sha256(f"edgekd.target_protocol:{target}".encode()).digest()[:8], "big", signed=True)


class PostgresDeviceLock:
    """Session advisory locks on a dedicated connection to the study's PostgreSQL server."""

    def __init__(self, url: str) -> None:
        self.url = url

    @contextlib.contextmanager
    def hold(self, targets: list[str]) -> Iterator[None]:
        from sqlalchemy import create_engine, text
        from sqlalchemy.pool import NullPool

        engine = create_engine(self.url, poolclass=NullPool)
        keys = [advisory_key(t) for t in sorted(set(targets))]
        try:
            with engine.connect() as conn:
                for key in keys:
                    conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
                    conn.commit()
                try:
                    yield
                finally:
                    for key in reversed(keys):
                        conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    conn.commit()
        finally:
            engine.dispose()


def device_lock_for(storage_url: str) -> DeviceLock:
    """The lock that fits the study's storage (see module doc)."""
    scheme = storage_url.split(":", 1)[0].split("+", 1)[0]
    if scheme == "sqlite":
        database = Path(storage_url.removeprefix("sqlite:///"))
        return FileDeviceLock(database.parent / "device-locks")
    if scheme in ("postgresql", "postgres"):
        return PostgresDeviceLock(storage_url)
    raise UsageError(
        f"--storage {scheme}://...: edgekd locks benchmark devices in SQLite or PostgreSQL studies only",
        hint="use a postgresql://user@host/db URL for several machines, or leave --storage unset",
    )
