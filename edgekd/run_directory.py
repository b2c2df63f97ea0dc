"""A run directory's layout and bookkeeping: stage manifests under `.edgekd/stages/`, the lock, moving a
stage's finished outputs in, and whether a recorded stage is still a cache hit."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgekd.artifacts import Artifact, sidecar_path
from edgekd.errors import LockError, UsageError
from edgekd.fileio import read_json, sha256_path, storage_error

MANIFEST_SCHEMA = "edgekd.stage/1"
#: The file edgekd puts in every folder it moves into a run directory (what makes the folder replaceable).
OUTPUT_MARKER = ".edgekd-output"


class RunDirectory:
    """The layout of a run directory and its bookkeeping under `.edgekd/`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.meta = path / ".edgekd"
        self.stages = self.meta / "stages"
        self.tmp = self.meta / "tmp"

    def manifest_path(self, stage: str) -> Path:
        return self.stages / f"{stage}.json"

    def read_manifest(self, stage: str) -> dict[str, Any] | None:
        path = self.manifest_path(stage)
        if not path.exists():
            return None
        try:
            data = read_json(path)
        except (OSError, ValueError):
            return None  # a damaged manifest is a cache miss, never a crash
        return data if isinstance(data, dict) and data.get("schema") == MANIFEST_SCHEMA else None

    def manifests(self) -> dict[str, dict[str, Any]]:
        found = {}
        for path in sorted(self.stages.glob("*.json")) if self.stages.exists() else []:
            data = self.read_manifest(path.stem)
            if data is not None:
                found[path.stem] = data
        return found

    def artifacts_of(self, manifest: dict[str, Any]) -> list[Artifact]:
        return [Artifact.from_dict(a, base=self.path) for a in manifest.get("artifacts", [])]

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive lock on the run directory for the duration (two runs never share one)."""
        try:
            self.meta.mkdir(parents=True, exist_ok=True)
            handle = open(self.meta / "lock", "a+")  # noqa: SIM115 - held open for the whole run, closed in finally
        except OSError as exc:
            raise storage_error(exc, self.meta) from None
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise LockError(
                    f"run directory {self.path} is in use by {holder}",
                    hint="wait for that run to finish, or choose another directory with --out",
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"edgekd pid {os.getpid()}")
            handle.flush()
            yield
        finally:
            handle.close()


def cache_valid(run: RunDirectory, manifest: dict[str, Any] | None, key: str) -> bool:
    """A hit needs the same key, a stage that succeeded, and every output still on disk with its content."""
    if manifest is None or manifest.get("key") != key or manifest.get("status") == "failed":
        return False
    for entry in manifest.get("artifacts", []):
        path = run.path / entry["path"]
        if not path.exists() or sha256_path(path) != entry["sha256"]:
            return False
    return True


def check_replaceable(run_path: Path, entries: list[Path]) -> None:
    """Refuse, touching nothing, to move a stage's output onto a file or bundle edgekd did not write.

    A run directory may hold the user's own files (`--out` names any folder). A handoff bundle folder (one
    holding `bundle.json`) replaces a folder of that name only when it is an earlier edgekd bundle, and its
    zip only a bundle zip of ours (the handoff's own rule, one function for both). An artifact (a file
    written with its sidecar) replaces a file of that name only when that file has its sidecar too: every
    file edgekd writes has one, so a lone `report.md` is the user's.
    """
    from edgekd.handoff.publish import check_destination

    names = {entry.name for entry in entries}
    for entry in entries:
        dest = run_path / entry.name
        if entry.is_dir() and (entry / "bundle.json").is_file():
            zip_name = f"{entry.name}.zip"
            check_destination(dest, run_path / zip_name if zip_name in names else None)
        elif entry.is_dir() and (dest.exists() or dest.is_symlink()) and not _ours(dest):
            raise UsageError(
                f"{dest} exists and edgekd did not write it (it has no {OUTPUT_MARKER}); "
                "edgekd never overwrites, moves or deletes other files",
                hint="run into a new or empty folder (--out), or move the folder out of the way",
            )
        elif (
            entry.is_file()
            and f"{entry.name}.json" in names
            and (dest.exists() or dest.is_symlink())
            and (dest.is_symlink() or not dest.is_file() or not sidecar_path(dest).is_file())
        ):
            raise UsageError(
                f"{dest} exists and edgekd did not write it (it has no {sidecar_path(dest).name}); "
                "edgekd never overwrites, moves or deletes other files",
                hint="run into a new or empty folder (--out), or move the file out of the way",
            )


def _ours(folder: Path) -> bool:
    """A folder edgekd may replace: one it moved into a run directory (it holds the marker), or an empty one."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    return (folder / OUTPUT_MARKER).is_file() or not any(folder.iterdir())


def commit(run: RunDirectory, workdir: Path, artifacts: list[Artifact]) -> list[Artifact]:
    """Move a stage's outputs from its private workdir into the run directory; return relocated artifacts.

    Every folder moved in gets OUTPUT_MARKER (a bundle's own `bundle.json` plays that part for handoff), so a
    later run replaces only folders edgekd wrote there, never a user's folder of the same name."""
    moved: list[Artifact] = []
    entries = sorted(workdir.iterdir())
    check_replaceable(run.path, entries)
    for entry in entries:
        dest = run.path / entry.name
        if entry.is_dir() and not (entry / "bundle.json").is_file():
            (entry / OUTPUT_MARKER).write_text(f"written by edgekd ({workdir.name}); replaced by a rerun\n")
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        os.replace(entry, dest)
    for artifact in artifacts:
        try:
            relative = artifact.path.resolve().relative_to(workdir.resolve())
        except ValueError:
            moved.append(artifact)  # an artifact the stage passed through from elsewhere
            continue
        moved.append(artifact.moved_to(run.path / relative))
    return moved


def disk_full(path: Path, reserve: int = 64 * 1024) -> bool:
    try:
        stats = os.statvfs(path)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < reserve


def relative_entry(artifact: Artifact, root: Path) -> dict[str, Any]:
    data = artifact.to_dict()
    try:
        data["path"] = artifact.path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        data["path"] = str(artifact.path)
    data["size_bytes"] = artifact.size_bytes
    data["sidecar"] = sidecar_path(Path(data["path"])).as_posix()
    return data
