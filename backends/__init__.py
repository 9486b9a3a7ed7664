"""Reference backends that play the system under test: a gRPC server and a WebSocket server.

Run them with ``python -m backends.grpc_server`` and ``python -m backends.websocket_server``.
"""
