"""The two example locustfiles load side by side in one Locust run and drive both reference backends."""

from __future__ import annotations

from pathlib import Path

from locust_ext.testing import Backend, json_stats, locust_command, run_locust


def test_both_example_locustfiles_run_together(grpc_backend: Backend, ws_backend: Backend, tmp_path: Path) -> None:
    stem = tmp_path / "both"
    command = locust_command(
        "locustfiles/grpc.py,locustfiles/websocket.py",
        *("--headless", "-u", "16", "-r", "16", "-t", "4s", "--stop-timeout", "2", "--json-file", str(stem)),
    )
    hosts = {"LOADTEST_GRPC_HOST": grpc_backend.address, "LOADTEST_WS_HOST": ws_backend.url}
    result = run_locust(command, env=hosts, timeout=90)
    assert result.returncode in (0, 1), result.stderr[-2000:]  # 1: a WebSocket request cut short by the stop
    assert "Traceback" not in result.stderr
    rows = {(row["method"], row["name"]) for row in json_stats(stem) if row["num_requests"]}
    assert ("grpc", "/loadtest.v1.Hello/SayHello") in rows
    assert ("websocket", "echo") in rows
    # Every user class of both files was spawned: all four test types of each protocol made requests.
    assert {name for method, name in rows if method == "grpc"} >= {
        "/loadtest.v1.Compute/Hash",
        "/loadtest.v1.Echo/Echo [64B]",
        "/loadtest.v1.Stream/Subscribe",
    }
    assert {name for method, name in rows if method == "websocket"} >= {"compute", "stream", "ping"}
