"""An LRU of answers valid for one database snapshot, bounded by entries and by bytes.

Keyed by the app's snapshot (``snapshot_token``: the app's ``store.Reader`` and its
version). The moment any request sees a newer snapshot, every entry of older ones is
dropped from every ``SnapshotLRU`` (and the ``on_new_snapshot`` hooks run: the engines
drop their scene and sessions); an answer built on an older snapshot (a request that
started before the swap) is handed back but not kept.
Bytes are measured by ``geo.cache.size_of`` (GeoJSON text: its length) against the
``cache_max_mb`` budget (``geo.cache``).

Every key is also keyed by the request principal's scope (``dashboard.access.scope.cache_key``:
their towns and whether they see personal fields), so an answer built for the whole district
is never handed to a town user, nor an unmasked one to a role that sees masked data.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Any

from dashboard.access import scope
from dashboard.components import context
from geo import store
from geo.cache import BoundedCache, release_free_memory, size_of

SnapshotToken = tuple[store.Reader, int]
_NEWEST: dict[str, SnapshotToken | None] = {"token": None}
_ON_NEW: list[Callable[[SnapshotToken], None]] = []
_LRUS: weakref.WeakSet[SnapshotLRU] = weakref.WeakSet()
_LOCK = threading.Lock()


def snapshot_token() -> SnapshotToken:
    """The app's current snapshot: its Reader (one per configured app) and the Reader's version.

    The first call that sees a newer snapshot than any before drops the older snapshots'
    entries from every ``SnapshotLRU`` and runs the ``on_new_snapshot`` functions.
    """
    version = context.version()
    token = (context.reader(), version)
    with _LOCK:
        new = is_newer(token, _NEWEST["token"])
        if new:
            _NEWEST["token"] = token
            lrus, hooks = list(_LRUS), list(_ON_NEW)
    if new:
        for lru in lrus:
            lru.cache.drop_where(lambda snap: snap != token)
        for hook in hooks:
            hook(token)
        release_free_memory()
    return token


def is_current(token: SnapshotToken) -> bool:
    """Whether ``token`` is the newest snapshot seen (an answer built on it may be kept)."""
    return token == _NEWEST["token"]


def is_newer(token: SnapshotToken, than: SnapshotToken | None) -> bool:
    """Whether ``token`` replaces ``than``: another app's reader, or a later version of the same one."""
    return than is None or token[0] is not than[0] or token[1] > than[1]


def on_new_snapshot(hook: Callable[[SnapshotToken], None]) -> Callable[[SnapshotToken], None]:
    """Register ``hook(token)``, run once when a newer snapshot is first seen (drops what is kept of older ones)."""
    _ON_NEW.append(hook)
    return hook


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
        with _LOCK:
            _LRUS.add(self)

    @property
    def cache(self) -> BoundedCache[Any]:
        """The underlying bounded cache (entries, bytes, snapshots held)."""
        return self._cache

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """The cached answer for ``key`` in the current snapshot and the request's scope, building it when missing."""
        token = snapshot_token()
        key = (scope.cache_key(), key)
        found, value = self._cache.lookup(token, key)
        if found:
            return value
        value = build()
        with _LOCK:  # kept only while its snapshot is the newest (a swap drops under this lock's sight)
            if token == _NEWEST["token"]:
                self._cache.put(token, key, value)
        return value

    def peek(self, key: Hashable) -> Any | None:
        """The cached answer for ``key`` in the current snapshot and the request's scope, else None (never builds)."""
        return self._cache.lookup(snapshot_token(), (scope.cache_key(), key))[1]
