"""Idle WebSocket users: they connect, then wait; for the open-file limit test."""

from __future__ import annotations

from locust import constant, task

from locust_ext import WebSocketUser


class Idle(WebSocketUser):
    wait_time = constant(60)

    @task
    def idle(self) -> None:
        pass
