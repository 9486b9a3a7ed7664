"""GrpcUser's own tests (tests/test_grpc/test_grpc_user.py, which run on the default native transport), every one of
them again on the grpcio transport.

The same users, stubs, backends, recorded events and failure texts, with ``--grpc-transport grpcio`` in force
(the run-wide choice, through ``LOCUST_GRPC_TRANSPORT`` for the Locust processes the tests start): both
transports stay tested, and the native channel is shown to be a drop-in for grpcio's wherever GrpcUser and its
recording channel rely on a call's behaviour.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from locust_ext.grpc import channels
from tests.test_grpc import test_grpc_user

fresh_counters = test_grpc_user.fresh_counters
globals().update({name: value for name, value in vars(test_grpc_user).items() if name.startswith("test_")})


@pytest.fixture(autouse=True)
def grpcio_transport(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("LOCUST_GRPC_TRANSPORT", "grpcio")
    channels.set_run_transport("grpcio")
    try:
        yield
    finally:
        channels.set_run_transport(None)


def test_the_users_here_run_on_the_grpcio_transport(grpc_backend: test_grpc_user.Backend) -> None:
    user, _ = test_grpc_user.one_user(test_grpc_user.Hello, grpc_backend)
    assert type(user.raw_channel).__module__ == "grpc._channel"
