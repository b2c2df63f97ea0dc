"""Shell services of the loopback adb device: `shell,v2,...:`, legacy `shell:` and `exec:`.

Shell protocol v2 (AOSP shell_protocol.h) frames every chunk as `id(1) length(4 LE) data`: stdin 0, stdout 1,
stderr 2, exit 3 (one byte, the exit status), close-stdin 4, window-size 5. Legacy `shell:` and `exec:`
stream raw bytes (stderr merged into stdout) and carry no exit status. Commands run in the proot sandbox.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import threading
from typing import TYPE_CHECKING

from tests.support.adb_device import ConnectionLost, Stream

if TYPE_CHECKING:
    from tests.support.adb_device import LoopbackAdbDevice

SHELL_STDIN, SHELL_STDOUT, SHELL_STDERR, SHELL_EXIT, SHELL_CLOSE_STDIN, SHELL_WINDOW = 0, 1, 2, 3, 4, 5


def shell_packet(packet_id: int, data: bytes) -> bytes:
    return struct.pack("<BI", packet_id, len(data)) + data


class ShellService:
    """Runs one command in the sandbox; v2 frames stdout/stderr/exit, legacy streams raw bytes."""

    def __init__(self, device: LoopbackAdbDevice, command: str, *, v2: bool) -> None:
        self.device, self.command, self.v2 = device, command, v2

    def __call__(self, stream: Stream) -> None:
        if self.device.drop_on and self.device.drop_on in self.command:
            if self.device.drop_skip > 0:  # let this many matching commands run first
                self.device.drop_skip -= 1
            else:
                self.device.cut_cable()
                return
        self.device.commands.append(self.command)
        self.device.sandbox.command_started(self.command)
        try:
            self._run(stream)
        finally:
            self.device.sandbox.command_finished(self.command)

    def _run(self, stream: Stream) -> None:
        proc = subprocess.Popen(
            self.device.sandbox.shell_argv(self.command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if self.v2 else subprocess.STDOUT,
            env=self.device.sandbox.env(),
            start_new_session=True,
        )
        if not self.device.orphan_on_close:
            stream.on_close = lambda: _kill_group(proc)
        write_lock = threading.Lock()

        def pump(pipe: object, packet_id: int) -> None:
            for chunk in iter(lambda: os.read(pipe.fileno(), 65536), b""):  # type: ignore[attr-defined]
                with write_lock:
                    stream.write(shell_packet(packet_id, chunk) if self.v2 else chunk)

        pumps = [threading.Thread(target=pump, args=(proc.stdout, SHELL_STDOUT), daemon=True)]
        if self.v2:
            pumps.append(threading.Thread(target=pump, args=(proc.stderr, SHELL_STDERR), daemon=True))
        threading.Thread(target=self._stdin, args=(stream, proc), daemon=True).start()
        for thread in pumps:
            thread.start()
        for thread in pumps:
            thread.join()
        code = proc.wait()
        if self.v2 and not stream.closed.is_set():
            stream.write(shell_packet(SHELL_EXIT, bytes([code & 0xFF])))

    def _stdin(self, stream: Stream, proc: subprocess.Popen) -> None:
        assert proc.stdin is not None
        try:
            while True:
                if self.v2:
                    packet_id, size = struct.unpack("<BI", stream.read_exact(5))
                    data = stream.read_exact(size)
                    if packet_id == SHELL_STDIN:
                        proc.stdin.write(data)
                        proc.stdin.flush()
                    elif packet_id == SHELL_CLOSE_STDIN:
                        break
                else:
                    data = stream.read_some()
                    if data is None:
                        break
                    proc.stdin.write(data)
                    proc.stdin.flush()
        except (ConnectionLost, BrokenPipeError, OSError):
            pass
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
