"""Look at a tab of a running Locust web UI as a person would: headless Chromium opens it, clicks the tab, and
writes a PNG plus the page's text.

    python scripts/webui_screenshot.py http://127.0.0.1:8089/ Thresholds reports/thresholds-tab.png
    python scripts/webui_screenshot.py http://127.0.0.1:8089/ WebSocket ws-tab.png --settle 5

Needs Chromium (Debian: ``apt-get install chromium``). It is driven over its DevTools protocol on a loopback
port with websocket-client, which the suite already depends on; the web UI must be on loopback too. Start the
run first, e.g. ``locust -f locustfiles/websocket.py --autostart -u 8 -t 60s --thresholds thresholds.yaml``.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import websocket

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
#: Longest wait for Chromium's DevTools endpoint to answer.
STARTUP_S = 15.0


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def page_socket(port: int) -> websocket.WebSocket:
    """The DevTools connection of Chromium's first page, once the endpoint answers."""
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=2) as response:
                pages = [target for target in json.load(response) if target.get("type") == "page"]
            if pages:
                return websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=20)
        except OSError:
            pass
        time.sleep(0.2)
    fail(f"Chromium's DevTools endpoint on 127.0.0.1:{port} did not answer within {STARTUP_S:g} s")
    raise AssertionError  # unreachable: fail() exits


class DevTools:
    """Numbered DevTools commands over one page connection; events in between are skipped."""

    def __init__(self, connection: websocket.WebSocket) -> None:
        self._connection = connection
        self._next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        self._connection.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._connection.recv())
            if message.get("id") == self._next_id:
                if "error" in message:
                    fail(f"{method}: {message['error'].get('message', message['error'])}")
                return dict(message.get("result", {}))

    def evaluate(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")


def click_tab_script(title: str) -> str:
    """JavaScript that clicks the tab titled ``title`` (case-insensitive) or lists the tabs there are."""
    return f"""(() => {{
        const tabs = [...document.querySelectorAll('[role=tab]')];
        const tab = tabs.find(t => t.textContent.trim().toLowerCase() === {json.dumps(title.lower())});
        if (tab) {{ tab.click(); return ''; }}
        return tabs.map(t => t.textContent.trim()).join(', ');
    }})()"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the web UI, e.g. http://127.0.0.1:8089/")
    parser.add_argument("tab", help="the tab's title, e.g. Thresholds")
    parser.add_argument("out", type=Path, help="where the PNG goes")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to let the page and the tab load (3)")
    parser.add_argument("--size", default="1400,900", help="window width,height (1400,900)")
    args = parser.parse_args()
    host = urlsplit(args.url).hostname
    if host not in LOOPBACK:
        fail(f"{args.url}: only a web UI on loopback (127.0.0.1, ::1) is looked at")
    browser = next((found for name in BROWSERS if (found := shutil.which(name))), None)
    if browser is None:
        fail(f"no Chromium found (looked for {', '.join(BROWSERS)}); Debian: apt-get install chromium")
    port = free_loopback_port()
    with tempfile.TemporaryDirectory(prefix="webui-shot-") as profile:
        command = [
            str(browser), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
            f"--user-data-dir={profile}", f"--remote-debugging-port={port}", "--remote-debugging-address=127.0.0.1",
            f"--window-size={args.size}", "about:blank",
        ]  # fmt: skip
        chrome = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            devtools = DevTools(page_socket(port))
            devtools.call("Page.enable")
            devtools.call("Page.navigate", url=args.url)
            time.sleep(args.settle)
            missing = devtools.evaluate(click_tab_script(args.tab))
            if missing:
                fail(f"no tab {args.tab!r} at {args.url}; tabs: {missing}")
            time.sleep(args.settle)
            image = base64.b64decode(devtools.call("Page.captureScreenshot", format="png")["data"])
            text = devtools.evaluate("document.body.innerText")
        finally:
            chrome.terminate()
            chrome.wait(10)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(image)
    print(text)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
