"""The one recording funnel both users share: operations recorded once, failures as they are, kills as cancelled."""

from __future__ import annotations

from typing import Any

import gevent
import locust  # noqa: F401 - patches the standard library before gevent is used
import pytest
from locust.event import EventHook
from locust.exception import StopUser

from locust_ext.recording import USER_DEFAULT, Recorder


class Failure(Exception):
    """Stands for a protocol's failure type."""


class Events:
    """Every request event fired on one hook."""

    def __init__(self) -> None:
        self.hook = EventHook()
        self.fired: list[dict[str, Any]] = []
        self.hook.add_listener(lambda **event: self.fired.append(event))

    def outcomes(self) -> list[tuple[str, str, str | None, int]]:
        return [
            (
                e["request_type"],
                e["name"],
                None if e["exception"] is None else str(e["exception"]),
                e["response_length"],
            )
            for e in self.fired
        ]


@pytest.fixture
def events() -> Events:
    return Events()


def recorder(events: Events) -> Recorder:
    return Recorder(
        events.hook, "proto", failure_type=Failure, cancelled=lambda what: Failure(f"cancelled: {what}"),
        context=lambda: {"user": 1},
    )  # fmt: skip


def test_an_operation_is_recorded_once_with_its_length_context_and_time(events: Events) -> None:
    funnel = recorder(events)
    with funnel.start("call", "mid-call") as operation:
        operation.length = 42
        assert funnel.in_flight.count == 1
    operation.finish()  # already recorded: nothing more

    assert events.outcomes() == [("proto", "call", None, 42)]
    assert events.fired[0]["context"] == {"user": 1}
    assert events.fired[0]["response_time"] >= 0
    assert funnel.in_flight.count == 0


def test_a_failure_raised_inside_is_recorded_as_it_is_and_goes_on(events: Events) -> None:
    funnel = recorder(events)
    with pytest.raises(Failure, match=r"^timeout$"), funnel.start("call", "mid-call") as operation:
        operation.length = 3
        raise Failure("timeout")

    assert events.outcomes() == [("proto", "call", "timeout", 3)]


def test_a_failure_set_without_raising_is_recorded_and_the_code_carries_on(events: Events) -> None:
    funnel = recorder(events)
    with funnel.start("call", "mid-call", tracked=False) as operation:
        operation.failure = Failure("UNAVAILABLE")
    assert events.outcomes() == [("proto", "call", "UNAVAILABLE", 0)]


def test_a_kill_or_any_other_exception_is_recorded_as_cancelled_and_goes_on(events: Events) -> None:
    funnel = recorder(events)

    def call() -> None:
        with funnel.start("killed", "mid-call"):
            gevent.sleep(10)

    greenlet = gevent.spawn(call)
    gevent.sleep(0)
    greenlet.kill()
    with pytest.raises(KeyError), funnel.start("bug", "mid-call"):
        raise KeyError("not a protocol failure")

    assert events.outcomes() == [
        ("proto", "killed", "cancelled: mid-call", 0),
        ("proto", "bug", "cancelled: mid-call", 0),
    ]
    assert funnel.in_flight.count == 0


def test_once_stopping_tracked_operations_are_refused_unrecorded_and_untracked_ones_go_on(events: Events) -> None:
    funnel = recorder(events)
    assert funnel.in_flight.refuse_and_wait(1.0)
    with pytest.raises(StopUser):
        funnel.start("refused", "mid-call")
    with funnel.start("connect", "closing", tracked=False):
        pass
    assert events.outcomes() == [("proto", "connect", None, 0)]


def test_operations_spanning_several_calls_finish_once_and_discarded_ones_are_not_recorded(events: Events) -> None:
    funnel = recorder(events)
    stream = funnel.start("stream", "stream")
    never_made = funnel.start("never", "call")
    never_made.discard()
    assert funnel.in_flight.count == 1
    assert stream.finish(None, 7, {"messages": 2}) >= 0
    assert stream.finish(Failure("again")) == 0.0

    assert events.outcomes() == [("proto", "stream", None, 7)]
    assert events.fired[0]["context"] == {"user": 1, "messages": 2}
    assert funnel.in_flight.count == 0


def test_derived_events_have_their_own_request_type(events: Events) -> None:
    recorder(events).fire("first message", 0.0, 5, None, "proto-first-message")
    assert events.outcomes() == [("proto-first-message", "first message", None, 5)]


def test_user_default_says_what_it_is() -> None:
    assert repr(USER_DEFAULT) == "USER_DEFAULT"
