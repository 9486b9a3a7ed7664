"""Check container command lines the way each container would start, in a staged copy of the image.

Run as ``python -I tests/test_monitoring/container_command.py ROOT`` with a JSON list of
``{"argv": [...], "env": {...}}`` on stdin, ROOT a tree staged from monitoring/Dockerfile's COPY lines
(tests/test_monitoring/test_monitoring_config.py does this) standing for the image's ``/``, and the working
directory the image's WORKDIR in it. ``argv`` is the whole command: ``["locust", ...]`` (the image's entrypoint) or
``["python", "-m", "backends.<server>", ...]``; ``env`` is the container's environment (the Dockerfile's ENV, then
the compose/k8s env). Each command is checked in a forked child with exactly that environment and the import path
the container would have: the installed third-party packages, ``PYTHONPATH`` (mapped into ROOT), and the working
directory for ``python -m``; the suite itself (``locust_ext``, ``loadtest``, the backends) is imported in the child
from that path only, so a package the image lacks fails here as it would in the container. A Locust command goes
through the steps of Locust's own main(): the locustfiles found and imported (which registers the suite's flags
through ``init_command_line_parser``), then the whole command line through Locust's parser, so Locust's env vars
(``LOCUST_HOST``, ``LOCUST_STATSD_HOST``, ...) and ``--config`` files count as they would; then every file it
names must exist, the thresholds file must load, every user class's settings must pass
locust_ext.host_check's start-up check, and on a master or a standalone run every user class must accept the
host it would run against. Prints a JSON list with each command's exit code, stdout (one JSON line describing
what was found) and stderr (``error: ...``; exit 2, as argparse's own errors).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

import grpc  # noqa: F401

# Third-party packages only (pip installs the same ones in the image); imported once, before the forks.
import locust  # noqa: F401  (first: patches the standard library with gevent)
import websocket  # noqa: F401
import yaml  # noqa: F401
from locust.argument_parser import get_locustfiles_locally, get_parser, parse_locustfile_option
from locust.main import merge_locustfiles_content

__all__ = ["check_all"]


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def check_locust(args: list[str]) -> dict[str, Any]:
    """Start a Locust command line as Locust's main() does, up to the point where load would begin; fail on
    anything that would stop the container there."""
    # main(): -f (or --config) first, the locustfiles imported (Locust puts the working directory and the
    # locustfile's folder on sys.path; the locustfile's `import locust_ext` registers the suite's flags), then
    # the whole command line through the full parser.
    locustfiles = get_locustfiles_locally(parse_locustfile_option(args))
    user_classes, _, _, _ = merge_locustfiles_content(locustfiles)
    options = get_parser().parse_args(args)

    from locust_ext.host_check import host_problem, settings_problem
    from locust_ext.thresholds import load_thresholds

    for path in (options.thresholds, options.thresholds_baseline):
        if path and not Path(path).is_file():
            fail(f"{path}: no such file in the image")
    if options.thresholds:
        load_thresholds(options.thresholds)
    chosen = [cls for name, cls in user_classes.items() if not options.user_classes or name in options.user_classes]
    if not chosen:
        fail(f"no user class in {options.locustfile}")
    hosts = {cls.__name__: options.host or cls.host for cls in chosen}
    # The suite's start-up checks (locust_ext.host_check): settings everywhere, the host on a master or a
    # standalone run (a worker checks the host the master's spawn message brings).
    problem = settings_problem(chosen) or (None if options.worker else host_problem(chosen, options.host))
    if problem:
        fail(problem)
    role = "master" if options.master else "worker" if options.worker else "standalone"
    suite = sys.modules["locust_ext"].__file__
    return {"role": role, "host": options.host, "hosts": hosts, "statsd_host": options.statsd_host, "suite": suite}


def check_backend(module: str, args: list[str]) -> dict[str, Any]:
    """Parse a reference backend's command line with its own parser."""
    if module not in ("backends.grpc_server", "backends.websocket_server"):
        fail(f"not a reference backend: {module}")
    server = importlib.import_module(module)
    return {"role": "backend", "options": vars(server.parse_args(args))}


def check(argv: list[str]) -> None:
    if argv[:1] == ["locust"]:
        found = check_locust(argv[1:])
    elif argv[:2] == ["python", "-m"] and len(argv) > 2:
        found = check_backend(argv[2], argv[3:])
    else:
        fail(f"not a command of this image: {argv}")
    print(json.dumps(found, default=str))


def container_path(argv: list[str], env: dict[str, str], root: Path) -> list[str]:
    """What the container puts before site-packages on ``sys.path``: PYTHONPATH, and the working directory for
    ``python -m`` (the ``locust`` console script adds only its own bin directory)."""
    paths = [str(root / entry.lstrip("/")) for entry in env.get("PYTHONPATH", "").split(":") if entry]
    return [os.getcwd(), *paths] if argv[:2] == ["python", "-m"] else paths


def check_forked(argv: list[str], env: dict[str, str], root: Path) -> dict[str, Any]:
    """Run :func:`check` in a child with ``env`` as its whole environment; its exit code and output."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 0
            try:
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                os.environ.clear()
                os.environ.update(env)
                sys.path[:0] = container_path(argv, env, root)
                check(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException as exc:
                print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        out.seek(0)
        err.seek(0)
        return {"returncode": os.waitstatus_to_exitcode(status), "stdout": out.read(), "stderr": err.read()}


def check_all(commands: list[dict[str, Any]], root: Path) -> list[dict[str, Any]]:
    """Each command's result, in order."""
    return [check_forked(command["argv"], command["env"], root) for command in commands]


if __name__ == "__main__":
    print(json.dumps(check_all(json.load(sys.stdin), Path(sys.argv[1]))))
