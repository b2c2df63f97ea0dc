"""The TargetErrors an SSH target raises, each with what went wrong and the command that fixes it."""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import TYPE_CHECKING

from edgekd.errors import TargetError

if TYPE_CHECKING:
    from edgekd.targets.ssh.target import SshTarget

DISK_FULL_MARKERS = ("No space left on device", "Disk quota exceeded", "ENOSPC")


def is_disk_full(stderr: str) -> bool:
    return any(marker in stderr for marker in DISK_FULL_MARKERS)


def is_final(exc: BaseException) -> bool:
    """A connection failure that retrying cannot fix: a local file problem or a name that does not resolve."""
    if isinstance(exc, socket.gaierror):
        return True
    return isinstance(exc, OSError) and exc.filename is not None


def connect_error(target: SshTarget, exc: BaseException | None, attempts: int, final: bool) -> TargetError:
    """Connection failure after `attempts` tries, classified by the exception's type and errno (never its text)."""
    import asyncssh

    detail = (str(exc) or type(exc).__name__) if exc is not None else "no answer"
    if isinstance(exc, asyncssh.PermissionDenied):
        key = f"-i {target.entry.key} " if target.entry.key else ""
        port = f"-p {target.entry.port} " if target.entry.port else ""
        return TargetError(
            f"{target.name}: {target.address} refused the login ({detail})",
            hint=f"check `user` and `key` of targets.{target.name}; try `ssh {key}{port}{target.address.split(':')[0]} true`",
        )
    if isinstance(exc, asyncssh.KeyImportError):
        return TargetError(
            f"{target.name}: cannot use the private key {target.entry.key or ''}: {detail}",
            hint="an encrypted key needs ssh-agent (ssh-add KEY); or give an unencrypted key",
        )
    if isinstance(exc, OSError) and exc.filename is not None:
        return TargetError(
            f"{target.name}: cannot read {exc.filename}: {exc.strerror or detail}",
            hint=f"check `key` and `known_hosts` of targets.{target.name} in targets.toml",
        )
    if isinstance(exc, socket.gaierror):
        return TargetError(
            f"{target.name}: the host name {target.entry.host} does not resolve ({exc.strerror or detail})",
            hint=f"check `host` of targets.{target.name}; try `ping {target.entry.host}`",
        )
    why = detail
    if isinstance(exc, ConnectionRefusedError):
        why = f"nothing accepts connections on port {target.entry.port or 22} (connection refused)"
    elif isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        why = f"no answer within {target.entry.connect_timeout:g} s"
    elif isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        why = f"no route to the host ({exc.strerror})"
    return TargetError(
        f"{target.name}: cannot reach {target.address} after {attempts} attempt(s): {why}",
        hint="is the device on, on this network, and running sshd? "
        f"check host/port of targets.{target.name} (connect_timeout = {target.entry.connect_timeout:g} s)",
    )


def lost_connection(target: SshTarget, what: str, detail: str) -> TargetError:
    return TargetError(
        f"{target.name}: lost the SSH connection to {target.address} while {what}: {detail}",
        hint="check the device's power and network; results finished before the drop are kept, rerun for the rest",
    )


def disk_full(target: SshTarget, where: str, what: str, size: int | None) -> TargetError:
    need = f" ({size / 1e6:.2f} MB)" if size is not None else ""
    return TargetError(
        f"{target.name}: the device's disk is full: no space left in {where} while {what}{need}",
        hint=f"free space on the device (`df -h {where}` there) or set `workdir` of targets.{target.name} "
        "to a filesystem with room",
    )
