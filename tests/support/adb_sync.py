"""The `sync:` service of the loopback adb device (AOSP SYNC.TXT, file_sync_protocol.h).

Requests are `id(4) len(4) path`. Answers: STAT (mode,size,mtime), STA2/LST2 (stat_v2 struct), LIST
(DENT... then DONE), SEND (`path,mode`, then DATA chunks <= 64 KiB, DONE mtime -> OKAY or FAIL msg),
RECV (DATA chunks, DONE, or FAIL msg), QUIT. Requests arrive split across WRTE messages arbitrarily,
so everything is read from the stream as a byte stream. Device paths are mapped by the sandbox.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from pathlib import Path

from tests.support.adb_device import Stream

SYNC_DATA_MAX = 64 * 1024
STAT_V2 = struct.Struct("<4sIQQIIIIQqqq")


class SyncService:
    def __init__(self, sandbox: object) -> None:
        self.sandbox = sandbox  # host_path(device_path) -> Path | None; free_bytes() -> int | None

    def __call__(self, stream: Stream) -> None:
        while True:
            request, length = struct.unpack("<4sI", stream.read_exact(8))
            if request == b"QUIT":
                return
            if length > 1024:
                self._fail(stream, "path too long")
                return
            path = stream.read_exact(length).decode("utf-8", "replace")
            handler = {
                b"STAT": self._stat_v1,
                b"STA2": self._stat_v2,
                b"LST2": self._stat_v2,
                b"LIST": self._list,
                b"SEND": self._send,
                b"RECV": self._recv,
            }.get(request)
            if handler is None:
                self._fail(stream, f"unknown sync request {request!r}")
                return
            if handler(stream, path, request) is False:
                return

    @staticmethod
    def _fail(stream: Stream, message: str) -> None:
        data = message.encode()
        stream.write(b"FAIL" + struct.pack("<I", len(data)) + data)

    def _lstat(self, device_path: str, follow: bool = True) -> os.stat_result | OSError:
        host = self.sandbox.host_path(device_path)
        if host is None:
            return OSError(errno.ENOENT, "No such file or directory")
        try:
            return host.stat() if follow else host.lstat()
        except OSError as exc:
            return exc

    def _stat_v1(self, stream: Stream, path: str, _request: bytes) -> None:
        info = self._lstat(path, follow=False)
        if isinstance(info, OSError):
            stream.write(b"STAT" + struct.pack("<III", 0, 0, 0))
        else:
            size = info.st_size & 0xFFFFFFFF
            stream.write(b"STAT" + struct.pack("<III", info.st_mode, size, int(info.st_mtime)))

    def _stat_v2(self, stream: Stream, path: str, request: bytes) -> None:
        info = self._lstat(path, follow=request == b"STA2")
        if isinstance(info, OSError):
            stream.write(STAT_V2.pack(request, info.errno or errno.EIO, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
            return
        stream.write(
            STAT_V2.pack(
                request,
                0,
                info.st_dev,
                info.st_ino,
                info.st_mode,
                info.st_nlink,
                2000,
                2000,  # shell uid/gid
                info.st_size,
                int(info.st_atime),
                int(info.st_mtime),
                int(info.st_ctime),
            )
        )

    def _list(self, stream: Stream, path: str, _request: bytes) -> None:
        host = self.sandbox.host_path(path)
        names = sorted(os.listdir(host)) if host is not None and host.is_dir() else []
        for name in [".", "..", *names]:
            info = (host / name).lstat() if host is not None else None
            raw = name.encode()
            mode, size, mtime = (info.st_mode, info.st_size & 0xFFFFFFFF, int(info.st_mtime)) if info else (0, 0, 0)
            stream.write(b"DENT" + struct.pack("<IIII", mode, size, mtime, len(raw)) + raw)
        stream.write(b"DONE" + struct.pack("<IIII", 0, 0, 0, 0))

    def _send(self, stream: Stream, spec: str, _request: bytes) -> bool | None:
        path, _, mode_text = spec.rpartition(",")
        mode = int(mode_text) if mode_text.isdigit() else 0o644
        host = self.sandbox.host_path(path)
        received: list[bytes] = []
        total = 0
        mtime = 0
        while True:  # the whole file arrives before the device answers (adbd reads until DONE)
            kind, value = struct.unpack("<4sI", stream.read_exact(8))
            if kind == b"DATA":
                if value > SYNC_DATA_MAX:
                    self._fail(stream, "oversize data message")
                    return False
                received.append(stream.read_exact(value))
                total += value
            elif kind == b"DONE":
                mtime = value
                break
            else:
                self._fail(stream, f"invalid data message {kind!r}")
                return False
        if host is None or not self.sandbox.writable(path):
            self._fail(stream, "couldn't create file: Read-only file system")
            return None
        free = self.sandbox.free_bytes()
        if free is not None and total > free:
            self._fail(stream, f"write failed: {os.strerror(errno.ENOSPC)}")
            return None
        try:
            host.parent.mkdir(parents=True, exist_ok=True)
            tmp = host.with_name(host.name + ".adbsync")
            tmp.write_bytes(b"".join(received))
            os.chmod(tmp, stat.S_IMODE(mode) or 0o644)
            os.utime(tmp, (mtime, mtime))
            os.replace(tmp, host)
        except OSError as exc:
            self._fail(stream, f"couldn't create file: {exc.strerror}")
            return None
        stream.write(b"OKAY" + struct.pack("<I", 0))
        return None

    def _recv(self, stream: Stream, path: str, _request: bytes) -> None:
        host = self.sandbox.host_path(path)
        try:
            if host is None:
                raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
            with Path(host).open("rb") as handle:
                while chunk := handle.read(SYNC_DATA_MAX):
                    stream.write(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
        except OSError as exc:
            self._fail(stream, f"open failed: {exc.strerror}")
            return
        stream.write(b"DONE" + struct.pack("<I", 0))
