"""The CPU-bound unit of work both backends offer: SHA-256 applied a number of times."""

from __future__ import annotations

import hashlib

__all__ = ["MAX_HASH_ROUNDS", "hash_rounds"]

#: Upper bound on rounds per request, so one request cannot occupy a backend for minutes.
MAX_HASH_ROUNDS = 10_000_000


def hash_rounds(rounds: int, seed: bytes) -> bytes:
    """``rounds`` iterations of SHA-256, starting from ``seed``."""
    digest = seed
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest
