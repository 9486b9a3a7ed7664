"""A TCP front for a gRPC server whose first HTTP/2 connection is refused with GOAWAY(last stream id 0).

The first connection gets the server preface (SETTINGS) and GOAWAY before any stream is processed, so every
call on it was never seen by the server; later connections are relayed byte for byte to ``--upstream``.
Prints the test kit's ready line; stops on SIGTERM.

    python tests/test_grpc/goaway_proxy.py --upstream 127.0.0.1:50051
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout: tests/test_grpc/ is two below it

from locust_ext.grpc.native import frames
from locust_ext.testing import announce_ready


def refuse(client: socket.socket) -> None:
    """Wait for the client's first frames, answer SETTINGS and GOAWAY(0), then close."""
    client.settimeout(5)
    received = b""
    while len(received) < len(frames.CONNECTION_PREFACE) + 30:
        chunk = client.recv(65536)
        if not chunk:
            break
        received += chunk
    client.sendall(frames.settings_frame() + frames.goaway_frame(0, frames.NO_ERROR, b"refused for the test"))
    time.sleep(0.5)
    client.close()


def pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def relay(client: socket.socket, upstream: tuple[str, int]) -> None:
    server = socket.create_connection(upstream)
    threading.Thread(target=pipe, args=(client, server), daemon=True).start()
    threading.Thread(target=pipe, args=(server, client), daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    host, _, port = args.upstream.rpartition(":")
    listener = socket.create_server(("127.0.0.1", 0))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    announce_ready("grpc", "127.0.0.1", listener.getsockname()[1])
    first = True
    while True:
        client, _ = listener.accept()
        if first:
            first = False
            threading.Thread(target=refuse, args=(client,), daemon=True).start()
        else:
            relay(client, (host, int(port)))


if __name__ == "__main__":
    main()
