"""Headless Chromium driven over its DevTools protocol on loopback, to use a Locust web UI as a person does.

    with headless_chromium() as page:
        page.navigate("http://127.0.0.1:8089/")
        page.type_into("input[name=host]", "127.0.0.1:50051")
        page.click(button("Start"))
        page.wait_for("document.body.innerText.includes('SayHello')", what="a stats row")

Typing goes through Chromium's input pipeline (``Input.insertText`` into the focused field), and clicks are
mouse presses at the element's centre (``Input.dispatchMouseEvent``), so React sees the same events as from a
keyboard and a mouse. The DevTools connection is a websocket-client socket (a dependency of the suite);
Chromium picks its own DevTools port (``--remote-debugging-port=0``) and names it in the profile directory, so
no port is guessed. Used by the browser tests and ``scripts/webui_screenshot.py``; needs Chromium (Debian:
``apt-get install chromium``).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import websocket

__all__ = [
    "BROWSERS",
    "BrowserError",
    "DevTools",
    "Page",
    "button",
    "find_chromium",
    "headless_chromium",
    "tab",
]

#: Names Chromium goes by on PATH, in the order they are looked for.
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
#: A quiet, self-contained headless browser: no sandbox (root in CI), no GPU, no QUIC, nothing fetched from outside.
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)
_POLL_S = 0.1
_TABLE_ROWS = """(() => {
    const table = document.querySelector('table');
    if (!table) return null;
    const titles = [...table.querySelectorAll('thead th')].map(th => th.innerText.trim());
    return [...table.querySelectorAll('tbody tr')].map(
        tr => Object.fromEntries([...tr.cells].map((td, i) => [titles[i] ?? String(i), td.innerText.trim()])));
})()"""
T = TypeVar("T")


class BrowserError(RuntimeError):
    """Chromium did not start, a DevTools command failed, or the page never showed what was waited for."""


def find_chromium() -> str | None:
    """The path of the first of :data:`BROWSERS` on PATH, or None."""
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def button(text: str) -> str:
    """JavaScript for the enabled button whose text is ``text`` (case-insensitive), or null."""
    return _by_text("button:not([disabled])", text)


def tab(title: str) -> str:
    """JavaScript for the tab titled ``title`` (case-insensitive), or null."""
    return _by_text("[role=tab]", title)


def _by_text(selector: str, text: str) -> str:
    return (
        f"[...document.querySelectorAll({json.dumps(selector)})]"
        f".find(e => e.textContent.trim().toLowerCase() === {json.dumps(text.lower())}) || null"
    )


class DevTools:
    """Numbered DevTools commands over one page connection; events in between are skipped."""

    def __init__(self, connection: websocket.WebSocket) -> None:
        self._connection = connection
        self._next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send ``method`` and return its result; raise :class:`BrowserError` with Chromium's message."""
        self._next_id += 1
        self._connection.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._connection.recv())
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error'].get('message', message['error'])}")
                return dict(message.get("result", {}))

    def close(self) -> None:
        self._connection.close()


