"""GrpcUser from .proto files and protosets, against the reference backend with reflection turned off."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from locust.env import Environment

from backends.kit import grpc_counters
from locust_ext import GrpcCallError, GrpcUser
from locust_ext.grpc.descriptors import proto_catalog
from locust_ext.grpc.errors import GrpcConfigError
from locust_ext.testing import Backend, locust_command, run_locust
from tests.support import REPO_ROOT, server_calls

PROTOS = REPO_ROOT / "protos"
LOADTEST_PROTO = PROTOS / "loadtest" / "v1" / "loadtest.proto"


class FromProtos(GrpcUser):
    proto_files = (str(LOADTEST_PROTO),)
    proto_paths = (str(PROTOS),)


class FromImportPath(GrpcUser):
    proto_files = ("loadtest/v1/loadtest.proto",)
    proto_paths = (str(PROTOS),)


def recorded_user(user_class: type[GrpcUser], backend: Backend) -> tuple[GrpcUser, list[dict[str, Any]]]:
    env = Environment(user_classes=[user_class], host=backend.address)
    events: list[dict[str, Any]] = []
    env.events.request.add_listener(lambda **event: events.append(event))
    return user_class(env), events


def call_all_four_kinds(user: GrpcUser) -> None:
    assert user.client.call("loadtest.v1.Hello/SayHello", {"name": "p"}).message == "Hello, p!"
    assert [m.seq for m in user.client.stream("loadtest.v1.Stream/Subscribe", {"count": 3})] == [0, 1, 2]
    summary = user.client.call("loadtest.v1.Echo/EchoClientStream", [{"payload": "YWI="}] * 2)
    assert (summary.message_count, summary.total_bytes) == (2, 4)
    assert [m.payload for m in user.client.stream("loadtest.v1.Echo/EchoBidi", ['{"payload": "eA=="}'] * 3)] == [
        b"x"
    ] * 3


KINDS = {
    "/loadtest.v1.Hello/SayHello": 1,
    "/loadtest.v1.Stream/Subscribe": 1,
    "/loadtest.v1.Echo/EchoClientStream": 1,
    "/loadtest.v1.Echo/EchoBidi": 1,
}


@pytest.mark.parametrize("user_class", [FromProtos, FromImportPath])
def test_proto_files_call_all_four_kinds_without_reflection(dark_backend: Backend, user_class: type[GrpcUser]) -> None:
    grpc_counters(dark_backend, reset=True)
    user_class.check_settings()
    user, events = recorded_user(user_class, dark_backend)
    call_all_four_kinds(user)
    calls = [e for e in events if e["request_type"] == "grpc"]
    assert [e["name"] for e in calls] == list(KINDS)
    assert all(e["exception"] is None for e in calls)
    server = grpc_counters(dark_backend).methods
    assert {name: server[name].completed for name in KINDS} == KINDS
    user._close()


def test_a_protoset_calls_all_four_kinds_without_reflection(dark_backend: Backend, protoset: Path) -> None:
    class FromProtoset(GrpcUser):
        pass

    FromProtoset.protoset = str(protoset)
    grpc_counters(dark_backend, reset=True)
    FromProtoset.check_settings()
    user, events = recorded_user(FromProtoset, dark_backend)
    call_all_four_kinds(user)
    assert [e["name"] for e in events if e["request_type"] == "grpc"] == list(KINDS)
    assert {name: c.completed for name, c in grpc_counters(dark_backend).methods.items() if c.completed} == KINDS
    user._close()


def test_users_share_one_compiled_catalog(dark_backend: Backend) -> None:
    first, _ = recorded_user(FromProtos, dark_backend)
    second, _ = recorded_user(FromProtos, dark_backend)
    assert first.client.catalog is second.client.catalog
    assert first.client.catalog is proto_catalog(
        FromProtos.proto_files, FromProtos.proto_paths, owner="FromProtos.proto_files"
    )
    first._close()
    second._close()


def test_without_protos_or_reflection_a_call_fails_and_is_recorded(dark_backend: Backend) -> None:
    class Reflecting(GrpcUser):
        unavailable_backoff = None

    user, events = recorded_user(Reflecting, dark_backend)
    with pytest.raises(GrpcCallError) as caught:
        user.client.call("loadtest.v1.Hello/SayHello", {})
    assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED
    assert str(caught.value).startswith("UNIMPLEMENTED: server reflection")
    assert [(e["name"], str(e["exception"])) for e in events] == [("/loadtest.v1.Hello/SayHello", str(caught.value))]
    user._close()


def test_unknown_methods_and_fields_name_what_exists(dark_backend: Backend) -> None:
    user, events = recorded_user(FromProtos, dark_backend)
    with pytest.raises(GrpcConfigError, match=r"does not know loadtest.v1.Nope; services: loadtest.v1.Admin, "):
        user.client.call("loadtest.v1.Nope/SayHello", {})
    with pytest.raises(GrpcConfigError, match=r"has no method Nope; methods: SayHello"):
        user.client.call("loadtest.v1.Hello/Nope", {})
    with pytest.raises(GrpcConfigError, match=r'HelloRequest.*no field named "nam"'):
        user.client.call("loadtest.v1.Hello/SayHello", {"nam": "x"})
    assert events == []
    user._close()


BAD_PROTOS = {
    "missing": ("", "nothere.proto: file not found (looked in ., "),
    "syntax": ('syntax = "proto3";\npackage p;\nmessage A { string a = 1 }\n', "bad.proto:3:26: Expected"),
    "import": (
        'syntax = "proto3";\npackage p;\n\nimport "other/gone.proto";\nmessage A {}\n',
        'bad.proto:4:1: Import "other/gone.proto" was not found',
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_PROTOS))
def test_a_bad_proto_stops_locust_before_load_with_one_line(dark_backend: Backend, tmp_path: Path, case: str) -> None:
    source, expected = BAD_PROTOS[case]
    name = "nothere.proto" if case == "missing" else "bad.proto"
    if source:
        (tmp_path / name).write_text(source)
    locustfile = tmp_path / "protos_user.py"
    locustfile.write_text(
        "from locust import constant, task\n"
        "from locust_ext import GrpcUser\n\n\n"
        "class BadProtos(GrpcUser):\n"
        f"    proto_files = ({name!r},)\n"
        f"    proto_paths = ({str(tmp_path)!r},)\n"
        "    wait_time = constant(0)\n\n"
        "    @task\n"
        "    def hello(self):\n"
        "        self.client.call('p.S/M', {})\n"
    )
    grpc_counters(dark_backend, reset=True)
    command = locust_command(locustfile, "--headless", "-u", "2", "-t", "3s", "-H", dark_backend.address)
    result = run_locust(command, timeout=60)
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: BadProtos.proto_files: "), last
    assert expected in last, last
    assert "Traceback" not in result.stderr and "Ramping to" not in result.stderr
    assert server_calls(dark_backend) == 0


def test_a_protoset_that_is_not_one_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "x.pb"
    bogus.write_bytes(b"\xff\xff not a descriptor set")
    with pytest.raises(GrpcConfigError, match=r"protoset: .*x.pb: not a FileDescriptorSet"):
        proto_catalog((), (), str(bogus), owner="protoset")
    with pytest.raises(GrpcConfigError, match=r"gone.pb: cannot read: No such file"):
        proto_catalog((), (), str(tmp_path / "gone.pb"), owner="protoset")


def test_a_protoset_without_its_imports_is_refused_by_name_but_well_known_types_are_filled_in(tmp_path: Path) -> None:
    (tmp_path / "b.proto").write_text('syntax = "proto3";\npackage b;\nmessage B { int32 x = 1; }\n')
    (tmp_path / "a.proto").write_text(
        'syntax = "proto3";\npackage a;\nimport "b.proto";\nimport "google/protobuf/timestamp.proto";\n'
        "message A { b.B b = 1; google.protobuf.Timestamp t = 2; }\nservice S { rpc M(A) returns (A); }\n"
    )
    (tmp_path / "w.proto").write_text(
        'syntax = "proto3";\npackage w;\nimport "google/protobuf/empty.proto";\n'
        "service W { rpc M(google.protobuf.Empty) returns (google.protobuf.Empty); }\n"
    )

    def protoset(name: str) -> str:
        out = tmp_path / f"{name}.pb"
        protoc = [sys.executable, "-m", "grpc_tools.protoc", f"-I{tmp_path}", f"--descriptor_set_out={out}"]
        subprocess.run([*protoc, f"{name}.proto"], check=True)  # no --include_imports
        return str(out)

    with pytest.raises(GrpcConfigError, match=r"a.proto imports b.proto, which the set does not contain"):
        proto_catalog((), (), protoset("a"), owner="protoset")
    catalog = proto_catalog((), (), protoset("w"), owner="protoset")
    assert catalog.method("w.W/M").input_type.full_name == "google.protobuf.Empty"
