"""A loopback Android device that speaks the adb transport protocol the way adbd does.

The real Debian `adb` client (29.0.6) connects to it with `adb connect 127.0.0.1:PORT`. What it implements,
after AOSP's protocol.txt, SYNC.TXT and shell_protocol.h:

- messages: 24-byte little-endian header (command, arg0, arg1, length, checksum, magic = ~command) + payload;
- handshake: the host sends CNXN; the device answers CNXN with its banner (features decide what the
  client uses), or first AUTH TOKEN when `auth` is on (RSA signature checked, new keys accepted or not);
- streams: OPEN -> OKAY or CLSE; WRTE answered by OKAY; at most one WRTE in flight per stream (the next
  waits for the peer's OKAY); CLSE answered by CLSE;
- services: `shell,v2,...:` (packets id/len/data, exit code packet), legacy `shell:` and `exec:` (raw
  bytes), see adb_shell.py; `sync:`, see adb_sync.py. Commands run in a proot sandbox (adb_sandbox.py).

Fault switches used by tests: `handshake="silent"` (device stays offline), `drop_on` (the connection is cut
when a shell command containing that text starts, after `drop_skip` such commands ran: a cable pulled
mid-run), `orphan_on_close` (a command
keeps running when the host closes its shell, as on a real phone).
"""

from __future__ import annotations

import base64
import logging
import os
import queue
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

A_CNXN, A_AUTH, A_OPEN, A_OKAY, A_CLSE, A_WRTE = (
    int.from_bytes(name, "little") for name in (b"CNXN", b"AUTH", b"OPEN", b"OKAY", b"CLSE", b"WRTE")
)
A_VERSION = 0x01000001  # skips payload checksums; we still send valid ones for older hosts
MAX_PAYLOAD = 256 * 1024
AUTH_TOKEN, AUTH_SIGNATURE, AUTH_RSAPUBLICKEY = 1, 2, 3
HEADER = struct.Struct("<6I")
DEFAULT_FEATURES = ("shell_v2", "cmd", "stat_v2", "fixed_push_mkdir")
# PKCS#1 v1.5 DigestInfo prefix for SHA-1: adb signs the 20-byte token as if it were a SHA-1 digest.
SHA1_DIGEST_INFO = bytes.fromhex("3021300906052b0e03021a05000414")


class ConnectionLost(Exception):
    """The host went away (socket closed) while a stream was waiting."""


def pack_message(command: int, arg0: int, arg1: int, payload: bytes = b"") -> bytes:
    checksum = sum(payload) & 0xFFFFFFFF
    return HEADER.pack(command, arg0, arg1, len(payload), checksum, command ^ 0xFFFFFFFF) + payload


def verify_adb_signature(public_key: str, token: bytes, signature: bytes) -> bool:
    """Check an AUTH SIGNATURE against an adbkey.pub line (Android's RSAPublicKey struct, base64)."""
    blob = base64.b64decode(public_key.split()[0])
    words = struct.unpack_from("<I", blob, 0)[0]
    modulus = int.from_bytes(blob[8 : 8 + 4 * words], "little")
    exponent = struct.unpack_from("<I", blob, 8 + 8 * words)[0]
    size = 4 * words
    decrypted = pow(int.from_bytes(signature, "big"), exponent, modulus).to_bytes(size, "big")
    suffix = SHA1_DIGEST_INFO + token
    padding = size - len(suffix) - 3
    return decrypted == b"\x00\x01" + b"\xff" * padding + b"\x00" + suffix


