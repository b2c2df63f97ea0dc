"""A run directory's layout and bookkeeping: stage manifests under `.edgekd/stages/`, the lock, moving a
stage's finished outputs in, and whether a recorded stage is still a cache hit."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from edgekd.artifacts import SIDECAR_SCHEMA, Artifact, sidecar_path
from edgekd.errors import CacheError, LockError, UsageError
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


#: What an entry a stage moves into a run directory is, which decides when an existing entry of that name is
#: edgekd's to replace: an artifact (a file with its sidecar `<name>.json`), a sidecar, a folder edgekd marks
#: (OUTPUT_MARKER), or the handoff bundle folder (its own `bundle.json`, and the bundle's zip beside it).
ARTIFACT, SIDECAR, FOLDER, BUNDLE = "artifact", "sidecar", "folder", "bundle"


def check_destination(run_path: Path, name: str, kind: str, *, zip_name: str | None = None,
                      writer: str | None = None) -> None:  # fmt: skip
    """Refuse (UsageError, touching nothing) when a stage's output `name` of `kind` would replace an entry of
    `run_path` that edgekd did not write. The one rule for a run directory: the commit of a stage's outputs
    and preflight (before any stage, `writer` naming the stage) both call it.

    A run directory may hold the user's own files (`--out` names any folder). A handoff bundle folder replaces a
    folder of that name only when it is an earlier edgekd bundle, and its zip only a bundle zip of ours (the
    handoff's own rule). An artifact replaces a file only when that file has an edgekd sidecar (every file edgekd
    writes has one, so a lone `report.md` is the user's); a sidecar replaces only an edgekd sidecar; a folder
    replaces only a folder edgekd moved there (marked), an empty one, or an older edgekd's (`older_output`).
    """
    dest = run_path / name
    if kind == BUNDLE:
        from edgekd.handoff.publish import check_destination as check_bundle

        check_bundle(dest, run_path / zip_name if zip_name else None)
        return
    if not dest.exists() and not dest.is_symlink():
        return
    lead = f"{dest} exists and edgekd did not write it"
    never = (f"the {writer} stage of this run writes {name}, and " if writer else "") + (
        "edgekd never overwrites, moves or deletes other files"
    )
    if kind == FOLDER and not _ours(run_path, dest):
        raise UsageError(
            f"{lead} (it has no {OUTPUT_MARKER}, and it is not an older edgekd's output that can be verified); {never}",
            hint=f"run into a new or empty folder (--out), or move the folder out of the way (e.g. `mv {dest} "
            f"{dest}.old`); if an older edgekd wrote it, moving it keeps it and lets this run write a new one",
        )
    if kind == ARTIFACT and (dest.is_symlink() or not dest.is_file() or not is_sidecar(sidecar_path(dest))):
        raise UsageError(f"{lead} (it has no sidecar {sidecar_path(dest).name} of edgekd's); {never}",
                         hint="run into a new or empty folder (--out), or move the file out of the way")  # fmt: skip
    if kind == SIDECAR and not is_sidecar(dest):
        raise UsageError(f"{lead} (it is not an edgekd sidecar: no schema {SIDECAR_SCHEMA!r}); {never}",
                         hint="run into a new or empty folder (--out), or move the file out of the way")  # fmt: skip


def is_sidecar(path: Path) -> bool:
    """True when `path` is a regular file holding an edgekd artifact sidecar (a JSON object of its schema)."""
    if path.is_symlink() or not path.is_file():
        return False
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("schema") == SIDECAR_SCHEMA


def output_kinds(entries: list[Path]) -> dict[str, tuple[str, str | None]]:
    """name -> (kind, the bundle's zip name or None) for the entries of a stage's workdir (see ARTIFACT...).

    Every file that is not a sidecar is an artifact: edgekd writes a sidecar beside every file, so an existing
    file of that name without one is not edgekd's (a stage writing a lone file would be refused its own rerun)."""
    names = {entry.name for entry in entries}
    kinds: dict[str, tuple[str, str | None]] = {}
    for entry in entries:
        if entry.is_dir() and (entry / "bundle.json").is_file():
            zip_name = f"{entry.name}.zip"
            kinds[entry.name] = (BUNDLE, zip_name if zip_name in names else None)
        elif entry.is_dir():
            kinds[entry.name] = (FOLDER, None)
        elif entry.name.endswith(".json") and entry.name.removesuffix(".json") in names:
            kinds[entry.name] = (SIDECAR, None)
        else:
            kinds[entry.name] = (ARTIFACT, None)
    return kinds


def check_replaceable(run_path: Path, entries: list[Path]) -> None:
    """Refuse, touching nothing, to move a stage's workdir entries onto anything edgekd did not write."""
    for name, (kind, zip_name) in output_kinds(entries).items():
        check_destination(run_path, name, kind, zip_name=zip_name)


def _ours(run_path: Path, folder: Path) -> bool:
    """A folder edgekd may replace: one it moved into a run directory (it holds the marker), an empty one, or one
    an older edgekd wrote before folders were marked (`older_output`)."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    return (folder / OUTPUT_MARKER).is_file() or not any(folder.iterdir()) or older_output(run_path, folder)


def older_output(run_path: Path, folder: Path) -> bool:
    """True for a folder an edgekd from before OUTPUT_MARKER moved into this run directory, recognised by its
    content (a user's folder of that name never passes): today only `teacher_cache/`, the one unmarked folder an
    older stage left (an older handoff bundle is recognised by its `bundle.json`, quant_ladder/ came with the
    marker)."""
    check = _OLDER_OUTPUTS.get(folder.name)
    return check is not None and check(RunDirectory(run_path), folder)


def _older_teacher_cache(run: RunDirectory, folder: Path) -> bool:
    """An older distill stage's teacher-output cache: the run directory records stages of edgekd's (a rerun of
    distill has removed its own record by then), and every entry of the folder is a cache entry whose index names
    it (schema and key), lists every file in it and matches their sha256 (checked by the cache's own reader),
    with nothing else beside them."""
    from edgekd.distill.cache import TeacherOutputCache

    if not run.manifests():
        return False
    cache = TeacherOutputCache(folder)
    children = sorted(folder.iterdir())
    for child in children:
        if child.is_symlink() or not child.is_dir():
            return False
        try:
            cache.open(child.name)  # schema, key == folder name, every shard's sha256
            shards = read_json(child / "index.json")["shards"]
            listed = {"index.json"} | {str(s[role]) for s in shards for role in ("values", "indices") if role in s}
        except (CacheError, OSError, ValueError, KeyError, TypeError):  # not a readable cache entry: not ours
            return False
        present = {p.name for p in child.iterdir()}
        if present != listed or any(p.is_symlink() or not p.is_file() for p in child.iterdir()):
            return False
    return bool(children)


_OLDER_OUTPUTS: dict[str, Callable[[RunDirectory, Path], bool]] = {"teacher_cache": _older_teacher_cache}


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
