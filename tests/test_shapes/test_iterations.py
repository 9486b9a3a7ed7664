"""The exact iteration limit end to end: real locust processes (alone, and master + two workers) against the
reference gRPC backend; Locust's own counts and the server's Admin counters must both equal the limit. A
distributed run with fewer users than workers, which could never finish, is refused before load."""

from __future__ import annotations

from pathlib import Path

import pytest

from locust_ext.testing import Backend, locust_command, request_counts, run_distributed, run_locust
from tests.support import FOR_TESTS, server_calls

LOCUSTFILE = FOR_TESTS / "shapes_grpc.py"
RUN_TIMEOUT_S = 90
NO_PACING = {"SHAPES_PACING_S": "0"}


def test_local_run_makes_exactly_the_limit(grpc_backend: Backend, tmp_path: Path) -> None:
    server_calls(grpc_backend, reset=True)
    report = tmp_path / "local"
    command = locust_command(LOCUSTFILE, "--headless", "-u", "7", "-r", "7", "-H", grpc_backend.address)
    command += ["--iteration-limit", "503", "--json-file", str(report), "-t", "60s"]
    result = run_locust(command, env=NO_PACING, timeout=RUN_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-2000:]
    assert server_calls(grpc_backend) == 503
    assert request_counts(report)[0].total() == 503
    assert "Time limit reached" not in result.stderr  # the limit ended the run, not -t


def test_distributed_run_makes_exactly_the_limit_across_workers(grpc_backend: Backend, tmp_path: Path) -> None:
    """The limit is split over the workers (500 + 501 here), not applied to each of them."""
    server_calls(grpc_backend, reset=True)
    report = tmp_path / "distributed"
    master_args = ["--headless", "-u", "6", "-r", "6", "-t", "60s", "-H", grpc_backend.address]
    master_args += ["--iteration-limit", "1001", "--json-file", str(report)]
    head = run_distributed(LOCUSTFILE, master_args, env=NO_PACING, timeout=RUN_TIMEOUT_S)
    assert head.returncode == 0, head.stderr[-2000:]
    assert "Every worker has finished its share of the iterations" in head.stderr
    assert server_calls(grpc_backend) == 1001
    assert request_counts(report)[0].total() == 1001


def test_distributed_limit_with_fewer_users_than_workers_is_refused_before_load(
    grpc_backend: Backend, tmp_path: Path
) -> None:
    """A worker without users would never finish its share: the master refuses the run instead of waiting for -t."""
    server_calls(grpc_backend, reset=True)
    master_args = ["--headless", "-u", "1", "-r", "1", "-t", "60s", "-H", grpc_backend.address]
    master_args += ["--iteration-limit", "50"]
    head = run_distributed(LOCUSTFILE, master_args, env=NO_PACING, timeout=RUN_TIMEOUT_S)
    assert head.returncode == 2, head.stderr[-2000:]
    errors = [line for line in head.stderr.splitlines() if "/ERROR/" in line]
    assert len(errors) == 1 and errors[0].endswith(
        "--iteration-limit needs a user on every worker, but -u 1 is below the 2 workers "
        "(use -u 2 or more, or fewer workers); not starting the run"
    ), errors
    assert "Time limit reached" not in head.stderr
    assert server_calls(grpc_backend) == 0  # the workers are told to quit before they are sent any user


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--iteration-limit", "many"], "error: --iteration-limit: 'many' is not a whole number"),
        (["--iteration-limit", "-5"], "error: --iteration-limit: -5 is negative (0 turns the limit off)"),
    ],
)
def test_bad_limit_exits_2_before_load(flags: list[str], message: str) -> None:
    result = run_locust(locust_command(LOCUSTFILE, "--headless", "-H", "127.0.0.1:1", *flags), timeout=RUN_TIMEOUT_S)
    assert result.returncode == 2
    assert message in result.stderr.splitlines()