class Stream:
    """One adb stream on the device side: an inbound byte queue and a flow-controlled writer."""

    def __init__(self, link: DeviceLink, local_id: int, remote_id: int) -> None:
        self.link, self.local_id, self.remote_id = link, local_id, remote_id
        self.inbound: queue.Queue[bytes | None] = queue.Queue()
        self._pending = b""
        self._peer_ready = threading.Event()
        self._peer_ready.set()
        self.closed = threading.Event()
        self._sent_close = False
        self.on_close: Callable[[], None] | None = None

    # -- host -> device
    def feed(self, data: bytes) -> None:
        self.inbound.put(data)

    def read_exact(self, size: int) -> bytes:
        """Bytes from the host regardless of how they were split into WRTE messages."""
        while len(self._pending) < size:
            chunk = self.inbound.get()
            if chunk is None:
                raise ConnectionLost("stream closed by host")
            self._pending += chunk
        data, self._pending = self._pending[:size], self._pending[size:]
        return data

    def read_some(self) -> bytes | None:
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        return self.inbound.get()

    # -- device -> host
    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            chunk, view = bytes(view[: self.link.max_payload]), view[self.link.max_payload :]
            while not self._peer_ready.wait(0.5):  # one WRTE in flight: wait for the host's OKAY
                if self.closed.is_set() or self.link.dead.is_set():
                    raise ConnectionLost("stream closed while writing")
            if self.closed.is_set():
                raise ConnectionLost("stream closed while writing")
            self._peer_ready.clear()
            self.link.send(A_WRTE, self.local_id, self.remote_id, chunk)
            self.link.device.wrte_sent += 1

    def peer_okay(self) -> None:
        self._peer_ready.set()

    def close(self) -> None:
        """Device-initiated close (the service finished)."""
        if not self._sent_close:
            self._sent_close = True
            self.link.send(A_CLSE, self.local_id, self.remote_id)
        self._finish()

    def peer_closed(self) -> None:
        """The host sent CLSE: answer with CLSE and stop the service."""
        if not self._sent_close:
            self._sent_close = True
            self.link.send(A_CLSE, self.local_id, self.remote_id)
        self._finish()

    def _finish(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            self.inbound.put(None)
            self._peer_ready.set()
            if self.on_close:
                self.on_close()


class DeviceLink:
    """One TCP connection from an adb server: handshake, message dispatch, stream table."""

    def __init__(self, device: LoopbackAdbDevice, sock: socket.socket) -> None:
        self.device, self.sock = device, sock
        self.max_payload = 4096
        self.streams: dict[int, Stream] = {}
        self.next_id = 1
        self.dead = threading.Event()
        self.online = False
        self._send_lock = threading.Lock()
        self._token = b""

    def send(self, command: int, arg0: int, arg1: int, payload: bytes = b"") -> None:
        if self.dead.is_set():
            raise ConnectionLost("link is down")
        try:
            with self._send_lock:
                self.sock.sendall(pack_message(command, arg0, arg1, payload))
        except OSError as exc:
            self.kill()
            raise ConnectionLost(str(exc)) from exc

    def _recv_exact(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionLost("host closed the connection")
            data += chunk
        return data

    def serve(self) -> None:
        try:
            while not self.dead.is_set():
                command, arg0, arg1, length, _checksum, magic = HEADER.unpack(self._recv_exact(HEADER.size))
                if magic != command ^ 0xFFFFFFFF or length > MAX_PAYLOAD:
                    log.warning("invalid adb header from host; closing as adbd does")
                    break
                self._dispatch(command, arg0, arg1, self._recv_exact(length) if length else b"")
        except (ConnectionLost, OSError):
            pass
        finally:
            self.kill()

    def kill(self) -> None:
        """Drop the connection abruptly (also what a pulled cable looks like to the host)."""
        if self.dead.is_set():
            return
        self.dead.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for stream in list(self.streams.values()):
            stream.closed.set()
            stream._finish()

    # -- protocol
    def _dispatch(self, command: int, arg0: int, arg1: int, payload: bytes) -> None:
        if command == A_CNXN:
            self.max_payload = min(arg1 or 4096, MAX_PAYLOAD)
            self.device.handshakes += 1
            if self.device.handshake == "silent":
                return  # stays "offline" on the host
            if self.device.auth:
                self._send_token()
            else:
                self._connected()
        elif command == A_AUTH:
            self._auth(arg0, payload)
        elif not self.online:
            return  # adbd ignores everything else before the handshake
        elif command == A_OPEN:
            self._open(arg0, payload.rstrip(b"\0").decode("utf-8", "replace"))
        elif command == A_WRTE:
            stream = self.streams.get(arg1)
            if stream is None:
                self.send(A_CLSE, 0, arg0)
                return
            stream.feed(payload)
            self.send(A_OKAY, stream.local_id, stream.remote_id)
        elif command == A_OKAY:
            stream = self.streams.get(arg1)
            if stream is not None:
                stream.peer_okay()
        elif command == A_CLSE:
            stream = self.streams.pop(arg1, None)
            if stream is not None:
                stream.peer_closed()

    def _send_token(self) -> None:
        self._token = os.urandom(20)
        self.send(A_AUTH, AUTH_TOKEN, 0, self._token)

    def _auth(self, kind: int, payload: bytes) -> None:
        if kind == AUTH_SIGNATURE:
            for key in self.device.authorized_keys:
                if verify_adb_signature(key, self._token, payload):
                    self._connected()
                    return
            self._send_token()  # unknown key: ask again; the host then offers its public key
        elif kind == AUTH_RSAPUBLICKEY:
            key = payload.rstrip(b"\0").decode()
            if self.device.accept_new_keys:  # the user tapped "Allow" on the phone
                self.device.authorized_keys.append(key)
                self._connected()

    def _connected(self) -> None:
        self.online = True
        self.send(A_CNXN, A_VERSION, MAX_PAYLOAD, self.device.banner().encode())

    def _open(self, remote_id: int, destination: str) -> None:
        handler = self.device.service_for(destination)
        if handler is None:
            self.send(A_CLSE, 0, remote_id)
            return
        local_id = self.next_id
        self.next_id += 1
        stream = Stream(self, local_id, remote_id)
        self.streams[local_id] = stream
        self.send(A_OKAY, local_id, remote_id)
        threading.Thread(target=self._run_service, args=(handler, stream), daemon=True).start()

    def _run_service(self, handler: Callable[[Stream], None], stream: Stream) -> None:
        try:
            handler(stream)
        except ConnectionLost:
            pass
        except Exception:  # a bug in the stand-in must not hang the client
            log.exception("service failed")
        finally:
            self.streams.pop(stream.local_id, None)
            try:
                stream.close()
            except ConnectionLost:
                pass


class LoopbackAdbDevice:
    """The device: a listening socket on 127.0.0.1 plus a sandbox that runs its commands."""

    def __init__(
        self,
        sandbox: object,
        *,
        props: dict[str, str] | None = None,
        features: tuple[str, ...] = DEFAULT_FEATURES,
        auth: bool = False,
        accept_new_keys: bool = True,
        handshake: str = "normal",
    ) -> None:
        self.sandbox = sandbox  # adb_sandbox.DeviceSandbox: shell_argv(), env(), host_path(), free_bytes()
        self.props = props or {}
        self.features = features
        self.auth, self.accept_new_keys = auth, accept_new_keys
        self.authorized_keys: list[str] = []
        self.handshake = handshake
        self.drop_on: str | None = None
        self.drop_skip = 0  # matching commands that still run before `drop_on` cuts the cable
        # True: a shell whose host side closes keeps running, as real adbd leaves a command without a
        # terminal (raw shell v2) running until it writes; False: its process group is killed.
        self.orphan_on_close = False
        self.commands: list[str] = []  # shell commands run, in order (for tests)
        self.handshakes = 0
        self.wrte_sent = 0  # WRTE messages sent to the host (flow control is exercised when > 1 per stream)
        self._links: list[DeviceLink] = []
        self._listener: socket.socket | None = None
        self.port = 0

    @property
    def serial(self) -> str:
        return f"127.0.0.1:{self.port}"

    def banner(self) -> str:
        keys = ("ro.product.name", "ro.product.model", "ro.product.device")
        props = ";".join(f"{key}={self.props[key]}" for key in keys if key in self.props)
        return f"device::{props};features={','.join(self.features)}"

    def service_for(self, destination: str) -> Callable[[Stream], None] | None:
        from tests.support.adb_shell import ShellService
        from tests.support.adb_sync import SyncService

        name, _, command = destination.partition(":")
        options = name.split(",")
        if options[0] == "shell":
            return ShellService(self, command, v2="v2" in options and "shell_v2" in self.features)
        if name == "exec":
            return ShellService(self, command, v2=False)
        if name == "sync":
            return SyncService(self.sandbox)
        return None  # unknown service: CLSE, as adbd does

    def start(self) -> int:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen(4)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()
        return self.port

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = DeviceLink(self, sock)
            self._links.append(link)
            threading.Thread(target=link.serve, daemon=True).start()

    def cut_cable(self) -> None:
        """Stop listening and drop every connection: the phone is gone until start() is called again."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for link in self._links:
            link.kill()
        self._links.clear()

    def stop(self) -> None:
        self.cut_cable()


def read_props(path: Path) -> dict[str, str]:
    """Parse a recorded `getprop` dump: lines like `[ro.product.model]: [Pixel 6]`."""
    props = {}
    for line in path.read_text().splitlines():
        if line.startswith("[") and "]: [" in line:
            key, _, value = line[1:].partition("]: [")
            props[key] = value.rstrip("]")
    return props
