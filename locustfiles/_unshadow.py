"""Give the names ``grpc`` and ``websocket`` back to their libraries; import this first in those locustfiles.

Locust imports ``locustfiles/grpc.py`` as a module named ``grpc`` (and ``websocket.py`` as ``websocket``),
registered in ``sys.modules`` before the file runs and with this folder first on ``sys.path``: the file would
hide the library it uses. This drops the placeholder and imports the real library with this folder off the path.
Locust keeps its own reference to the locustfile module, so nothing else changes.
"""

from __future__ import annotations

import importlib
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _is_ours(module: object) -> bool:
    path = getattr(module, "__file__", None) or ""
    return os.path.dirname(os.path.abspath(path)) == _HERE


for _library in ("grpc", "websocket"):
    if _is_ours(sys.modules.get(_library)):
        del sys.modules[_library]
        _saved_path = list(sys.path)
        sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != _HERE]
        try:
            importlib.import_module(_library)
        finally:
            sys.path[:] = _saved_path
