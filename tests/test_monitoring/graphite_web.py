"""Serve graphite-web (Debian's python3-graphite-web, a Django app) on loopback for the tests; run it with the
system python3, which has graphite-web and Django (the project's venv has neither).

    /usr/bin/python3 tests/test_monitoring/graphite_web.py PORT

Settings come from the module named by GRAPHITE_SETTINGS_MODULE (graphite-web's own hook for local_settings),
written by the test into a temporary directory on PYTHONPATH. wsgiref serves one request at a time, which is
all the tests need; it logs nothing per request.
"""

from __future__ import annotations

import os
import sys
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log."""


def main(port: int) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "graphite.settings")
    from graphite.wsgi import application

    make_server("127.0.0.1", port, application, handler_class=QuietHandler).serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]))
