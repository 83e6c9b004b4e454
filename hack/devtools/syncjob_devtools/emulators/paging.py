"""Opaque, key-based page tokens (TwinMaker ``nextToken``, Truto ``next_cursor``).

A token names the last key served rather than an offset, so deleting objects
between pages neither repeats nor skips the others.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


class InvalidPageToken(ValueError):
    """The client sent a token this emulator did not issue."""


def _encode(after: str) -> str:
    raw = json.dumps({"after": after}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        after = json.loads(raw)["after"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise InvalidPageToken(token) from exc
    if not isinstance(after, str):
        raise InvalidPageToken(token)
    return after


def paginate(
    items: Sequence[T], key: Callable[[T], str], limit: int, token: str | None
) -> tuple[list[T], str | None]:
    """One page of ``items`` (sorted by ``key``) and the token for the next page."""
    keys = [key(item) for item in items]
    start = bisect.bisect_right(keys, _decode(token)) if token else 0
    page = list(items[start : start + limit])
    more = start + limit < len(items)
    return page, (_encode(keys[start + limit - 1]) if more and page else None)
