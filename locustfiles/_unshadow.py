"""Give the names ``grpc`` and ``websocket`` back to their libraries; import this first in the locustfiles here.

Locust imports ``locustfiles/grpc.py`` as a module named ``grpc`` (and ``websocket.py`` as ``websocket``),
registered in ``sys.modules`` before the file runs, and puts this folder first on ``sys.path``: a locustfile
would hide the library it uses, and its sibling would hide the other library. This drops such a placeholder
and imports both real libraries with this folder off the path. Locust keeps its own reference to the
locustfile module, so nothing else changes.
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
    if _library not in sys.modules or _is_ours(sys.modules[_library]):
        sys.modules.pop(_library, None)
        _saved_path = list(sys.path)
        sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != _HERE]
        try:
            importlib.import_module(_library)
        finally:
            sys.path[:] = _saved_path
