"""Identifiers: 128-bit unsigned account and transfer ids.

A transfer id is chosen by the client and is also its idempotency key: the ledger applies a given
id at most once. Zero and 2**128-1 are reserved (as in TigerBeetle) so that "unset" and "sentinel"
can never collide with a real id.
"""

from __future__ import annotations

ID_MAX = 2**128 - 1
# Transfer ids from ENGINE_ID_MIN up are written only by the payment engine (payment legs,
# returns, LSM and netting chains): no client, whatever its role, may create, post or void a
# transfer in that range, so a payment's legs can neither be squatted nor probed for existence.
ENGINE_ID_MIN = 2**127


class IdError(ValueError):
    """An id is not an integer (or decimal string) in 1 .. 2**128-2."""


def parse_id(value: object, *, field: str = "id") -> int:
    """Accept an int or a decimal string; return the id as an int, or raise ``IdError``."""
    if isinstance(value, bool):
        raise IdError(f"{field} must be an integer or a decimal string, got a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        if not text.isdigit() or not text.isascii():
            raise IdError(f"{field} {value!r} is not a decimal integer")
        if len(text) > 39:
            raise IdError(f"{field} {value!r} does not fit in 128 bits")
        number = int(text)
    else:
        raise IdError(f"{field} must be an integer or a decimal string, got {type(value).__name__}")
    if number <= 0 or number >= ID_MAX:
        raise IdError(f"{field} {value!r} is outside 1 .. 2**128-2")
    return number


def is_engine_id(number: int) -> bool:
    """True for ids in the payment engine's reserved range (see ``ENGINE_ID_MIN``)."""
    return ENGINE_ID_MIN <= number < ID_MAX


def id_to_bytes(number: int) -> bytes:
    """Big-endian 16 bytes, so byte order equals numeric order in an index."""
    return number.to_bytes(16, "big")


def id_from_bytes(raw: bytes) -> int:
    assert len(raw) == 16, raw
    return int.from_bytes(raw, "big")
