"""The zero-code commands, run as users run them (``python -m locust_ext grpc|ws ...``), counted at the servers."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.kit import grpc_counters, running_backend
from locust_ext.command.data import DataError, RequestData
from locust_ext.testing import Backend, free_port, json_stats, request_counts
from tests.reflection_server import V1, reflection_server
from tests.support import REPO_ROOT, server_calls
from tests.tls_certs import make_pki
from tests.ws_sessions import server_stats

PROTOS = REPO_ROOT / "protos"
HELLO = "/loadtest.v1.Hello/SayHello"


def command(kind: str, target: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "locust_ext", kind, target, *args]


def run(args: list[str], timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, env={**os.environ})


# (method, -d) per call kind; streams of two messages for the client-streaming kinds.
KINDS = {
    "unary": ("loadtest.v1.Hello/SayHello", '{"name": "u{{user}}-{{seq}}"}'),
    "server-stream": ("loadtest.v1.Stream/Subscribe", '{"count": 3}'),
    "client-stream": ("loadtest.v1.Echo/EchoClientStream", '[{"payload": "YQ=="}, {"payload": "Yg=="}]'),
    "bidi": ("loadtest.v1.Echo/EchoBidi", '[{"payload": "YQ=="}, {"payload": "Yg=="}]'),
}
CALLS = 24


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_grpc_from_proto_files_every_kind_counted_at_the_server(
    dark_backend: Backend, tmp_path: Path, kind: str
) -> None:
    method, data = KINDS[kind]
    grpc_counters(dark_backend, reset=True)
    args = ["--call", method, "-d", data, "--proto", "loadtest/v1/loadtest.proto", "--import-path", "protos/"]
    locust = ["--headless", "-u", "3", "-r", "3", "-t", "60s", "--iteration-limit", str(CALLS)]
    result = run(command("grpc", dark_backend.address, *args, *locust, "--json-file", str(tmp_path / "out")))
    assert result.returncode == 0, result.stderr[-2000:]
    requests, failures = request_counts(tmp_path / "out")
    path = f"/{method}"
    server = grpc_counters(dark_backend).methods[path]
    assert (server.received, server.completed) == (CALLS, CALLS)
    assert requests[path] >= CALLS and failures[path] == 0  # stream rows add derived measurements of their own
    assert not list(tmp_path.glob("*.py")) and not list(REPO_ROOT.glob("locustfile*.py"))


def test_grpc_from_a_protoset_with_metadata(dark_backend: Backend, protoset: Path, tmp_path: Path) -> None:
    grpc_counters(dark_backend, reset=True)
    args = ["--call", "loadtest.v1.Hello/SayHello", "-d", '{"name": "p"}', "--protoset", str(protoset)]
    args += ["-m", "x-fault-delay-ms: 1"]  # metadata reaches the server: it delays, and still answers
    locust = ["--headless", "-u", "2", "-r", "2", "-t", "60s", "--iteration-limit", str(CALLS)]
    result = run(command("grpc", dark_backend.address, *args, *locust, "--json-file", str(tmp_path / "out")))
    assert result.returncode == 0, result.stderr[-2000:]
    requests, failures = request_counts(tmp_path / "out")
    assert (requests[HELLO], failures[HELLO]) == (CALLS, 0)
    assert grpc_counters(dark_backend).methods[HELLO].completed == CALLS


def test_grpc_by_reflection_with_reflection_metadata_and_data_lines(tmp_path: Path) -> None:
    lines = tmp_path / "names.jsonl"
    lines.write_text('{"name": "a-{{uuid}}"}\n\n{"name": "b-{{now}}"}\n')
    with reflection_server("--token", "t0k") as server:
        args = [
            "--call",
            "loadtest.v1.Hello/SayHello",
            "-D",
            str(lines),
            "--reflect-metadata",
            "x-reflection-token: t0k",
        ]
        locust = ["--headless", "-u", "2", "-r", "2", "-t", "60s", "--iteration-limit", str(CALLS)]
        result = run(command("grpc", server.address, *args, *locust, "--json-file", str(tmp_path / "out")))
        assert result.returncode == 0, result.stderr[-2000:]
        requests, failures = request_counts(tmp_path / "out")
        assert (requests[HELLO], failures[HELLO]) == (CALLS, 0)
        # One reflection call in the command's own check, one in the run's process (Locust imports its locustfile
        # after the check, in the same process, so the catalog is shared; the count says it is).
        assert server.reflection_calls().get(V1, 0) == 1


def test_grpc_master_and_worker_started_the_same_way(dark_backend: Backend, tmp_path: Path) -> None:
    grpc_counters(dark_backend, reset=True)
    port = str(free_port())
    own = [
        "--call",
        "loadtest.v1.Hello/SayHello",
        "-d",
        '{"name": "w"}',
        "--proto",
        str(PROTOS / "loadtest/v1/loadtest.proto"),
    ]
    worker = subprocess.Popen(
        command("grpc", dark_backend.address, *own, "--worker", "--master-host", "127.0.0.1", "--master-port", port),
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        master = ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", port, "--expect-workers", "1"]
        locust = ["--headless", "-u", "2", "-r", "2", "-t", "60s", "--iteration-limit", str(CALLS)]
        result = run(command("grpc", dark_backend.address, *own, *master, *locust, "--json-file", str(tmp_path / "o")))
    finally:
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    assert result.returncode == 0, result.stderr[-2000:]
    requests, failures = request_counts(tmp_path / "o")
    assert (requests[HELLO], failures[HELLO]) == (CALLS, 0)
    assert grpc_counters(dark_backend).methods[HELLO].completed == CALLS


def test_grpc_without_call_lists_services_and_methods(dark_backend: Backend) -> None:
    result = run(command("grpc", dark_backend.address, "--proto", "protos/loadtest/v1/loadtest.proto"))
    assert result.returncode == 0, result.stderr
    assert "loadtest.v1.Echo\n" in result.stdout
    assert "  EchoBidi(stream loadtest.v1.EchoRequest) returns (stream loadtest.v1.EchoReply)" in result.stdout
    with reflection_server() as server:
        listed = run(command("grpc", server.address))
    assert listed.returncode == 0, listed.stderr
    assert "  Subscribe(loadtest.v1.StreamRequest) returns (stream loadtest.v1.StreamMessage)" in listed.stdout


def test_the_console_script_is_the_same_command(dark_backend: Backend) -> None:
    script = Path(sys.executable).with_name("locust-grpc-websocket")
    result = run([str(script), "grpc", dark_backend.address, "--protoset", "nothere.pb"])
    assert (result.returncode, result.stderr.strip()) == (
        2,
        "error: --protoset: nothere.pb: cannot read: No such file or directory",
    )
    usage = run([str(script), "grpc", "--help"])
    assert usage.returncode == 0 and usage.stdout.startswith("usage: locust-grpc-websocket grpc")


GOOD = ["--call", "loadtest.v1.Hello/SayHello", "--proto", "protos/loadtest/v1/loadtest.proto"]
BAD_GRPC = {
    "unknown method": (
        ["--call", "loadtest.v1.Hello/Nope", "--proto", "protos/loadtest/v1/loadtest.proto"],
        "error: method 'loadtest.v1.Hello/Nope': loadtest.v1.Hello has no method Nope; methods: SayHello",
    ),
    "unknown service": (
        ["--call", "loadtest.v1.Nope/Get", "--proto", "protos/loadtest/v1/loadtest.proto"],
        "error: method 'loadtest.v1.Nope/Get': --proto does not know loadtest.v1.Nope; services: loadtest.v1.Admin,",
    ),
    "unknown field": ([*GOOD, "-d", '{"nam": "x"}'], "error: -d: loadtest.v1.HelloRequest: bad message: Message type"),
    "wrong type": ([*GOOD, "-d", '{"name": [1]}'], "error: -d: loadtest.v1.HelloRequest: bad message:"),
    "bad JSON": ([*GOOD, "-d", '{"name": '], "error: -d: bad JSON: Expecting value at column 10"),
    "unknown substitution": ([*GOOD, "-d", '{"name": "{{who}}"}'], "error: -d: unknown substitution {{who}}"),
    "unreadable proto": (
        ["--call", "a.B/C", "--proto", "nothere.proto"],
        "error: --proto: nothere.proto: file not found",
    ),
    "unreadable protoset": (
        ["--call", "a.B/C", "--protoset", "nothere.pb"],
        "error: --protoset: nothere.pb: cannot read",
    ),
    "no reflection": (["--call", "loadtest.v1.Hello/SayHello"], "UNIMPLEMENTED: server reflection"),
    "bad metadata": ([*GOOD, "-m", "no-colon"], "error: -m 'no-colon': expected 'key: value'"),
    "unreadable CA": ([*GOOD, "--cacert", "nothere.pem"], "error: --cacert 'nothere.pem': cannot read"),
    "host flag": ([*GOOD, "-H", "127.0.0.1:1"], "error: -H: the command sets it"),
}


@pytest.mark.parametrize("case", sorted(BAD_GRPC))
def test_bad_grpc_input_is_one_line_exit_2_and_no_calls(dark_backend: Backend, tmp_path: Path, case: str) -> None:
    args, expected = BAD_GRPC[case]
    grpc_counters(dark_backend, reset=True)
    result = run(command("grpc", dark_backend.address, *args, "--headless", "-u", "1", "-t", "5s"))
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], lines
    assert server_calls(dark_backend) == 0


def test_bad_proto_lines_and_data_file_lines_are_named(dark_backend: Backend, tmp_path: Path) -> None:
    (tmp_path / "kv.proto").write_text('syntax = "proto3";\npackage kv;\nimport "gone.proto";\n')
    result = run(command("grpc", dark_backend.address, "--call", "kv.S/M", "--proto", str(tmp_path / "kv.proto")))
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f'error: --proto: {tmp_path}/kv.proto:3:1: Import "gone.proto" was not found or had errors.'
    )
    data = tmp_path / "d.jsonl"
    data.write_text('{"name": "a"}\n{"name": "b"}\n{"nam": "c"}\n')
    result = run(command("grpc", dark_backend.address, *GOOD, "-D", str(data), "--headless", "-t", "5s"))
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"error: {data}:3: loadtest.v1.HelloRequest: bad message:")
    assert server_calls(dark_backend) == 0


@pytest.fixture(scope="module")
def ws_server() -> Iterator[Backend]:
    with running_backend("websocket") as backend:
        yield backend


def test_ws_requests_counted_at_the_server(ws_server: Backend, tmp_path: Path) -> None:
    server_stats(ws_server, reset=True)
    data = '{"type": "echo", "payload": "hi {{user}}/{{seq}}"}'
    locust = ["--headless", "-u", "3", "-r", "3", "-t", "60s", "--iteration-limit", str(CALLS)]
    result = run(command("ws", f"{ws_server.url}/", "-d", data, *locust, "--json-file", str(tmp_path / "out")))
    assert result.returncode == 0, result.stderr[-2000:]
    requests, failures = request_counts(tmp_path / "out")
    assert (requests["echo"], failures["echo"]) == (CALLS, 0)
    stats = server_stats(ws_server)
    assert stats["requests"] == {"echo": CALLS} and stats["errors"] == 0


def test_ws_no_reply_sends_only(ws_server: Backend, tmp_path: Path) -> None:
    server_stats(ws_server, reset=True)
    locust = ["--headless", "-u", "2", "-r", "2", "-t", "60s", "--iteration-limit", str(CALLS)]
    data = '{"type": "echo", "id": "{{uuid}}", "payload": "x"}'
    result = run(command("ws", ws_server.url, "-d", data, "--no-reply", *locust, "--json-file", str(tmp_path / "out")))
    assert result.returncode == 0, result.stderr[-2000:]
    requests, failures = request_counts(tmp_path / "out")
    assert (requests["echo"], failures["echo"]) == (CALLS, 0)
    assert server_stats(ws_server)["requests"] == {"echo": CALLS}


BAD_WS = {
    "no data": ([], "error: no message: give it with -d JSON or -D FILE"),
    "bad JSON": (["-d", "{"], "error: -d: bad JSON:"),
    "not an object": (["-d", "[1, 2]"], "error: -d: a request awaiting its reply must be a JSON object, not list"),
    "bad header": (["-d", "{}", "-m", "x"], "error: -m 'x': expected 'key: value'"),
    "unreadable file": (["-D", "nothere.json"], "error: -D nothere.json: cannot read"),
}


@pytest.mark.parametrize("case", sorted(BAD_WS))
def test_bad_ws_input_is_one_line_exit_2_and_no_connection(ws_server: Backend, case: str) -> None:
    args, expected = BAD_WS[case]
    server_stats(ws_server, reset=True)
    result = run(command("ws", ws_server.url, *args, "--headless", "-u", "1", "-t", "5s"))
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), lines
    assert server_stats(ws_server)["connections_opened"] == 0


def test_bad_ws_url_and_unknown_command() -> None:
    result = run(command("ws", "http://127.0.0.1:1/", "-d", "{}"))
    assert (result.returncode, result.stderr.strip()) == (
        2,
        "error: host 'http://127.0.0.1:1/': the scheme must be ws:// or wss://",
    )
    result = run([sys.executable, "-m", "locust_ext", "http", "x"])
    assert (result.returncode, result.stderr.strip()) == (2, "error: unknown command 'http': expected grpc or ws")


def test_request_data_substitutions_and_cycling(tmp_path: Path) -> None:
    lines = tmp_path / "d.jsonl"
    lines.write_text('{"n": {{seq}}, "u": {{user}}}\n\n{"s": "{{uuid}}", "t": {{now}}}\n')
    values = RequestData.from_file(str(lines)).for_user()
    first, second, third = next(values), next(values), next(values)
    assert first["n"] == 0 and second["s"] != "" and len(second["s"]) == 36 and second["t"] > 1_700_000_000_000
    assert third["n"] == 2 and third["u"] == first["u"]
    assert next(RequestData.from_file(str(lines)).for_user())["u"] == first["u"] + 1
    whole = tmp_path / "one.json"
    whole.write_text('{\n  "a": [1,\n 2]\n}\n')
    assert next(RequestData.from_file(str(whole)).for_user()) == {"a": [1, 2]}
    constant = RequestData.from_text('{"a": 1}').for_user()
    assert next(constant) is next(constant)  # parsed once
    with pytest.raises(DataError, match=r"d.jsonl:1: bad JSON"):
        (tmp_path / "d.jsonl").write_text("{\n{}\n")
        RequestData.from_file(str(lines)).check(lambda value: None)


def _post(url: str, **form: str) -> dict[str, object]:
    data = urllib.parse.urlencode(form).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as response:
        reply: dict[str, object] = json.loads(response.read() or b"{}")
    return reply


def test_grpc_command_runs_from_the_web_ui(dark_backend: Backend) -> None:
    """Without --headless the command serves Locust's web UI; its start form runs the built user class."""
    grpc_counters(dark_backend, reset=True)
    port = free_port()
    web = f"http://127.0.0.1:{port}"
    args = [
        "--call",
        "loadtest.v1.Hello/SayHello",
        "-d",
        '{"name": "ui"}',
        "--proto",
        "protos/loadtest/v1/loadtest.proto",
    ]
    process = subprocess.Popen(
        command("grpc", dark_backend.address, *args, "--web-host", "127.0.0.1", "--web-port", str(port)),
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(web, timeout=2) as page:
                    assert b"GrpcCommandUser" in page.read()
                break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.2)
        started = _post(f"{web}/swarm", user_count="2", spawn_rate="2", host=dark_backend.address)
        assert started["success"] is True, started
        deadline = time.monotonic() + 20
        while server_calls(dark_backend) < 20 and time.monotonic() < deadline:
            time.sleep(0.2)
        _post(f"{web}/stop")
        with urllib.request.urlopen(f"{web}/stats/requests", timeout=10) as response:
            stats = json.loads(response.read())
        row = next(entry for entry in stats["stats"] if entry["name"] == HELLO)
        assert row["num_requests"] >= 20 and row["num_failures"] == 0
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def readme_commands() -> list[str]:
    """The command lines of the README's zero-code code block, continuation lines joined, comments dropped."""
    text = (REPO_ROOT / "README.md").read_text()
    block = text.split("## Zero-code runs", 1)[1].split("```", 2)[1]
    joined = block.replace("\\\n", " ")
    return [line.split("  #", 1)[0].strip() for line in joined.splitlines() if line.startswith("python -m locust_ext")]


