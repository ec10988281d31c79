"""Caches bounded by bytes, whose entries go with the database snapshot they were made from.

Every cache of derived answers in onemap (GeoJSON text per URL, page figures, study areas
and their weights, cell-number tables, per-snapshot tables) is a ``BoundedCache``: an LRU
keyed by ``(snapshot, key)`` that holds at most ``max_entries`` entries and at most
``max_bytes`` bytes (the ``cache_max_mb`` setting unless a cache is given its own budget).

Sizes are measured on what is stored (``size_of``): ``len`` of text and bytes (their
``sys.getsizeof``), ``nbytes`` of numpy and Arrow arrays, ``memory_usage(deep=True)`` of
pandas objects, coordinates × 16 bytes + 64 per shapely geometry, and for other objects
their ``sys.getsizeof`` plus the sizes of their attributes, items or slots. Containers of
more than ``SAMPLE`` items are estimated from ``SAMPLE`` evenly spaced items. Opaque
extension objects (a DuckDB cursor, a pyproj transformer) count their Python size only.

When ``geo.store`` detaches a read snapshot (it was swapped out and its last cursor is
gone) it calls ``retire_snapshot(alias)``: every cache drops the entries of that snapshot
and runs their ``on_evict`` (a per-snapshot table is dropped there).
"""

from __future__ import annotations

import ctypes
import dataclasses
import sys
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import shapely

from geo.settings import Settings

T = TypeVar("T")
SAMPLE = 256  # items measured of a large list, tuple, set or dict; the rest estimated from them
_MAX_DEPTH = 12
_GEOMETRY_OVERHEAD = 64  # bytes of a shapely/GEOS geometry besides its coordinates (estimate)
_BUDGET: dict[str, float] = {"mb": float(Settings().cache_max_mb)}
_CACHES: weakref.WeakSet[BoundedCache[Any]] = weakref.WeakSet()
_REGISTRY_LOCK = threading.Lock()
_MALLOC_TRIM: dict[str, Any] = {}


def set_budget_mb(mb: float) -> None:
    """Byte budget of every cache without its own (``cache_max_mb``; called by the dashboard's ``configure``)."""
    if not (isinstance(mb, (int, float)) and mb > 0 and mb == mb and mb != float("inf")):
        raise ValueError(f"cache_max_mb must be a positive finite number of megabytes, got {mb!r}")
    _BUDGET["mb"] = float(mb)
    for cache in caches():
        cache.trim()


def budget_bytes() -> int:
    """The shared byte budget of one cache, in bytes."""
    return int(_BUDGET["mb"] * 2**20)


def caches() -> list[BoundedCache[Any]]:
    """Every live ``BoundedCache`` of the process."""
    with _REGISTRY_LOCK:
        return list(_CACHES)


def retire_snapshot(alias: str) -> int:
    """Drop the entries of read snapshot ``alias`` from every cache; returns how many were dropped."""
    dropped = sum(cache.drop_snapshot(alias) for cache in caches())
    release_free_memory()
    return dropped


def release_free_memory() -> None:
    """Hand memory freed by dropped entries back to the system.

    Two allocators keep freed blocks: glibc's malloc (the arenas of the server's threads;
    ``malloc_trim``, on glibc only) and Arrow's default pool (mimalloc in the pyarrow
    wheels), which holds the buffers of DuckDB query results fetched as Arrow tables.
    Without both a server's resident size creeps up after each snapshot swap: measured by
    ``bench/memory.py``; the mimalloc region held most of the residual creep.
    """
    trim = _MALLOC_TRIM.get("fn")
    if trim is None and "fn" not in _MALLOC_TRIM:
        try:
            trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            trim = None
        _MALLOC_TRIM["fn"] = trim
    if trim is not None:
        trim(0)
    pa.default_memory_pool().release_unused()


def snapshot_alias(snap: Hashable) -> str | None:
    """The store alias (``snapN``) a cache's snapshot identity names: itself, or the ``snap…`` item of a tuple."""
    if isinstance(snap, str):
        return snap
    if isinstance(snap, tuple):
        return next((s for s in snap if isinstance(s, str) and s.startswith("snap")), None)
    return None


# --------------------------------------------------------------------------- sizes


