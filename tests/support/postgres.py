"""A real PostgreSQL server for the sweep tests: initdb into a temporary directory, unix socket only.

Debian's `postgresql` package (installed by .ci/run) provides the binaries under /usr/lib/postgresql/<v>/bin.
The server refuses to run as root, so under root the data directory is handed to the `postgres` account and
the server runs as that user; otherwise it runs as the current user. No TCP port is opened
(`listen_addresses = ''`): clients connect through the socket in the temporary directory.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def postgres_bin() -> Path | None:
    """The newest installed server's bin directory, or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


@dataclass
class LocalPostgres:
    root: Path  # data directory and socket live under it
    bindir: Path
    user: str | None  # the OS account the server runs as (None: the current one)
    database: str = "sweeps"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@/{self.database}?host={self.socket_dir}"

    def _run(self, *argv: str) -> None:
        subprocess.run(
            [str(self.bindir / argv[0]), *argv[1:]], check=True, capture_output=True, user=self.user, timeout=120
        )

    def start(self) -> None:
        data = self.root / "data"
        self._run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-k {self.socket_dir} -c listen_addresses='' -c fsync=off -c max_connections=60"
        self._run("pg_ctl", "-D", str(data), "-l", str(self.root / "server.log"), "-o", options, "-w", "start")
        self._run("createdb", "-h", str(self.socket_dir), "-U", "postgres", self.database)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")


@contextlib.contextmanager
def local_postgres() -> Iterator[LocalPostgres]:
    """Start a throwaway server; stop it and delete its directory afterwards. Raises LookupError if absent."""
    bindir = postgres_bin()
    if bindir is None:
        raise LookupError("PostgreSQL server binaries not found (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="edgekd-pg-"))
    user = None
    if os.geteuid() == 0:
        user = "postgres"
        account = pwd.getpwnam(user)
        os.chown(root, account.pw_uid, account.pw_gid)
    (root / "sock").mkdir()
    if user:
        os.chown(root / "sock", pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid)
    server = LocalPostgres(root, bindir, user)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
