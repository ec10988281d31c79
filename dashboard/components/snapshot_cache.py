"""An LRU of answers that are valid for one database snapshot (keyed by the Reader's version)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from dashboard.components import context


class SnapshotLRU:
    """``get(key, build)`` builds once per snapshot version and key; keeps the ``size`` most recent.

    Two threads asking at once may both build; the answers are equal, the last one is kept.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple[int, Hashable], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """The cached answer for ``key`` in the current snapshot, building it when missing."""
        full = (context.version(), key)
        with self._lock:
            if full in self._items:
                self._items.move_to_end(full)
                return self._items[full]
        value = build()
        with self._lock:
            self._items[full] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def peek(self, key: Hashable) -> Any | None:
        """The cached answer for ``key`` in the current snapshot, else None (never builds)."""
        with self._lock:
            return self._items.get((context.version(), key))
