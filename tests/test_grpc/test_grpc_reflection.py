"""Server reflection done right: v1 first, v1alpha fallback, metadata on reflection calls, TLS, once per process.

Against tests/reflection_server.py, a real server whose reflection service refuses calls without a token and
counts the reflection calls it gets.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import grpc
import pytest
from locust import constant, task
from locust.env import Environment

from locust_ext import GrpcCallError, GrpcUser
from locust_ext.grpc.errors import GrpcConfigError
from tests.reflection_server import V1, V1ALPHA, ReflectionServer, reflection_server
from tests.tls_certs import make_pki

TOKEN = "s3cret"


@pytest.fixture(scope="module")
def v1_server() -> Iterator[ReflectionServer]:
    with reflection_server("--token", TOKEN, "--reflection", "v1") as server:
        yield server


def recorded_user(user_class: type[GrpcUser], host: str) -> tuple[GrpcUser, list[dict[str, Any]]]:
    env = Environment(user_classes=[user_class], host=host)
    events: list[dict[str, Any]] = []
    env.events.request.add_listener(lambda **event: events.append(event))
    return user_class(env), events


def calls_all_four_kinds(user: GrpcUser) -> None:
    assert user.client.call("loadtest.v1.Hello/SayHello", {"name": "r"}).message == "Hello, r!"
    assert [m.seq for m in user.client.stream("loadtest.v1.Stream/Subscribe", {"count": 2})] == [0, 1]
    assert user.client.call("loadtest.v1.Echo/EchoClientStream", [{"payload": "YQ=="}] * 3).message_count == 3
    assert len(list(user.client.stream("loadtest.v1.Echo/EchoBidi", [{"payload": "YQ=="}] * 2))) == 2


class Reflecting(GrpcUser):
    reflection_metadata = (("x-reflection-token", TOKEN),)
    wait_time = constant(0)

    @task
    def all_kinds(self) -> None:
        calls_all_four_kinds(self)


def test_many_users_share_one_reflection_lookup_per_process(v1_server: ReflectionServer) -> None:
    class Shared(Reflecting):
        timeout = 29.0  # a catalog of its own: nothing looked up by other tests

    before = v1_server.reflection_calls()
    env = Environment(user_classes=[Shared], host=v1_server.address)
    events: list[dict[str, Any]] = []
    env.events.request.add_listener(lambda **event: events.append(event))
    runner = env.create_local_runner()
    runner.start(8, spawn_rate=8)
    try:
        gevent.sleep(1.5)
    finally:
        runner.quit()
    calls = [e for e in events if e["request_type"] == "grpc"]
    assert len(calls) >= 8 * 4 and all(e["exception"] is None for e in calls), calls[:3]
    after = v1_server.reflection_calls()
    assert {path: after.get(path, 0) - before.get(path, 0) for path in (V1, V1ALPHA)} == {V1: 1, V1ALPHA: 0}


def test_v1alpha_is_the_fallback_when_the_server_lacks_v1() -> None:
    with reflection_server("--reflection", "v1alpha") as server:
        user, events = recorded_user(Reflecting, server.address)
        calls_all_four_kinds(user)
        assert all(e["exception"] is None for e in events)
        assert server.reflection_calls() == {V1: 1, V1ALPHA: 1}  # v1 answered UNIMPLEMENTED once, then v1alpha
        user._close()


def test_reflection_without_its_metadata_fails_as_the_call_and_user_metadata_counts(
    v1_server: ReflectionServer,
) -> None:
    class NoToken(GrpcUser):
        unavailable_backoff = None

    user, events = recorded_user(NoToken, v1_server.address)
    with pytest.raises(GrpcCallError) as caught:
        user.client.call("loadtest.v1.Hello/SayHello", {})
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert [(e["name"], str(e["exception"])) for e in events] == [
        ("/loadtest.v1.Hello/SayHello", "UNAUTHENTICATED: server reflection: reflection needs x-reflection-token")
    ]
    user._close()

    class TokenInMetadata(GrpcUser):
        metadata = (("x-reflection-token", TOKEN),)

    user, events = recorded_user(TokenInMetadata, v1_server.address)
    calls_all_four_kinds(user)
    assert len(events) >= 4 and all(e["exception"] is None for e in events)
    user._close()


def test_a_service_the_server_lacks_names_the_ones_it_has(v1_server: ReflectionServer) -> None:
    user, events = recorded_user(Reflecting, v1_server.address)
    with pytest.raises(GrpcConfigError) as caught:
        user.client.call("loadtest.v1.Nope/Get", {})
    assert str(caught.value) == (
        "method 'loadtest.v1.Nope/Get': the server's reflection does not know loadtest.v1.Nope; services: "
        "grpc.reflection.v1.ServerReflection, loadtest.v1.Compute, loadtest.v1.Echo, loadtest.v1.Hello, "
        "loadtest.v1.Stream"
    )
    assert events == []
    user._close()


def test_reflection_over_tls_uses_the_calls_credentials(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    with reflection_server("--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)) as server:
        port = server.address.rsplit(":", 1)[1]

        class OverTls(GrpcUser):
            root_certificates = str(pki.ca_cert)

        user, events = recorded_user(OverTls, f"grpcs://localhost:{port}")
        calls_all_four_kinds(user)
        assert len(events) >= 4 and all(e["exception"] is None for e in events)
        user._close()