def test_the_readme_commands_run_as_written(tmp_path: Path, ws_server: Backend) -> None:
    """Each README command with only the ports, the length and the user count changed; counted at the servers."""
    commands = readme_commands()
    assert len(commands) == 3
    with running_backend("grpc") as backend:
        grpc_counters(backend, reset=True)
        server_stats(ws_server, reset=True)
        for line in commands:
            line = line.replace("127.0.0.1:50051", backend.address).replace("127.0.0.1:8080", ws_server.address)
            line = line.replace("-u 50", "-u 2").replace("-u 20", "-u 2").replace("-t 30s", "-t 2s")
            line = line.replace("--json-file out", f"--json-file {tmp_path / 'out'}")
            args = shlex.split(line)
            result = run([sys.executable, *args[1:]])
            assert result.returncode == 0, (line, result.stderr[-2000:])
            if "--call" in args:
                requests, failures = request_counts(tmp_path / "out")
                server = grpc_counters(backend).methods[HELLO]
                assert requests[HELLO] == server.completed > 0 and failures[HELLO] == 0
            elif args[3] == "grpc" and len(args) == 5:
                assert "  SayHello(loadtest.v1.HelloRequest) returns (loadtest.v1.HelloReply)" in result.stdout
        assert server_stats(ws_server)["requests"]["echo"] > 0


