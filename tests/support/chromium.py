"""Debian's headless Chromium, for the page tests: the command line (``--dump-dom``, ``--screenshot``) and a
minimal Chrome DevTools Protocol client over ``--remote-debugging-pipe``.

The pipe needs no WebSocket library: Chromium reads commands on its fd 3 and
writes replies and events on its fd 4, each a JSON object ended by a NUL byte.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import struct
import subprocess
import time
import zlib
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

#: Flags every run needs here: root (no sandbox), no GPU, no first-run noise, a small /dev/shm.
BASE_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--hide-scrollbars")

#: Events ``DevTools.seen`` keeps (once Runtime, Log and Network are enabled): console messages, errors, requests.
SEEN = frozenset({"Runtime.consoleAPICalled", "Runtime.exceptionThrown", "Log.entryAdded", "Network.requestWillBeSent"})


def chromium_binary() -> str:
    """The Chromium executable; skips the test when it is missing, or fails it when ``CI=true`` (as the Kafka tests do)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "Chromium is not installed (apt-get install -y chromium; .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


def pdftoppm_binary() -> str:
    """Poppler's ``pdftoppm`` (to look at Chromium's PDFs); skips when missing, fails when ``CI=true``."""
    found = shutil.which("pdftoppm")
    if found is None:
        message = "pdftoppm is not installed (apt-get install -y poppler-utils; .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


def pdf_pages(pdf: Path, *, dpi: int = 60) -> list[Path]:
    """Each page of ``pdf`` as a PNG beside it (``pdftoppm -r DPI -png``), in page order."""
    subprocess.run([pdftoppm_binary(), "-r", str(dpi), "-png", str(pdf), str(pdf.with_suffix(""))], check=True, timeout=60)
    return sorted(pdf.parent.glob(f"{pdf.stem}-*.png"))


