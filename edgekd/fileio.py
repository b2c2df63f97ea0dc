"""Atomic file writes and hashing.

Everything edgekd writes goes to a temporary file in the destination directory first and is renamed
into place only when complete, so a killed process never leaves a half-written file under a final name.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgekd.errors import StorageError

_CHUNK = 1 << 20


def _file_mode() -> int:
    """The mode a plain open() would give a new file (mkstemp's 0600 is too strict for results)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_tree(root: str | os.PathLike[str]) -> str:
    """A content hash of a directory: relative paths and file hashes, in sorted order."""
    base = Path(root)
    digest = hashlib.sha256()
    for file in sorted(p for p in base.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(base).as_posix()}\0{sha256_file(file)}\n".encode())
    return digest.hexdigest()


def sha256_path(path: str | os.PathLike[str]) -> str:
    """sha256 of a file, or the tree hash of a directory."""
    return sha256_tree(path) if Path(path).is_dir() else sha256_file(path)


#: User files up to this size are fingerprinted by content (sha256); larger ones and folders by size and mtime.
CONTENT_FINGERPRINT_MAX_BYTES = 256 * 1024 * 1024


def fingerprint(path: str | os.PathLike[str]) -> str:
    """What a cache key needs of a user's file or folder (data, a teacher file): a changed file changes it.

    A file up to CONTENT_FINGERPRINT_MAX_BYTES by its content; a larger file, or every file of a folder, by
    relative name, size and modification time (hashing a 2 GB folder of clips on every run costs minutes;
    a stat costs microseconds). "missing" when nothing is there (the stage itself says what is wrong)."""
    base = Path(path)
    try:
        if base.is_file():
            stat = base.stat()
            if stat.st_size <= CONTENT_FINGERPRINT_MAX_BYTES:
                return "sha256:" + sha256_file(base)
            return f"stat:{stat.st_size}:{stat.st_mtime_ns}"
        if base.is_dir():
            digest = hashlib.sha256()
            for file in sorted(p for p in base.rglob("*") if p.is_file()):
                stat = file.stat()
                digest.update(f"{file.relative_to(base).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
            return "tree:" + digest.hexdigest()
    except OSError as exc:
        return f"unreadable: {exc.strerror}"
    return "missing"


def storage_error(exc: OSError, path: str | os.PathLike[str]) -> StorageError:
    """Turn an OSError from writing `path` into a message a user can act on."""
    if exc.errno == errno.ENOSPC:
        return StorageError(
            f"no space left on the device holding {path}",
            hint="free some space or choose another run directory with --out; completed stages are kept",
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StorageError(f"cannot write {path}: {exc.strerror}", hint="choose a writable directory with --out")
    return StorageError(f"cannot write {path}: {exc.strerror or exc}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    final = Path(path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix or ".tmp", dir=final.parent)
        os.close(fd)
    except OSError as exc:
        raise storage_error(exc, final) from None
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, final)
    except OSError as exc:
        raise storage_error(exc, final) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise storage_error(exc, path) from None


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return obj.tolist()
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def save_npz(path: str | os.PathLike[str], arrays: dict[str, Any]) -> None:
    """Write arrays to an .npz atomically and byte-for-byte reproducibly (fixed zip timestamps, no pickle).

    np.savez stamps entries with the current time, so equal data would hash differently on every run and
    defeat the content-addressed stage cache.
    """
    import zipfile

    import numpy as np

    with atomic_path(path, suffix=".npz") as tmp:
        try:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
                for name, value in sorted(arrays.items()):
                    info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                    with archive.open(info, "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, np.asarray(value), allow_pickle=False)
        except OSError as exc:
            raise storage_error(exc, path) from None


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