def test_grpc_by_reflection_with_processes(tmp_path: Path) -> None:
    """--processes forks after the command's own checks (which used grpc for reflection); the children still call."""
    with running_backend("grpc") as backend:
        grpc_counters(backend, reset=True)
        args = ["--call", "loadtest.v1.Echo/EchoBidi", "-d", '[{"payload": "YQ=="}, {"payload": "Yg=="}]']
        port = str(free_port())  # not Locust's default 5557: other runs on the machine may hold it
        locust = ["--headless", "-u", "4", "-r", "4", "-t", "60s", "--iteration-limit", str(CALLS), "--processes", "2"]
        locust += ["--master-bind-port", port, "--master-port", port]
        result = run(command("grpc", backend.address, *args, *locust, "--json-file", str(tmp_path / "out")))
        assert result.returncode == 0, result.stderr[-2000:]
        calls = [entry for entry in json_stats(tmp_path / "out") if entry["method"] == "grpc"]
        assert [(e["name"], e["num_requests"], e["num_failures"]) for e in calls] == [
            ("/loadtest.v1.Echo/EchoBidi", CALLS, 0)
        ]
        server = grpc_counters(backend).methods["/loadtest.v1.Echo/EchoBidi"]
        assert (server.received, server.completed, server.messages_received) == (CALLS, CALLS, 2 * CALLS)


