"""Host-key trust for SSH targets, decided by edgekd against the known_hosts entries themselves.

asyncssh raises the same `HostKeyNotVerifiable` text for a key it has never seen and for a key that differs
from the one recorded, so the text cannot tell them apart. Instead the key the device offered is recorded
during the handshake (asyncssh asks `validate_host_public_key` about every key its known_hosts does not
trust) and compared with the entries for that host: no entry (unknown), the same key, or a different key
(changed: a loud, distinct refusal like OpenSSH's "REMOTE HOST IDENTIFICATION HAS CHANGED").

A per-target `known_hosts` path that does not exist trusts nothing; only an unset `known_hosts` means
~/.ssh/known_hosts (and ~/.ssh/config's UserKnownHostsFile), as for `ssh`.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekd.errors import TargetError
from edgekd.fileio import atomic_write_bytes
from edgekd.target_protocol import TrustChange

if TYPE_CHECKING:
    import asyncssh

    from edgekd.targets.ssh.entry import SshEntry
    from edgekd.targets.ssh.target import SshTarget

DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")
NOTHING_TRUSTED: tuple[list[Any], list[Any], list[Any]] = ([], [], [])  # host keys, CA keys, revoked keys


def known_hosts_path(entry: SshEntry) -> Path:
    """The file edgekd reads and `targets trust` writes for this target."""
    return entry.known_hosts if entry.known_hosts is not None else DEFAULT_KNOWN_HOSTS.expanduser()


def known_hosts_option(entry: SshEntry) -> Any:
    """asyncssh's `known_hosts` argument: the target's file, or nothing trusted when that file is missing.

    An empty list or b"" would make asyncssh fall back to ~/.ssh/known_hosts: a non-empty tuple of empty
    lists trusts nothing. `()` (the default) lets asyncssh read ~/.ssh/config and ~/.ssh/known_hosts."""
    if entry.known_hosts is None:
        return ()
    return str(entry.known_hosts) if entry.known_hosts.is_file() else NOTHING_TRUSTED


def host_pattern(entry: SshEntry) -> str:
    """How known_hosts names this host: `host`, or `[host]:port` for a port other than 22."""
    return f"[{entry.host}]:{entry.port}" if entry.port not in (None, 22) else entry.host


def pinned_fingerprints(entry: SshEntry) -> list[str]:
    """SHA256 fingerprints of the keys known_hosts pins for the entry's host and port (by name, no DNS
    lookup), sorted; [] when none is recorded."""
    port = entry.port if entry.port not in (None, 22) else None
    return sorted({fingerprint(key) for key in recorded_keys(known_hosts_path(entry), entry.host, entry.host, port)})


def entry_identity(entry: SshEntry) -> dict[str, str]:
    """Where an ssh entry runs, without connecting: the fields that decide it and the pinned host key. An alias
    resolved by ~/.ssh/config is named as written; a host with no pinned key has host_key "" (it is refused)."""
    from edgekd.targets.tools import tool_identity

    identity = {
        "kind": "ssh",
        "host": entry.host,
        "port": str(entry.port or ""),
        "user": entry.user or "",
        "workdir": entry.workdir,
        "python": entry.python,
        "profile": entry.profile or "",
        "host_key": ",".join(pinned_fingerprints(entry)),
    }
    return {**identity, **tool_identity(entry.benchmark_model)}


def _address(host: str) -> str:
    try:
        return str(socket.getaddrinfo(host, None)[0][4][0])
    except (OSError, IndexError):
        return ""


def recorded_keys(path: Path, host: str, addr: str | None, port: int | None) -> list[asyncssh.SSHKey]:
    """The plain host keys `path` holds for host/address/port (what asyncssh would trust), [] without a file."""
    import asyncssh

    if not path.is_file():
        return []
    try:
        found = asyncssh.match_known_hosts(
            str(path), host, addr if addr is not None else _address(host), port if port not in (None, 22) else None
        )[0]
    except (OSError, ValueError) as exc:
        raise TargetError(f"cannot read {path}: {exc}", hint=f"fix or remove the broken line in {path}") from None
    return list(dict.fromkeys(found))  # a line matching both the name and the address is one key


@dataclass
class OfferedKey:
    """What the device offered in the handshake that asyncssh's known_hosts did not trust."""

    host: str
    addr: str
    port: int | None
    key: asyncssh.SSHKey


def recording_client() -> Any:
    """An asyncssh client that records the untrusted host key it is asked about (and trusts nothing more)."""
    import asyncssh

    class Recorder(asyncssh.SSHClient):
        offered: OfferedKey | None = None

        def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
            self.offered = OfferedKey(host, addr, port, key)
            return False

    return Recorder()


