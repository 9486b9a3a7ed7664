"""The WebSocket session's correlation core without any socket or greenlet: what it sends, what each message is."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import locust_ext.websocket
from locust_ext.websocket.correlation import ABANDONED_IDS_KEPT, Correlator, LateReply, MatchFailed
from locust_ext.websocket.frames import OP_BINARY, OP_TEXT


class Waiter:
    """Stands for a request's waiter: the core never looks inside one."""

    def __init__(self, label: str) -> None:
        self.label = label

    def __repr__(self) -> str:
        return f"Waiter({self.label})"


def test_a_request_without_id_gets_the_next_id_in_its_json_only_and_the_callers_dict_is_left_alone() -> None:
    core: Correlator[Waiter] = Correlator()
    message = {"type": "echo", "payload": [1, 2]}

    payload, opcode, key = core.outgoing(message, None)
    empty_payload, _, empty_key = core.outgoing({}, None)

    assert opcode == OP_TEXT
    assert json.loads(payload) == {"type": "echo", "payload": [1, 2], "id": key}
    assert message == {"type": "echo", "payload": [1, 2]}
    assert json.loads(empty_payload) == {"id": empty_key} and empty_key != key


def test_a_callers_own_id_is_kept_refused_while_it_waits_and_skipped_by_generated_ids() -> None:
    core: Correlator[Waiter] = Correlator()
    payload, _, key = core.outgoing({"type": "echo", "id": 1}, None)
    assert (json.loads(payload)["id"], key) == (1, 1)
    core.expect(Waiter("own"), key, None)

    with pytest.raises(ValueError, match=r"^a request with id 1 is already waiting on this connection$"):
        core.outgoing({"id": 1}, None)
    _, _, generated = core.outgoing({"type": "echo"}, None)
    assert generated == 2  # 1 is taken by the caller's request


def test_a_request_correlated_by_match_is_sent_as_it_is_and_a_non_dict_needs_a_match() -> None:
    core: Correlator[Waiter] = Correlator()
    assert core.outgoing(b"\x00\x01", lambda message: True) == (b"\x00\x01", OP_BINARY, None)
    assert core.outgoing("text", lambda message: True) == (b"text", OP_TEXT, None)
    with pytest.raises(TypeError, match="needs match="):
        core.outgoing("text", None)


def test_replies_go_to_the_waiter_with_their_id_whatever_the_order_and_anything_else_is_a_push() -> None:
    core: Correlator[Waiter] = Correlator()
    first, second = Waiter("first"), Waiter("second")
    core.expect(first, 1, None)
    core.expect(second, "b", None)

    assert core.deliver({"id": "b", "type": "echo"}) is second
    assert core.deliver({"id": "b", "type": "echo"}) is None  # answered already: a push
    assert core.deliver({"id": 99}) is None
    assert core.deliver({"id": [1]}) is None  # an unhashable id cannot be one of ours
    assert core.deliver("not a dict") is None
    assert core.busy
    assert core.deliver({"id": 1}) is first
    assert not core.busy


def test_a_reply_to_a_request_that_gave_up_is_a_late_reply_once() -> None:
    core: Correlator[Waiter] = Correlator()
    patient, impatient = Waiter("patient"), Waiter("impatient")
    core.expect(patient, 1, None)
    core.expect(impatient, 2, None)
    core.give_up(impatient, 2, sent_at=12.5)
    assert core.deliver({"id": 1}) is patient
    core.give_up(patient, 1, sent_at=10.0)  # answered: its id is not kept

    assert core.deliver({"id": 2}) == LateReply(12.5)
    assert core.deliver({"id": 2}) is None
    assert core.deliver({"id": 1}) is None


def test_only_the_newest_given_up_ids_are_remembered() -> None:
    core: Correlator[Waiter] = Correlator()
    for key in range(ABANDONED_IDS_KEPT + 1):
        waiter = Waiter(str(key))
        core.expect(waiter, key, None)
        core.give_up(waiter, key, sent_at=float(key))

    assert core.deliver({"id": 0}) is None  # the oldest was forgotten
    assert core.deliver({"id": 1}) == LateReply(1.0)
    assert core.deliver({"id": ABANDONED_IDS_KEPT}) == LateReply(float(ABANDONED_IDS_KEPT))
    assert not core.busy


def test_matchers_are_asked_in_order_after_ids_and_one_that_raises_fails_its_own_request() -> None:
    core: Correlator[Waiter] = Correlator()
    by_id, binary, broken, texts = Waiter("by id"), Waiter("binary"), Waiter("broken"), Waiter("texts")
    core.expect(by_id, 7, None)
    core.expect(binary, None, lambda message: isinstance(message, bytes))
    core.expect(broken, None, lambda message: message["kind"] == "x")  # raises on anything but a dict with kind
    core.expect(texts, None, lambda message: isinstance(message, str))

    assert core.deliver({"id": 7, "kind": "x"}) is by_id  # an id reply never reaches the matchers
    assert core.deliver(b"data") is binary
    assert core.deliver("text") == MatchFailed(broken, "match raised TypeError")
    assert core.deliver("text") is texts
    assert core.deliver("text") is None
    assert not core.busy


def test_a_matcher_that_gave_up_is_no_longer_asked() -> None:
    core: Correlator[Waiter] = Correlator()
    gone, kept = Waiter("gone"), Waiter("kept")
    core.expect(gone, None, lambda message: True)
    core.expect(kept, None, lambda message: True)
    core.give_up(gone, None, sent_at=0.0)

    assert core.deliver({"id": 1}) is kept
    assert core.deliver({"id": 1}) is None  # a reply by match leaves no id behind


def test_pongs_settle_the_ping_with_their_token_once() -> None:
    core: Correlator[Waiter] = Correlator()
    ping = Waiter("ping")
    token = core.next_token()
    core.expect_pong(token, ping)

    assert core.pong(b"someone else's") is None
    assert list(core.waiting()) == [ping]
    assert core.pong(token) is ping
    assert core.pong(token) is None
    other = core.next_token()
    core.expect_pong(other, Waiter("abandoned"))
    core.give_up_pong(other)
    assert core.pong(other) is None and not core.busy


def test_a_drop_hands_back_every_waiter_and_forgets_the_ids_given_up() -> None:
    core: Correlator[Waiter] = Correlator()
    by_id, by_match, ping, gave_up = Waiter("id"), Waiter("match"), Waiter("ping"), Waiter("gave up")
    core.expect(by_id, 1, None)
    core.expect(by_match, None, lambda message: True)
    core.expect_pong(b"1", ping)
    core.expect(gave_up, 2, None)
    core.give_up(gave_up, 2, sent_at=1.0)

    assert core.drop() == [by_id, by_match, ping]
    assert not core.busy and list(core.waiting()) == []
    assert core.deliver({"id": 2}) is None  # a late reply from the old connection cannot arrive on a new one


SANS_IO = ("correlation.py", "messages.py", "frames.py")
#: The standard library's modules a sans-I/O module may import; the suite's only from the sans-I/O set.
ALLOWED = {"__future__", "collections", "collections.abc", "itertools", "json", "os", "struct", "typing"}


@pytest.mark.parametrize("module", SANS_IO)
def test_the_core_and_the_codec_import_nothing_that_does_io(module: str) -> None:
    source = Path(locust_ext.websocket.__file__).with_name(module)
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            imported.add(node.module)
    sans_io = {f"locust_ext.websocket.{name.removesuffix('.py')}" for name in SANS_IO}
    assert imported - ALLOWED - sans_io == set()  # no gevent, socket, ssl, websocket-client, locust, clock
