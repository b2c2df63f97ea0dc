"""Publish a bundle atomically: build it in a hidden staging folder, then rename it onto its final name.

A killed run leaves at most a staging folder (removed by the next run when its process is gone), never a
half bundle under the final name. The zip beside the folder is written from the staging folder first and
renamed right after the folder, so the two always come from the same run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import zipfile
from pathlib import Path

from edgekd.fileio import atomic_path, storage_error

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same bundle gives the same zip bytes


def staging_dir(out_dir: Path) -> Path:
    """A fresh hidden folder beside out_dir; leftovers of killed runs (dead pids) are removed first."""
    parent = out_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for stale in parent.glob(f".{out_dir.name}.tmp-*"):
            pid = stale.name.rsplit("-", 1)[-1]
            if not pid.isdigit() or not _pid_alive(int(pid)):
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

    The zip is written from the staging folder before anything is renamed, so the two renames are the
    only window in which a kill could leave the folder and zip from different runs. Without a zip, a
    stale one from an earlier bundle is removed rather than left disagreeing with the folder.
    """
    old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    if zip_path is None:
        with contextlib.suppress(FileNotFoundError):
            out_dir.with_name(out_dir.name + ".zip").unlink()
        _swap(staging, out_dir, old)
        return
    with atomic_path(zip_path) as tmp_zip:
        _write_zip(staging, tmp_zip, folder_name=out_dir.name)
        _swap(staging, out_dir, old)


def _swap(staging: Path, out_dir: Path, old: Path) -> None:
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(staging, out_dir)
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(old)


def _write_zip(folder: Path, zip_file: Path, *, folder_name: str) -> None:
    """A deterministic zip of `folder` with entries under `folder_name/` (sorted, fixed timestamps)."""
    with zipfile.ZipFile(zip_file, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.iterdir()):
            info = zipfile.ZipInfo(f"{folder_name}/{path.name}", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    zip_file.chmod(0o644)  # mkstemp made it private; the zip is meant to be shared
