"""Look at a tab of a running Locust web UI as a person would: headless Chromium opens it, clicks the tab, and
writes a PNG plus the page's text.

    python scripts/webui_screenshot.py http://127.0.0.1:8089/ Thresholds reports/thresholds-tab.png
    python scripts/webui_screenshot.py http://127.0.0.1:8089/ WebSocket ws-tab.png --settle 5

Needs Chromium (Debian: ``apt-get install chromium``). It is driven over its DevTools protocol on loopback by
``locust_ext.browser`` (the driver the browser tests use); the web UI must be on loopback too. Start the run
first, e.g. ``locust -f locustfiles/websocket.py --autostart -u 8 -t 60s --thresholds thresholds.yaml``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

from locust_ext.browser import BrowserError, headless_chromium, tab

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the web UI, e.g. http://127.0.0.1:8089/")
    parser.add_argument("tab", help="the tab's title, e.g. Thresholds")
    parser.add_argument("out", type=Path, help="where the PNG goes")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to let the page and the tab load (3)")
    parser.add_argument("--size", default="1400,900", help="window width,height (1400,900)")
    args = parser.parse_args()
    if urlsplit(args.url).hostname not in LOOPBACK:
        fail(f"{args.url}: only a web UI on loopback (127.0.0.1, ::1) is looked at")
    width, _, height = args.size.partition(",")
    try:
        with headless_chromium(window_size=(int(width), int(height))) as page:
            page.navigate(args.url)
            time.sleep(args.settle)
            if not page.evaluate(f"!!({tab(args.tab)})"):
                fail(f"no tab {args.tab!r} at {args.url}; tabs: {', '.join(page.tab_titles())}")
            page.click(tab(args.tab))
            time.sleep(args.settle)
            image = page.screenshot()
            text = page.text()
    except BrowserError as exc:
        fail(str(exc))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(image)
    print(text)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