def size_of(obj: Any, shared: Iterable[Any] = ()) -> int:
    """Estimated bytes held by ``obj`` (see the module docstring); objects in ``shared`` count 0.

    Parameters
    ----------
    obj
        What a cache stores.
    shared
        Objects held elsewhere anyway (a scene an engine points to): not counted.
    """
    seen = {id(o) for o in shared}
    return _size(obj, seen, 0)


def _size(obj: Any, seen: set[int], depth: int) -> int:
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes, bytearray)):
        return sys.getsizeof(obj)
    if depth > _MAX_DEPTH:
        return sys.getsizeof(obj)
    sized = _sized_leaf(obj, seen, depth)
    if sized is not None:
        return sized
    if isinstance(obj, dict):
        return sys.getsizeof(obj) + _sampled(list(obj.items()), seen, depth)
    if isinstance(obj, (list, tuple, set, frozenset)):
        return sys.getsizeof(obj) + _sampled(list(obj), seen, depth)
    return sys.getsizeof(obj) + _attributes(obj, seen, depth)


def _sized_leaf(obj: Any, seen: set[int], depth: int) -> int | None:
    """Bytes of arrays, frames and geometries, or None for other objects."""
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            return obj.nbytes + _sampled(list(obj.ravel()), seen, depth)
        return obj.nbytes
    if isinstance(obj, pd.DataFrame):
        return int(obj.memory_usage(deep=True, index=True).sum()) + _geometry_bytes(obj)
    if isinstance(obj, (pd.Series, pd.Index)):
        return int(obj.memory_usage(deep=True)) + _geometry_bytes(obj)
    if isinstance(obj, (pa.Array, pa.ChunkedArray, pa.Table, pa.RecordBatch)):
        return int(obj.nbytes)
    if isinstance(obj, shapely.Geometry):
        return int(shapely.get_num_coordinates(obj)) * 16 + _GEOMETRY_OVERHEAD
    return None


def _geometry_bytes(obj: pd.DataFrame | pd.Series | pd.Index) -> int:
    """Coordinates of the geometry columns of a (Geo)DataFrame or GeoSeries (pandas counts pointers only)."""
    columns = [obj] if not isinstance(obj, pd.DataFrame) else [obj[c] for c in obj.columns]
    total = 0
    for col in columns:
        if getattr(col.dtype, "name", "") == "geometry":
            geoms = np.asarray(col.array, dtype=object)
            total += int(shapely.get_num_coordinates(geoms).sum()) * 16 + _GEOMETRY_OVERHEAD * len(geoms)
    return total


def _sampled(items: list[Any], seen: set[int], depth: int) -> int:
    """Bytes of ``items``: all of them up to ``SAMPLE``, else ``SAMPLE`` evenly spaced ones scaled up."""
    if len(items) <= SAMPLE:
        return sum(_size(v, seen, depth + 1) for v in items)
    step = len(items) / SAMPLE
    picked = [items[int(i * step)] for i in range(SAMPLE)]
    return int(sum(_size(v, seen, depth + 1) for v in picked) * len(items) / SAMPLE)


def _attributes(obj: Any, seen: set[int], depth: int) -> int:
    """Bytes of an object's attributes (``__dict__``, ``__slots__``, dataclass fields)."""
    values: list[Any] = []
    if hasattr(obj, "__dict__"):
        values += list(vars(obj).values())
    for klass in type(obj).__mro__:
        for slot in getattr(klass, "__slots__", ()):
            if slot not in ("__dict__", "__weakref__") and hasattr(obj, slot):
                values.append(getattr(obj, slot))
    if dataclasses.is_dataclass(obj) and not hasattr(obj, "__dict__"):
        values += [getattr(obj, f.name) for f in dataclasses.fields(obj)]
    if not values and hasattr(obj, "data") and isinstance(getattr(obj, "data", None), np.ndarray):
        values.append(obj.data)  # a KD-tree or a sparse matrix without a __dict__: its arrays
    return sum(_size(v, seen, depth + 1) for v in values)


# --------------------------------------------------------------------------- the cache


@dataclasses.dataclass
class _Entry(Generic[T]):
    value: T
    nbytes: int


