"""Open a page in headless Chromium and report what a person would see go wrong.

Talks the Chrome DevTools Protocol over its websocket with a small standard-library client (RFC 6455
text frames only), rather than chromedriver or the `websocket-client` package: Debian's `chromium`
package ships no driver, and a ~100-line client keeps the test free of extra pins. The check collects
console errors, uncaught exceptions, browser log errors (CSP violations, failed loads), every network
request, each image's naturalWidth, and takes a full-page screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--mute-audio",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
)
_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if path := shutil.which(name):
            return path
    return None


class WebSocket:
    """Just enough of a websocket client for CDP: handshake, masked text frames out, frames in."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {parts.path} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("websocket handshake: connection closed")
            head += chunk
        head, self.buffer = head.split(b"\r\n\r\n", 1)
        accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
        if b" 101 " not in head.split(b"\r\n", 1)[0] or accept.encode() not in head:
            raise ConnectionError(f"websocket handshake refused: {head[:200]!r}")

    def _read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = self.sock.recv(max(65536, size - len(self.buffer)))
            if not chunk:
                raise ConnectionError("websocket closed by the browser")
            self.buffer += chunk
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        elif length < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send(self, text: str) -> None:
        self._send_frame(0x1, text.encode("utf-8"))

    def receive(self) -> str:
        """One whole message (continuation frames joined); answers pings on the way."""
        message = b""
        while True:
            first, second = self._read(2)
            opcode, length = first & 0x0F, second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", self._read(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", self._read(8))
            payload = self._read(length)  # the server never masks its frames
            if opcode == 0x8:
                raise ConnectionError("websocket closed by the browser")
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            message += payload
            if first & 0x80:
                return message.decode("utf-8")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._send_frame(0x8, b"")
        self.sock.close()


class DevTools:
    """A CDP session on one page: commands by id, events kept in order of arrival."""

    def __init__(self, ws_url: str, timeout: float) -> None:
        self.ws = WebSocket(ws_url, timeout)
        self.timeout = timeout
        self.events: list[dict[str, Any]] = []
        self._next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        self.ws.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.receive())
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"CDP {method} failed: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_for(self, event: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        for seen in self.events:
            if seen["method"] == event:
                return seen
        while time.monotonic() < deadline:
            message = json.loads(self.ws.receive())
            if "method" in message:
                self.events.append(message)
                if message["method"] == event:
                    return message
        raise TimeoutError(f"no {event} within {self.timeout} s")

    def close(self) -> None:
        self.ws.close()


@dataclass
class PageCheck:
    """What loading one page produced."""

    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    title: str = ""
    screenshot: Path | None = None

    @property
    def remote_requests(self) -> list[str]:
        return [url for url in self.requests if not url.startswith(("file:", "data:", "about:"))]


@contextlib.contextmanager
def launch(binary: str, *, timeout: float = 30.0) -> Iterator[str]:
    """Start headless Chromium with a fresh profile; yield the DevTools HTTP endpoint; always stop it."""
    # Chromium's helper processes (renderer, GPU, crashpad) may still write into the profile after the browser
    # exits: it runs in its own process group, the whole group is stopped, and the profile's removal retries.
    with tempfile.TemporaryDirectory(prefix="edgekd-chromium-", ignore_cleanup_errors=True) as profile:
        argv = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"]
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + timeout
            while not (port_file.exists() and port_file.read_text().strip()):
                if process.poll() is not None:
                    raise RuntimeError(f"chromium exited with {process.returncode}: {process.stderr.read()[-2000:]!r}")
                if time.monotonic() > deadline:
                    raise TimeoutError("chromium did not open its DevTools port")
                time.sleep(0.05)
            yield f"http://127.0.0.1:{port_file.read_text().split()[0]}"
        finally:
            _stop_group(process)
            if process.stderr:
                process.stderr.close()
            _remove_profile(Path(profile))


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the browser's process group, SIGKILL what is left after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # helpers that outlived the browser
        return


def _remove_profile(profile: Path) -> None:
    """Remove the profile; a helper finishing a write can refill a folder once, so retry briefly."""
    for _ in range(20):
        shutil.rmtree(profile, ignore_errors=True)
        if not profile.exists():
            return
        time.sleep(0.1)


_IMAGES_JS = """
Promise.all([...document.images].map(img => img.decode().catch(() => null))).then(() =>
  [...document.images].map(img => ({alt: img.alt, src: img.src.slice(0, 40), complete: img.complete,
                                     naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight})))
"""


def check_page(page: Path, screenshot: Path, *, timeout: float = 30.0) -> PageCheck:
    """Load `page` (a local file) in headless Chromium; return errors, requests, images and a screenshot."""
    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError("chromium is not installed (apt-get install -y chromium)")
    result = PageCheck()
    with launch(binary, timeout=timeout) as endpoint:
        with urllib.request.urlopen(f"{endpoint}/json/list", timeout=timeout) as response:
            targets = json.load(response)
        ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page")
        tools = DevTools(ws_url, timeout)
        try:
            for domain in ("Page", "Runtime", "Log", "Network"):
                tools.call(f"{domain}.enable")
            tools.call("Page.navigate", url=page.resolve().as_uri())
            tools.wait_for("Page.loadEventFired")
            images = tools.call("Runtime.evaluate", expression=_IMAGES_JS, awaitPromise=True, returnByValue=True)
            result.images = images["result"]["value"]
            result.title = tools.call("Runtime.evaluate", expression="document.title", returnByValue=True)["result"][
                "value"
            ]
            metrics = tools.call("Page.getLayoutMetrics")["cssContentSize"]
            shot = tools.call(
                "Page.captureScreenshot",
                format="png",
                captureBeyondViewport=True,
                clip={"x": 0, "y": 0, "width": metrics["width"], "height": metrics["height"], "scale": 1},
            )
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            result.screenshot = screenshot
            tools.call("Runtime.evaluate", expression="0")  # drain events logged during the screenshot
        finally:
            tools.close()
    _collect_events(tools.events, result)
    return result


def _collect_events(events: list[dict[str, Any]], result: PageCheck) -> None:
    for event in events:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            text = " ".join(str(arg.get("value", arg.get("description", ""))) for arg in params.get("args", []))
            result.console_errors.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            result.console_errors.append(
                f"exception: {details.get('exception', {}).get('description') or details.get('text')}"
            )
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            result.console_errors.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}".strip())
        elif method == "Network.requestWillBeSent":
            result.requests.append(params["request"]["url"][:120])
        elif method == "Network.loadingFailed":
            result.failed_requests.append(f"{params.get('errorText')} ({params.get('blockedReason', '')})")