class Page:
    """One browser tab: navigate, read, wait, type and click."""

    def __init__(self, devtools: DevTools) -> None:
        self.devtools = devtools

    def navigate(self, url: str, *, timeout: float = 15.0) -> None:
        """Open ``url`` and wait until its document has loaded."""
        self.devtools.call("Page.navigate", url=url)
        self.wait_for(
            f"location.href.startsWith({json.dumps(url)}) && document.readyState === 'complete'",
            timeout=timeout,
            what=f"{url} to load",
        )

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-like values only)."""
        reply = self.devtools.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in reply:
            details = reply["exceptionDetails"]
            raise BrowserError(f"{expression[:80]}: {details.get('exception', {}).get('description', details)}")
        return reply["result"].get("value")

    def text(self) -> str:
        """What the page shows, as ``innerText``."""
        return str(self.evaluate("document.body.innerText"))

    def until(self, check: Callable[[], T], *, timeout: float = 15.0, what: str = "") -> T:
        """Call ``check`` every 0.1 s until it returns something truthy, and return that; :class:`BrowserError`
        when ``timeout`` passes first (the message ends with the page's text, to show what was there instead)."""
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                shown = " ".join(self.text().split())[:1500]
                raise BrowserError(f"waited {timeout:g} s for {what or check}; the page shows: {shown}")
            time.sleep(_POLL_S)

    def wait_for(self, expression: str, *, timeout: float = 15.0, what: str = "") -> Any:
        """Poll a JavaScript expression until it is truthy (see :meth:`until`) and return its value."""
        return self.until(lambda: self.evaluate(expression), timeout=timeout, what=what or expression)

    def table(self) -> list[dict[str, str]]:
        """The rows of the first table on the page, each keyed by its column titles, as shown."""
        return list(self.evaluate(_TABLE_ROWS) or [])

    def tab_titles(self) -> list[str]:
        """The titles of the page's tabs."""
        return list(self.evaluate("[...document.querySelectorAll('[role=tab]')].map(t => t.textContent.trim())"))

    def click(self, element: str, *, timeout: float = 15.0) -> None:
        """Press and release the left mouse button at the centre of ``element`` (a JavaScript expression for an
        element or null), once it exists and has a size."""
        centre = self.wait_for(
            f"""(() => {{
                const e = {element};
                if (!e) return null;
                e.scrollIntoView({{block: 'center'}});
                const r = e.getBoundingClientRect();
                return r.width && r.height ? [r.left + r.width / 2, r.top + r.height / 2] : null;
            }})()""",
            timeout=timeout,
            what=f"something to click: {element}",
        )
        x, y = centre
        self.devtools.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.devtools.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def type_into(self, selector: str, text: str, *, timeout: float = 15.0) -> None:
        """Replace what the field matching ``selector`` holds with ``text``, typed as keyboard input."""
        self.wait_for(
            f"""(() => {{
                const e = document.querySelector({json.dumps(selector)});
                if (!e) return false;
                e.focus();
                e.select();
                return document.activeElement === e;
            }})()""",
            timeout=timeout,
            what=f"a field {selector}",
        )
        if text:
            self.devtools.call("Input.insertText", text=text)
        else:
            self.devtools.call("Input.dispatchKeyEvent", type="keyDown", key="Backspace", code="Backspace")
            self.devtools.call("Input.dispatchKeyEvent", type="keyUp", key="Backspace", code="Backspace")
        typed = self.evaluate(f"document.querySelector({json.dumps(selector)}).value")
        if typed != text:
            raise BrowserError(f"typed {text!r} into {selector}, which now holds {typed!r}")

    def screenshot(self) -> bytes:
        """A PNG of the visible page."""
        return base64.b64decode(self.devtools.call("Page.captureScreenshot", format="png")["data"])


@contextmanager
def headless_chromium(
    *, executable: str | None = None, window_size: tuple[int, int] = (1400, 900), timeout: float = 20.0
) -> Iterator[Page]:
    """A fresh headless Chromium (own profile, DevTools on loopback) showing ``about:blank``; always stopped.

    Raises :class:`BrowserError` when no Chromium is found or it does not answer within ``timeout`` seconds.
    """
    browser = executable or find_chromium()
    if browser is None:
        raise BrowserError(f"no Chromium found (looked for {', '.join(BROWSERS)}); Debian: apt-get install chromium")
    with tempfile.TemporaryDirectory(prefix="locust-ext-chromium-", ignore_cleanup_errors=True) as scratch:
        profile, log = Path(scratch, "profile"), Path(scratch, "stderr.log")
        command = [
            browser, *_FLAGS, f"--user-data-dir={profile}", f"--window-size={window_size[0]},{window_size[1]}",
            "about:blank",
        ]  # fmt: skip
        with log.open("w") as stderr:
            # Its own process group: Chromium's renderer and utility processes are stopped with it.
            chrome = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
        devtools: DevTools | None = None
        try:
            devtools = DevTools(_page_connection(chrome, profile, log, timeout))
            devtools.call("Page.enable")
            yield Page(devtools)
        finally:
            if devtools is not None:
                devtools.close()
            _stop(chrome)


def _page_connection(chrome: subprocess.Popen[bytes], profile: Path, log: Path, timeout: float) -> websocket.WebSocket:
    """The DevTools socket of Chromium's first page, once Chromium has written its port into the profile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if chrome.poll() is not None:
            raise BrowserError(f"Chromium exited with {chrome.returncode}: {log.read_text().strip()[-800:]}")
        lines = _read_lines(profile / "DevToolsActivePort")
        if lines:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{lines[0]}/json", timeout=2) as response:
                    pages = [target for target in json.load(response) if target.get("type") == "page"]
                if pages:
                    return websocket.create_connection(
                        pages[0]["webSocketDebuggerUrl"], timeout=timeout, suppress_origin=True
                    )
            except OSError:
                pass
        time.sleep(_POLL_S)
    raise BrowserError(f"Chromium's DevTools endpoint did not answer within {timeout:g} s")


def _read_lines(path: Path) -> Sequence[str]:
    try:
        return [line for line in path.read_text().splitlines() if line]
    except OSError:
        return []


def _stop(chrome: subprocess.Popen[bytes]) -> None:
    """SIGTERM to Chromium's process group, SIGKILL to whatever of it is left once the browser has gone (or after
    10 s), so nothing writes into the profile directory while it is removed."""
    _signal_group(chrome.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        chrome.wait(10)
    _signal_group(chrome.pid, signal.SIGKILL)
    chrome.wait()


def _signal_group(group: int, signum: signal.Signals) -> None:
    with suppress(ProcessLookupError):  # raised once every process of the group has exited
        os.killpg(group, signum)