def run_cli(binary: str, *arguments: str, profile: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """One command-line run of Chromium (``--dump-dom URL``, ``--screenshot=FILE URL``...) with a throwaway profile."""
    return subprocess.run(
        [binary, *BASE_FLAGS, f"--user-data-dir={profile}", *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )


def png_facts(data: bytes) -> tuple[int, int, int]:
    """(width, height, distinct byte values of the decoded scanlines) of a PNG, read with the standard library."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    position, idat = 8, b""
    while position < len(data):
        length = struct.unpack(">I", data[position : position + 4])[0]
        kind = data[position + 4 : position + 8]
        if kind == b"IDAT":
            idat += data[position + 8 : position + 8 + length]
        position += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


def _above_nine(fd: int) -> int:
    """A copy of ``fd`` numbered 10 or more (the original is closed)."""
    copy = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return copy


class DevTools:
    """A Chromium driven over the DevTools Protocol, with one page attached."""

    def __init__(self, binary: str, profile: Path, *, window: tuple[int, int] = (1366, 900)) -> None:
        to_chromium_read, self._to_chromium = os.pipe()
        self._from_chromium, from_chromium_write = os.pipe()
        # Chromium's ends move above fd 9 first: were one of them fd 3 or 4, the shell's redirections below
        # would overwrite it before using it.
        to_chromium_read, from_chromium_write = (_above_nine(fd) for fd in (to_chromium_read, from_chromium_write))
        flags = [*BASE_FLAGS, "--remote-debugging-pipe", f"--user-data-dir={profile}", f"--window-size={window[0]},{window[1]}"]
        # bash (dash takes single-digit fds only) puts the pipe ends on fds 3 and 4, where Chromium looks for them.
        self.process = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{to_chromium_read} 4>&{from_chromium_write}', binary, *flags, "about:blank"],
            pass_fds=(to_chromium_read, from_chromium_write),
            stdout=subprocess.DEVNULL,
            stderr=(profile.parent / f"{profile.name}.log").open("wb"),
        )
        self.log = profile.parent / f"{profile.name}.log"
        os.close(to_chromium_read)
        os.close(from_chromium_write)
        self._buffer = b""
        self._last_id = 0
        self._events: list[dict[str, Any]] = []
        self.seen: list[dict[str, Any]] = []  # every event of the kinds in SEEN, kept whatever wait_for takes
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.send("Page.enable", session=self.session)

    def __enter__(self) -> DevTools:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("Chromium did not answer in time")
            readable, _, _ = select.select([self._from_chromium], [], [], remaining)
            if readable:
                chunk = os.read(self._from_chromium, 1 << 16)
                if not chunk:
                    lines = [line for line in self.log.read_text(errors="replace").splitlines() if "dbus" not in line]
                    raise ConnectionError("Chromium closed its DevTools pipe; its log ends: " + " | ".join(lines[-5:]))
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        parsed: dict[str, Any] = json.loads(message)
        if parsed.get("method") in SEEN:
            self.seen.append(parsed)
        return parsed

    def send(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None, timeout: float = 30) -> Any:
        """Send one command and return its result; events that arrive meanwhile are kept for ``wait_for``."""
        self._last_id += 1
        command: dict[str, Any] = {"id": self._last_id, "method": method, "params": params or {}}
        if session is not None:
            command["sessionId"] = session
        os.write(self._to_chromium, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            message = self._receive(deadline)
            if message.get("id") == self._last_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._events.append(message)

    def wait_for(self, event: str, timeout: float = 30) -> dict[str, Any]:
        """The next event named ``event`` of the page (or one already received)."""
        deadline = time.monotonic() + timeout
        while True:
            for index, message in enumerate(self._events):
                if message.get("method") == event:
                    del self._events[: index + 1]
                    return message
            self._events.append(self._receive(deadline))

    def navigate(self, url: str) -> None:
        """Open ``url`` in the page and wait until it has loaded."""
        self._events.clear()
        self.send("Page.navigate", {"url": url}, session=self.session)
        self.wait_for("Page.loadEventFired")

    def click_and_wait(self, selector: str) -> None:
        """Click the element ``selector`` names and wait until the page it leads to has loaded."""
        self._events.clear()
        self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")
        self.wait_for("Page.loadEventFired")

    def type_text(self, selector: str, text: str) -> None:
        """Empty the field ``selector`` names and type ``text`` into it, as keystrokes would (Input.insertText)."""
        self.evaluate(f"(f => {{ f.focus(); f.select(); }})(document.querySelector({json.dumps(selector)}))")
        self.send("Input.insertText", {"text": text}, session=self.session)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (DevTools runs it; the page's own policy allows no script)."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=self.session)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> bytes:
        """A PNG of the page as shown, written to ``path``."""
        data = base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"}, session=self.session)["data"])
        path.write_bytes(data)
        return data

    def full_screenshot(self, path: Path) -> bytes:
        """A PNG of the whole page, below the fold too, at the window's width, written to ``path``."""
        params = {"format": "png", "captureBeyondViewport": True}
        data = base64.b64decode(self.send("Page.captureScreenshot", params, session=self.session)["data"])
        path.write_bytes(data)
        return data

    def send_headers(self, headers: dict[str, str]) -> None:
        """Send ``headers`` with every request of the page (an API key, as a client would)."""
        self.send("Network.enable", session=self.session)
        self.send("Network.setExtraHTTPHeaders", {"headers": headers}, session=self.session)

    def print_pdf(self, path: Path) -> bytes:
        """The page printed as Chromium prints it, on the paper its own ``@page`` rule names, written to ``path``."""
        params = {"preferCSSPageSize": True, "printBackground": True}
        data = base64.b64decode(self.send("Page.printToPDF", params, session=self.session, timeout=60)["data"])
        path.write_bytes(data)
        return data

    def close(self) -> None:
        """Close the browser and the pipes."""
        with contextlib.suppress(RuntimeError, TimeoutError, ConnectionError, OSError):
            self.send("Browser.close", timeout=5)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        for fd in (self._to_chromium, self._from_chromium):
            with contextlib.suppress(OSError):
                os.close(fd)
