"""The TargetErrors an SSH target raises, each with what went wrong and the command that fixes it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edgekd.errors import TargetError

if TYPE_CHECKING:
    from edgekd.targets.ssh import SshTarget

DISK_FULL_MARKERS = ("No space left on device", "Disk quota exceeded", "ENOSPC")


def is_disk_full(stderr: str) -> bool:
    return any(marker in stderr for marker in DISK_FULL_MARKERS)


def _keyscan_command(target: SshTarget) -> str:
    port = f"-p {target.entry.port} " if target.entry.port else ""
    known_hosts = target.entry.known_hosts or Path("~/.ssh/known_hosts")
    return f"ssh-keyscan {port}{target.entry.host} >> {known_hosts}"


def host_key_refusal(target: SshTarget, fingerprint: str | None, reason: str) -> TargetError:
    """Unknown (or changed) host key: refuse, show the fingerprint, say how to check and accept it."""
    seen = f"its key fingerprint is {fingerprint}" if fingerprint else "its key could not be read"
    changed = "changed" in reason.lower() or "mismatch" in reason.lower()
    what = "does not match the one in known_hosts" if changed else "is not in known_hosts"
    hint = (
        f"on the device, `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` must print {fingerprint or 'the same'}; "
        f"if it does, accept it with: {_keyscan_command(target)}  (or `edgekd targets trust {target.name}`)"
    )
    if changed:
        port = f"[{target.entry.host}]:{target.entry.port}" if target.entry.port else target.entry.host
        hint = f"if the device was reinstalled, remove the old key with `ssh-keygen -R '{port}'`, then " + hint
    return TargetError(f"{target.name}: refusing {target.address}: the host key {what}; {seen}", hint=hint)


def connect_error(target: SshTarget, exc: BaseException | None, attempts: int, final: bool) -> TargetError:
    """Connection failure after `attempts` tries (`final`: a refusal that retrying cannot fix)."""
    import asyncssh

    detail = str(exc) or type(exc).__name__ if exc is not None else "no answer"
    if isinstance(exc, asyncssh.PermissionDenied):
        key = f"-i {target.entry.key} " if target.entry.key else ""
        port = f"-p {target.entry.port} " if target.entry.port else ""
        return TargetError(
            f"{target.name}: {target.address} refused the login ({detail})",
            hint=f"check `user` and `key` of targets.{target.name}; try `ssh {key}{port}{target.address.split(':')[0]} true`",
        )
    return TargetError(
        f"{target.name}: cannot reach {target.address} after {attempts} attempt(s): {detail}",
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
