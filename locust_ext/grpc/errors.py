"""Exceptions of the gRPC user: configuration errors, and the error a failed RPC raises into the task."""

from __future__ import annotations

import grpc
from locust.exception import RescheduleTask

__all__ = ["GrpcCallError", "GrpcConfigError", "GrpcUserError", "status_message"]


class GrpcUserError(Exception):
    """Base class of every exception this package raises."""


class GrpcConfigError(GrpcUserError, ValueError):
    """A GrpcUser is configured in a way that cannot work (bad host, unreadable TLS file, ...)."""


def status_message(code: grpc.StatusCode | None, details: str | None) -> str:
    """``"UNAVAILABLE: connection refused"``: the status name first, so Locust groups failures by code."""
    name = code.name if code is not None else "UNKNOWN"
    return f"{name}: {details}" if details else name


class GrpcCallError(GrpcUserError, grpc.RpcError, RescheduleTask):
    """A failed RPC, already recorded as a Locust failure, raised into the task like a real client's error.

    It is a ``grpc.RpcError`` (``code()``, ``details()``, ``trailing_metadata()`` work as usual) and a
    Locust ``RescheduleTask``, so an unhandled one ends the task quietly instead of logging a traceback.
    """

    def __init__(
        self,
        code: grpc.StatusCode | None,
        details: str | None,
        trailing_metadata: tuple[tuple[str, str | bytes], ...] | None = None,
    ) -> None:
        super().__init__(status_message(code, details))
        self._code = code
        self._details = details
        self._trailing_metadata = trailing_metadata

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> GrpcCallError:
        """Wrap the error grpc raised (a ``grpc.Call``) keeping its status, details and trailers."""
        code = getattr(error, "code", None)
        details = getattr(error, "details", None)
        trailers = getattr(error, "trailing_metadata", None)
        return cls(
            code() if callable(code) else None,
            details() if callable(details) else str(error),
            trailers() if callable(trailers) else None,
        )

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def details(self) -> str | None:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...] | None:
        return self._trailing_metadata

    def __str__(self) -> str:
        return status_message(self._code, self._details)

    def __repr__(self) -> str:  # Locust's failures table shows repr(); keep it the groupable message
        return str(self)