def fingerprint(key: asyncssh.SSHKey) -> str:
    return key.get_fingerprint("sha256")


def refusal(target: SshTarget, offered: OfferedKey | None) -> TargetError:
    """The refusal of an untrusted host key: "changed" (old and new fingerprints) or "not in known_hosts"."""
    path = known_hosts_path(target.entry)
    if offered is None:  # asyncssh refused before asking (a revoked key, a certificate): say what we can
        return TargetError(
            f"{target.name}: refusing {target.address}: its host key is not trusted by {path}",
            hint=f"check {path} for @revoked or @cert-authority lines for {target.entry.host}",
        )
    new = fingerprint(offered.key)
    old = [fingerprint(key) for key in recorded_keys(path, offered.host, offered.addr, offered.port)]
    pattern = host_pattern(target.entry)
    if old:
        return TargetError(
            f"{target.name}: REMOTE HOST IDENTIFICATION HAS CHANGED for {target.address}: refusing to connect. "
            f"{path} has key {', '.join(old)}, the device now offers {new}. Someone may be intercepting the "
            "connection, or the device was reinstalled",
            hint=f"if the device was reinstalled and `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on it prints "
            f"{new}, replace the old key: ssh-keygen -f {path} -R '{pattern}'  or  "
            f"edgekd targets trust {target.name} --replace",
        )
    return TargetError(
        f"{target.name}: refusing {target.address}: the host key is not in known_hosts ({path}); "
        f"its key fingerprint is {new}",
        hint=f"on the device, `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` must print {new}; if it does, "
        f"accept it with: {keyscan_command(target)}  (or `edgekd targets trust {target.name}`)",
    )


def keyscan_command(target: SshTarget) -> str:
    port = f"-p {target.entry.port} " if target.entry.port else ""
    return f"ssh-keyscan {port}{target.entry.host} >> {known_hosts_path(target.entry)}"


def trust_key(target: SshTarget, line: str, replace: bool) -> TrustChange:
    """Add `line` (pattern, type, base64) to the target's known_hosts. A different key already recorded for
    the host is a refusal unless `replace`; then every entry asyncssh would match for the host is removed."""
    path = known_hosts_path(target.entry)
    offered = line.split()[1:3]
    port = target.entry.port if target.entry.port not in (None, 22) else None
    addr = _address(target.entry.host)
    old = recorded_keys(path, target.entry.host, addr, port)
    if any(_words(key) == offered for key in old):  # already trusted (other key types of the host stay)
        return TrustChange(path, (), False)
    removed: list[str] = []
    if old:
        if not replace:
            raise TargetError(
                f"{target.name}: {path} already has a different host key for {host_pattern(target.entry)} "
                f"({', '.join(fingerprint(k) for k in old)}); the device offers {_fingerprint_of(offered)}. "
                "Not adding it next to the old one",
                hint=f"if the device was reinstalled, replace the old key: edgekd targets trust {target.name} "
                f"--replace  (or ssh-keygen -f {path} -R '{host_pattern(target.entry)}')",
            )
        removed = [fingerprint(k) for k in old]
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not removed:  # a new host: append, leaving the rest of the file (and its mode) as it is
            lines = _lines(path)
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(("\n" if lines and not lines[-1].endswith("\n") else "") + line.rstrip("\n") + "\n")
            return TrustChange(path, (), True)
    except OSError as exc:
        raise TargetError(
            f"cannot write {path}: {exc.strerror or exc}", hint="set known_hosts of the target to a writable path"
        ) from None
    # --replace: the file without the host's entries, plus the new one (as `ssh-keygen -R` then add)
    kept = [raw for raw in _lines(path) if not _matches(raw, target.entry.host, addr, port)]
    text = "".join(kept) + ("" if not kept or kept[-1].endswith("\n") else "\n") + line.rstrip("\n") + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))
    return TrustChange(path, tuple(removed), True)


def _words(key: asyncssh.SSHKey) -> list[str]:
    """[type, base64] of a key, as a known_hosts line has them."""
    return key.export_public_key("openssh").decode().split()[:2]


def _fingerprint_of(words: list[str]) -> str:
    import asyncssh

    try:
        return fingerprint(asyncssh.import_public_key(" ".join(words)))
    except (ValueError, asyncssh.KeyImportError):
        return " ".join(words)[:60]


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        return []
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def _matches(raw: str, host: str, addr: str, port: int | None) -> bool:
    """Whether a plain host-key line (not @cert-authority / @revoked, not a comment) matches the host."""
    import asyncssh

    stripped = raw.strip()
    if not stripped or stripped.startswith(("#", "@")):
        return False
    try:
        return bool(asyncssh.match_known_hosts(stripped.encode(), host, addr, port)[0])
    except (ValueError, asyncssh.KeyImportError):
        return False
