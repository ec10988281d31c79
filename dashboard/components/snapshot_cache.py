"""An LRU of answers valid for one database snapshot, bounded by entries and by bytes.

Keyed by the app's snapshot (``snapshot_token``: the app's ``store.Reader`` and its
version). The moment a newer snapshot is seen, every entry of older ones is dropped, and
an answer built on an older snapshot (a request that started before the swap) is handed
back but not kept: nothing derived from an old snapshot stays once the swap is seen.
Bytes are measured by ``geo.cache.size_of`` (GeoJSON text: its length) against the
``cache_max_mb`` budget (``geo.cache``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any

from dashboard.components import context
from geo import store
from geo.cache import BoundedCache, size_of

SnapshotToken = tuple[store.Reader, int]


def snapshot_token() -> SnapshotToken:
    """The app's current snapshot: its Reader (one per configured app) and the Reader's version."""
    version = context.version()
    return (context.reader(), version)


def is_newer(token: SnapshotToken, than: SnapshotToken | None) -> bool:
    """Whether ``token`` replaces ``than``: another app's reader, or a later version of the same one."""
    return than is None or token[0] is not than[0] or token[1] > than[1]


class SnapshotLRU:
    """``get(key, build)`` builds once per snapshot and key; keeps the most recent within the bounds.

    Parameters
    ----------
    size
        Most entries kept.
    name
        What it holds (``geo.cache.caches()`` lists it).
    max_bytes
        Byte budget; None: the ``cache_max_mb`` setting.

    Two threads asking at once may both build; the answers are equal, the last one is kept.
    """

    def __init__(self, size: int, name: str = "answers per snapshot", max_bytes: int | None = None) -> None:
        self.size = size
        self._cache: BoundedCache[Any] = BoundedCache(name, size, max_bytes=max_bytes, sizer=size_of)
        self._newest: SnapshotToken | None = None
        self._lock = threading.Lock()

    @property
    def cache(self) -> BoundedCache[Any]:
        """The underlying bounded cache (entries, bytes, snapshots held)."""
        return self._cache

    def _follow(self, token: SnapshotToken) -> bool:
        """Note the snapshot ``token``; drop older snapshots' entries when it is new. False: an old one."""
        with self._lock:
            if is_newer(token, self._newest):
                self._newest = token
                self._cache.drop_where(lambda snap: snap != token)
                return True
            return token == self._newest

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """The cached answer for ``key`` in the current snapshot, building it when missing."""
        token = snapshot_token()
        current = self._follow(token)
        found, value = self._cache.lookup(token, key)
        if found:
            return value
        value = build()
        with self._lock:
            if current and token == self._newest:  # not swapped out while building
                self._cache.put(token, key, value)
        return value

    def peek(self, key: Hashable) -> Any | None:
        """The cached answer for ``key`` in the current snapshot, else None (never builds)."""
        token = snapshot_token()
        self._follow(token)
        return self._cache.lookup(token, key)[1]