class BoundedCache(Generic[T]):
    """An LRU of values per ``(snapshot, key)``, bounded by entries and by bytes.

    Parameters
    ----------
    name
        What it holds (shown by ``stats``).
    max_entries
        Most entries kept.
    max_bytes
        Most bytes kept (sum of ``sizer`` of the values); None: the ``cache_max_mb`` budget.
        A value larger than the whole budget is returned but not kept (nor passed to ``on_evict``:
        the caller owns it).
    on_evict
        Called with each value that leaves the cache (outside the cache's lock).
    sizer
        Bytes of a value (``size_of`` by default).
    """

    def __init__(
        self,
        name: str,
        max_entries: int,
        max_bytes: int | None = None,
        on_evict: Callable[[T], None] | None = None,
        sizer: Callable[[T], int] = size_of,
    ) -> None:
        self.name = name
        self.max_entries = max_entries
        self._max_bytes = max_bytes
        self.on_evict = on_evict
        self.sizer = sizer
        self._items: OrderedDict[tuple[Hashable, Hashable], _Entry[T]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        with _REGISTRY_LOCK:
            _CACHES.add(self)

    @property
    def max_bytes(self) -> int:
        """The byte budget: the cache's own, else ``cache_max_mb``."""
        return self._max_bytes if self._max_bytes is not None else budget_bytes()

    @property
    def nbytes(self) -> int:
        """Bytes of the values held (as measured when they were stored)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def snapshots(self) -> set[Hashable]:
        """The snapshot identities that have entries."""
        with self._lock:
            return {snap for snap, _ in self._items}

    def lookup(self, snap: Hashable, key: Hashable) -> tuple[bool, T | None]:
        """``(True, value)`` when held (it becomes the most recent), else ``(False, None)``."""
        with self._lock:
            entry = self._items.get((snap, key))
            if entry is None:
                return False, None
            self._items.move_to_end((snap, key))
            return True, entry.value

    def put(self, snap: Hashable, key: Hashable, value: T) -> T:
        """Keep ``value`` for ``(snap, key)``, evicting the least recent entries beyond the bounds."""
        nbytes = self.sizer(value)
        evicted: list[T] = []
        with self._lock:
            old = self._items.pop((snap, key), None)
            if old is not None:
                self._bytes -= old.nbytes
                if old.value is not value:
                    evicted.append(old.value)
            if nbytes <= self.max_bytes:  # a value larger than the budget is handed back, not kept
                self._items[(snap, key)] = _Entry(value, nbytes)
                self._bytes += nbytes
            evicted += self._trim_locked()
        self._evicted(evicted)
        return value

    def trim(self) -> None:
        """Evict least recent entries until the cache is within its bounds."""
        with self._lock:
            evicted = self._trim_locked()
        self._evicted(evicted)

    def _trim_locked(self) -> list[T]:
        evicted = []
        while self._items and (len(self._items) > self.max_entries or self._bytes > self.max_bytes):
            _, entry = self._items.popitem(last=False)
            self._bytes -= entry.nbytes
            evicted.append(entry.value)
        return evicted

    def drop_where(self, condemned: Callable[[Hashable], bool]) -> int:
        """Drop the entries whose snapshot identity ``condemned`` accepts; returns how many."""
        with self._lock:
            gone = [k for k in self._items if condemned(k[0])]
            evicted = []
            for k in gone:
                entry = self._items.pop(k)
                self._bytes -= entry.nbytes
                evicted.append(entry.value)
        self._evicted(evicted)
        return len(gone)

    def drop_snapshot(self, alias: str) -> int:
        """Drop the entries of store snapshot ``alias`` (``snapN``)."""
        return self.drop_where(lambda snap: snapshot_alias(snap) == alias)

    def clear(self) -> None:
        """Forget everything."""
        self.drop_where(lambda snap: True)

    def stats(self) -> dict[str, Any]:
        """Name, entries, bytes held and the bounds."""
        return {"name": self.name, "entries": len(self._items), "bytes": self._bytes,
                "max_entries": self.max_entries, "max_bytes": self.max_bytes}

    def _evicted(self, values: list[T]) -> None:
        if self.on_evict is not None:
            for value in values:
                self.on_evict(value)
