"""The in-memory index of every SyncJob this operator handles: kopf.index's shape, kept by us.

kopf's own indexes hold every handler until the initial listing is indexed, through a toggle
per object whose every change wakes every waiting worker: the wake-ups grow faster than the
square of the object count (a bare ToggleSet: 4,000 objects 82 s, 2,000 13 s), and with
kopf.index a restart over 10,000 SyncJobs runs its first handler after about 23 minutes. Here
the index is filled from one paged LIST before kopf starts and kept current from each watch
event before kopf's handlers see it (kopf_edge.slimwatch); no handler waits on another object.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from syncjob_operator.ownership import IndexKey

_ABSENT = object()


class ObjectIndex:
    """key → the values the objects put under it, each object's entries replaced as a whole."""

    def __init__(self) -> None:
        self._by_object: dict[str, tuple[IndexKey, ...]] = {}
        # key -> (uid, value) while one object puts a value under it (most keys: an owner name,
        # a claimed remote id), uid -> value once several do: a pair is a quarter of a dict's
        # size, and there are two such keys per object.
        self._by_key: dict[IndexKey, tuple[str, Any] | dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self._by_object)

    def replace(self, uid: str, entries: Mapping[IndexKey, Any]) -> None:
        old = self._by_object.get(uid, ())
        for key in old:
            if key not in entries:
                self._drop(uid, key)
        for key, value in entries.items():
            # An object's watch events mostly repeat its entries: the values already held stay,
            # and the event's copies go at once, instead of replacing long-lived memory on
            # every event (which a burst leaves fragmented).
            if key not in old or self._value(uid, key) != value:
                self._put(uid, key, value)
        if set(old) != set(entries):
            self._by_object[uid] = tuple(entries)

    def remove(self, uid: str) -> None:
        for key in self._by_object.pop(uid, ()):
            self._drop(uid, key)

    def _value(self, uid: str, key: IndexKey) -> Any:
        held = self._by_key[key]
        if isinstance(held, tuple):
            return held[1] if held[0] == uid else _ABSENT
        return held.get(uid, _ABSENT)

    def _put(self, uid: str, key: IndexKey, value: Any) -> None:
        held = self._by_key.get(key)
        if held is None or (isinstance(held, tuple) and held[0] == uid):
            self._by_key[key] = (uid, value)
        elif isinstance(held, tuple):
            self._by_key[key] = {held[0]: held[1], uid: value}
        else:
            held[uid] = value

    def _drop(self, uid: str, key: IndexKey) -> None:
        held = self._by_key[key]
        if isinstance(held, tuple):
            del self._by_key[key]
            return
        del held[uid]
        if len(held) == 1:
            self._by_key[key] = next(iter(held.items()))

    def value(self, uid: str, key: IndexKey) -> Any:
        """What one object holds under `key` now; None when it holds nothing there."""
        if key not in self._by_object.get(uid, ()):
            return None
        held = self._value(uid, key)
        return None if held is _ABSENT else held

    def items(self, key: IndexKey) -> list[tuple[str, Any]]:
        """(uid, value) of every object holding a value under `key`."""
        held = self._by_key.get(key)
        if held is None:
            return []
        return [held] if isinstance(held, tuple) else list(held.items())

    def get(self, key: IndexKey, default: Collection[Any] = ()) -> Collection[Any]:
        held = self._by_key.get(key)
        if held is None:
            return default
        return [held[1]] if isinstance(held, tuple) else list(held.values())