def test_mutual_tls_for_both_commands(tmp_path: Path) -> None:
    """--cacert/--cert/--key: gRPC (a bare host becomes grpcs://, reflection over TLS too) and wss://."""
    pki = make_pki(tmp_path)
    server_tls = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    client_tls = ["--cacert", str(pki.ca_cert), "--cert", str(pki.client_cert), "--key", str(pki.client_key)]
    locust = ["--headless", "-u", "2", "-r", "2", "-t", "60s", "--iteration-limit", "10"]
    with running_backend("grpc", [*server_tls, "--tls-client-ca", str(pki.ca_cert)]) as backend:
        target = f"localhost:{backend.port}"
        args = ["--call", "loadtest.v1.Hello/SayHello", "-d", '{"name": "tls"}', *client_tls]
        result = run(command("grpc", target, *args, *locust, "--json-file", str(tmp_path / "g")))
        assert result.returncode == 0, result.stderr[-2000:]
        assert request_counts(tmp_path / "g")[0][HELLO] == 10
        plain = run(command("grpc", target, "--call", "loadtest.v1.Hello/SayHello", "--cacert", str(pki.ca_cert)))
        assert plain.returncode == 2 and plain.stderr.startswith(
            f"error: grpcs://{target}: UNAVAILABLE: server reflection"
        )
    with running_backend("websocket", server_tls) as ws:
        url = f"wss://localhost:{ws.port}/"
        data = '{"type": "echo", "payload": "tls"}'
        result = run(
            command("ws", url, "-d", data, "--cacert", str(pki.ca_cert), *locust, "--json-file", str(tmp_path / "w"))
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert request_counts(tmp_path / "w")[0]["echo"] == 10


def test_the_gate_and_shapes_apply_to_command_runs(dark_backend: Backend, tmp_path: Path) -> None:
    """Suite flags work on the command as on any run: --stages shapes it, --thresholds grades it (exit 3)."""
    gate = tmp_path / "gate.yaml"
    gate.write_text(
        "rules:\n  - name: /loadtest.v1.Hello/SayHello\n    min_requests: 1\n"
        "    throughput: {acceptable: 100000000}\n"  # no loopback run makes 10^8 calls/s: the gate fails
    )
    grpc_counters(dark_backend, reset=True)
    args = [
        "--call",
        "loadtest.v1.Hello/SayHello",
        "-d",
        '{"name": "g"}',
        "--proto",
        "protos/loadtest/v1/loadtest.proto",
    ]
    locust = ["--headless", "--stages", "3s:2", "--thresholds", str(gate), "--json-file", str(tmp_path / "out")]
    result = run(command("grpc", dark_backend.address, *args, *locust))
    assert result.returncode == 3, result.stderr[-2000:]
    requests, failures = request_counts(tmp_path / "out")
    assert requests[HELLO] > 0 and failures[HELLO] == 0
    assert grpc_counters(dark_backend).methods[HELLO].completed >= requests[HELLO]
