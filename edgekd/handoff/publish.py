"""Publish a bundle atomically: build it in a hidden staging folder, then rename it onto its final name.

A killed run leaves at most a staging folder (removed by the next run when its process is gone), never a
half bundle under the final name. The zip beside the folder is written from the staging folder first and
renamed right after the folder, so the two always come from the same run.

Nothing edgekd did not write is ever deleted or moved: `check_destination` refuses an `--out` that is a
file, a link, or a folder that is not an earlier edgekd bundle (no `bundle.json` of ours) or that holds
files its `bundle.json` does not list; an earlier bundle is replaced by removing exactly the files it lists.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import zipfile
from pathlib import Path

from edgekd.errors import UsageError
from edgekd.fileio import atomic_path, storage_error

log = logging.getLogger(__name__)

BUNDLE_SCHEMA = "edgekd.handoff/1"
_INDEX_FILES = ("bundle.json", "SHA256SUMS")  # written after the file list, so not in it
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same bundle gives the same zip bytes


def _bundle_files(folder: Path) -> set[str] | None:
    """The file names an edgekd bundle in `folder` consists of, or None if `folder` is not one."""
    try:
        index = json.loads((folder / "bundle.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(index, dict) or index.get("schema") != BUNDLE_SCHEMA or not isinstance(index.get("files"), dict):
        return None
    files = index["files"]
    names = {str(name) for name in files}
    if any(Path(name).name != name or name in ("", ".", "..") for name in names):
        return None  # a path, not a bundle file name: not something edgekd wrote
    return names | set(_INDEX_FILES)


def _is_bundle_zip(zip_path: Path, folder_name: str) -> bool:
    """True when `zip_path` is a zip edgekd wrote for a bundle named `folder_name`."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    prefix = f"{folder_name}/"
    return f"{prefix}bundle.json" in names and all(n.startswith(prefix) and "/" not in n[len(prefix) :] for n in names)


def _foreign(zip_path: Path, folder_name: str) -> bool:
    """True when something other than a bundle zip of ours is at `zip_path` (nothing there: False)."""
    if not zip_path.exists() and not zip_path.is_symlink():
        return False
    return zip_path.is_symlink() or not zip_path.is_file() or not _is_bundle_zip(zip_path, folder_name)


def _refuse(path: Path, what: str) -> UsageError:
    return UsageError(
        f"{path} {what}; edgekd replaces only a handoff bundle it wrote and never deletes or moves other files",
        hint="give the bundle a new or empty folder (--out), or move your files out of the way first",
    )


def check_destination(out_dir: Path, zip_path: Path | None) -> set[str]:
    """The files publishing onto `out_dir` may replace (those an earlier edgekd bundle there lists).

    Raises UsageError, touching nothing, when `out_dir` is a file or link, a folder with anything edgekd
    did not write, or when `zip_path` exists and is not a bundle zip of ours.
    """
    replace: set[str] = set()
    if out_dir.is_symlink():
        raise _refuse(out_dir, "is a symbolic link")
    if out_dir.exists() and not out_dir.is_dir():
        raise _refuse(out_dir, "is a file, not a folder")
    if out_dir.is_dir():
        try:
            present = {p.name for p in out_dir.iterdir()}
        except OSError as exc:
            raise storage_error(exc, out_dir) from None
        if present:
            listed = _bundle_files(out_dir)
            if listed is None:
                shown = ", ".join(sorted(present)[:5]) + (", …" if len(present) > 5 else "")
                raise _refuse(out_dir, f"is a folder that is not an edgekd handoff bundle (it holds {shown})")
            foreign = [name for name in sorted(present) if name not in listed or not (out_dir / name).is_file()]
            if foreign:
                raise _refuse(out_dir, f"holds files the earlier bundle did not write ({', '.join(foreign[:5])})")
            replace = present
    if zip_path is not None and _foreign(zip_path, out_dir.name):
        raise _refuse(zip_path, "exists and is not a zip of an edgekd handoff bundle")
    return replace


def staging_dir(out_dir: Path) -> Path:
    """A fresh hidden folder beside out_dir; leftovers of killed runs (dead pids) are removed first."""
    parent = out_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for stale in parent.glob(f".{out_dir.name}.tmp-*"):
            pid = stale.name.rsplit("-", 1)[-1]
            if stale.is_dir() and not stale.is_symlink() and pid.isdigit() and not _pid_alive(int(pid)):
                shutil.rmtree(stale, ignore_errors=True)
        staging = parent / f".{out_dir.name}.tmp-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
    except OSError as exc:
        raise storage_error(exc, out_dir) from None
    return staging


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def publish(staging: Path, out_dir: Path, zip_path: Path | None) -> None:
    """Rename the complete staging folder onto out_dir (replacing an older bundle), then its zip beside it.

    The destination is checked again right before (see `check_destination`). The zip is written from the
    staging folder before anything is renamed, so the two renames are the only window in which a kill could
    leave the folder and zip from different runs. Without a zip, a stale bundle zip of ours is removed rather
    than left disagreeing with the folder; any other file of that name is left alone.
    """
    replace = check_destination(out_dir, zip_path)
    old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    if zip_path is None:
        stale_zip = out_dir.with_name(out_dir.name + ".zip")
        if stale_zip.exists() and not _foreign(stale_zip, out_dir.name):
            with contextlib.suppress(FileNotFoundError):
                stale_zip.unlink()
        _swap(staging, out_dir, old, replace)
        return
    with atomic_path(zip_path) as tmp_zip:
        _write_zip(staging, tmp_zip, folder_name=out_dir.name)
        _swap(staging, out_dir, old, replace)


def _swap(staging: Path, out_dir: Path, old: Path, replace: set[str]) -> None:
    """staging -> out_dir; the earlier bundle's own files (`replace`) are removed, nothing else."""
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(staging, out_dir)
    if not old.exists():
        return
    for name in replace:
        with contextlib.suppress(FileNotFoundError):
            (old / name).unlink()
    try:
        old.rmdir()
    except OSError:  # something appeared there meanwhile: keep it, say where
        log.warning("kept %s: it holds files the earlier bundle did not list", old)


def _write_zip(folder: Path, zip_file: Path, *, folder_name: str) -> None:
    """A deterministic zip of `folder` with entries under `folder_name/` (sorted, fixed timestamps)."""
    with zipfile.ZipFile(zip_file, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.iterdir()):
            info = zipfile.ZipInfo(f"{folder_name}/{path.name}", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    zip_file.chmod(0o644)  # mkstemp made it private; the zip is meant to be shared
