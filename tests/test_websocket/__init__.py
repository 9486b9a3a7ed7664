"""Tests of locust_ext/websocket/ (WebSocketUser, frames, correlation, the read turn, deliveries, sessions) and
of the reference WebSocket backend and its rooms."""
