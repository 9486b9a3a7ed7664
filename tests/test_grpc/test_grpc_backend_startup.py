"""The gRPC backend's command line: TLS and mTLS, bad input answered with one line and a non-zero exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from backends.kit import running_backend
from loadtest.v1 import loadtest_pb2 as pb
from loadtest.v1 import loadtest_pb2_grpc as pb_grpc
from locust_ext.testing import Backend
from tests.support import REPO_ROOT
from tests.tls_certs import make_pki


def run_server(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backends.grpc_server", "--port", "0", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


def hello(channel: grpc.Channel) -> str:
    return pb_grpc.HelloStub(channel).SayHello(pb.HelloRequest(name="tls"), timeout=5).message


def test_tls(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    with running_backend("grpc", ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]) as backend:
        assert backend.scheme == "grpcs"
        credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca_cert.read_bytes())
        with grpc.secure_channel(backend.address, credentials) as channel:
            assert hello(channel) == "Hello, tls!"
        with grpc.insecure_channel(backend.address) as plain, pytest.raises(grpc.RpcError):
            hello(plain)


def test_mtls_requires_a_client_certificate(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    args = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key), "--tls-client-ca", str(pki.ca_cert)]
    with running_backend("grpc", args) as backend:
        root = pki.ca_cert.read_bytes()
        with_client = grpc.ssl_channel_credentials(root, pki.client_key.read_bytes(), pki.client_cert.read_bytes())
        with grpc.secure_channel(backend.address, with_client) as channel:
            assert hello(channel) == "Hello, tls!"
        with grpc.secure_channel(backend.address, grpc.ssl_channel_credentials(root)) as anonymous:
            with pytest.raises(grpc.RpcError) as caught:
                hello(anonymous)
            assert caught.value.code() is grpc.StatusCode.UNAVAILABLE


def test_port_in_use_is_one_line_and_exit_2(grpc_backend: Backend) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "backends.grpc_server", "--port", str(grpc_backend.port)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert f"127.0.0.1:{grpc_backend.port}" in result.stderr and "in use" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"], "--tls-cert /nonexistent"),
        (["--tls-cert", "x.pem"], "--tls-cert and --tls-key must be given together"),
        (["--tls-client-ca", "ca.pem"], "--tls-client-ca needs --tls-cert"),
        (["--fault-error-rate", "2"], "--fault-error-rate"),
        (["--fault-status", "SOMETIMES"], "--fault-status"),
        (["--port", "70000"], "--port"),
        (["--no-such-flag"], "--no-such-flag"),
    ],
)
def test_bad_command_line_is_one_line_and_non_zero(args: list[str], expected: str) -> None:
    result = run_server(*args)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert expected in line


def test_garbage_pem_is_one_line(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("not a certificate")
    result = run_server("--tls-cert", str(cert), "--tls-key", str(cert))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0
