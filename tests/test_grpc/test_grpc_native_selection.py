"""Choosing the transport the way users do: ``--grpc-transport`` / ``LOCUST_GRPC_TRANSPORT`` on a real Locust
command, ``transport`` on the class, and what the native transport refuses at start-up (by name, exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backends.kit import grpc_counters
from locust_ext.grpc.channels import ChannelSpec, open_channel
from locust_ext.grpc.errors import GrpcConfigError
from locust_ext.grpc.target import parse_target
from locust_ext.testing import Backend, locust_command, run_locust

LOCUSTFILE = """
from locust import constant, task
from locust_ext import GrpcUser
from loadtest.v1 import loadtest_pb2 as pb, loadtest_pb2_grpc as pb_grpc


class Hello(GrpcUser):
    stub_class = pb_grpc.HelloStub
    wait_time = constant(0.01)
    {extra}

    def on_start(self) -> None:
        print("CHANNEL", type(self.raw_channel).__module__, flush=True)

    @task
    def hello(self) -> None:
        self.stub.SayHello(pb.HelloRequest(name="t"))
"""
NATIVE = "locust_ext.grpc.native.channel"
GRPCIO = "grpc._channel"


def run(tmp_path: Path, backend: Backend, *flags: str, extra: str = "", env: dict[str, str] | None = None) -> tuple:
    locustfile = tmp_path / "selection_locustfile.py"
    locustfile.write_text(LOCUSTFILE.format(extra=extra))
    command = locust_command(locustfile, "--headless", "-u", "3", "-r", "3", "-t", "3s", "--host", backend.address)
    command += ["--json-file", str(tmp_path / "stats"), "--skip-log-setup", "--stop-timeout", "5", *flags]
    result = run_locust(command, env={"PYTHONPATH": str(Path.cwd()), **(env or {})}, timeout=90)
    channels = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("CHANNEL ")}
    return result, channels


def recorded_calls(tmp_path: Path) -> tuple[int, int]:
    entries = json.loads((tmp_path / "stats.json").read_text())
    hello = [e for e in entries if e["method"] == "grpc"]
    return sum(e["num_requests"] for e in hello), sum(e["num_failures"] for e in hello)


@pytest.mark.parametrize(
    ("flags", "env", "extra", "expected"),
    [
        ((), {}, "", NATIVE),
        (("--grpc-transport", "grpcio"), {}, "", GRPCIO),
        ((), {"LOCUST_GRPC_TRANSPORT": "grpcio"}, "", GRPCIO),
        (("--grpc-transport", "grpcio"), {}, 'transport = "native"', NATIVE),
        ((), {}, 'transport = "grpcio"', GRPCIO),
    ],
    ids=["default", "flag", "env", "class-over-flag", "class"],
)
def test_transport_choice_and_counts_match_the_server(
    tmp_path: Path, grpc_backend: Backend, flags: tuple[str, ...], env: dict[str, str], extra: str, expected: str
) -> None:
    grpc_counters(grpc_backend, reset=True)
    result, channels = run(tmp_path, grpc_backend, *flags, extra=extra, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert channels == {expected}
    calls, failures = recorded_calls(tmp_path)
    served = grpc_counters(grpc_backend).methods["/loadtest.v1.Hello/SayHello"]
    assert calls > 0 and failures == 0
    assert served.received == served.completed == calls


def test_unsupported_channel_options_stop_locust_before_load(tmp_path: Path, grpc_backend: Backend) -> None:
    extra = 'channel_options = (("grpc.keepalive_time_ms", 10000), ("grpc.enable_retries", 0))'  # default transport
    result, channels = run(tmp_path, grpc_backend, extra=extra)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: Hello: channel option(s) grpc.enable_retries, grpc.keepalive_time_ms not supported")
    assert "transport = 'grpcio'" in last and "Traceback" not in result.stderr and not channels


def test_unknown_transport_is_refused() -> None:
    spec = ChannelSpec(target=parse_target("127.0.0.1:1"), transport="h3", owner="Kv")
    with pytest.raises(GrpcConfigError, match="Kv: transport 'h3' is not one of 'grpcio', 'native'"):
        spec.validate()


def test_native_channel_options_that_it_implements_are_accepted(grpc_backend: Backend) -> None:
    options = (("grpc.max_receive_message_length", 1 << 20), ("grpc.primary_user_agent", "bench/1"))
    spec = ChannelSpec(target=parse_target(grpc_backend.address), options=options, transport="native")
    spec.validate()
    channel = open_channel(spec)
    assert type(channel).__module__ == NATIVE
    channel.close()
