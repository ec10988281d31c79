"""Stored rows by id without scanning a large layer: a hash index of one pinned snapshot.

A feed record with an id needs the stored row it updates (or to learn there is none). On a
1 GB database ``WHERE id IN (...)`` scans the id column (0.7 s for 12.8M hazards on 2 cores);
a lookup by ``rowid = ?`` reads one row (about 10 ms). So per (file, layer) this module keeps a
sorted array of ``hash(id)`` with the rows' ``rowid`` for one snapshot, and a cursor that keeps
that snapshot readable. Rows changed since then are in the journal (``geo.journal``: events
after the snapshot's folded seq), which the caller lays over the answer.

The index is built in a background thread (a few seconds per GB) and used while the newest
snapshot is the one it was built on or one this process's own folds made from it (the folds
only move journal events in). Any other swap (``onemap ingest``, another process) makes it
stale: a new one is built, and meanwhile lookups scan (correct, slower). It is also rebuilt
when older than half of ``live_keep_s``, so the journal still holds every event since.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from geo import store

MAX_POINT_LOOKUPS = 32
"""More candidate rows than this in one lookup: one scan is cheaper than many point reads."""


@dataclass
class IdIndex:
    """The hash index of one layer in one snapshot, and a cursor keeping that snapshot open."""

    identity: tuple[int, int, int]
    con: duckdb.DuckDBPyConnection
    hashes: np.ndarray
    rowids: np.ndarray
    built_at: float
    folded: int  # the snapshot's last folded journal seq: newer events overlay its rows


_HELD: dict[tuple[Path, str], IdIndex] = {}
_OWN: dict[Path, set[tuple[int, int, int]]] = {}
_BUILDING: set[tuple[Path, str]] = set()
_LOCK = threading.Lock()
_HASHER_LOCK = threading.Lock()
_HASHER: list[duckdb.DuckDBPyConnection] = []


def identity(db: Path) -> tuple[int, int, int] | None:
    """(inode, mtime, size) of the database file: a new value means a new snapshot."""
    try:
        st = os.stat(db)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def note_own_fold(db: Path, before: tuple[int, int, int] | None, after: tuple[int, int, int] | None) -> None:
    """Record that this process's fold turned snapshot ``before`` into ``after`` (journal events only)."""
    with _LOCK:
        own = _OWN.setdefault(db, set())
        if after is not None and (before is None or before in own or any(
                i.identity == before for (d, _), i in _HELD.items() if d == db)):
            own.add(after)


def _build(db: Path, layer: str) -> None:
    try:
        con = store.connect(db)
        ident = identity(db)
        got = con.execute(f"SELECT hash(id) AS h, rowid AS r FROM {layer} ORDER BY h").fetchnumpy()
        try:
            folded = int(con.execute("SELECT coalesce(max(seq), 0) FROM journal_folded").fetchone()[0])
        except duckdb.CatalogException:
            folded = 0
        index = IdIndex(ident or (0, 0, 0), con, np.asarray(got["h"], dtype=np.uint64),
                        np.asarray(got["r"], dtype=np.int64), time.monotonic(), folded)
        with _LOCK:
            _HELD[(db, layer)] = index
            _OWN[db] = set()
    except (duckdb.Error, store.StoreError):
        pass
    finally:
        with _LOCK:
            _BUILDING.discard((db, layer))


def usable(db: Path, layer: str, max_age_s: float) -> IdIndex | None:
    """The index of ``layer`` if it still answers for the newest snapshot; else None (and a build starts)."""
    now = identity(db)
    with _LOCK:
        index = _HELD.get((db, layer))
        fresh = index is not None and time.monotonic() - index.built_at < max_age_s
        if fresh and index is not None and (now == index.identity or now in _OWN.get(db, set())):
            return index
        if (db, layer) not in _BUILDING:
            _BUILDING.add((db, layer))
            threading.Thread(target=_build, args=(db, layer), name="onemap-id-index", daemon=True).start()
    return None


def _hashes(ids: list[str]) -> np.ndarray:
    """DuckDB's ``hash`` of each id (the function the index was built with)."""
    with _HASHER_LOCK:
        if not _HASHER:
            _HASHER.append(duckdb.connect(":memory:"))
        got = _HASHER[0].execute("SELECT hash(unnest(?::VARCHAR[]))", [ids]).fetchnumpy()
    return np.asarray(next(iter(got.values())), dtype=np.uint64)


def lookup(index: IdIndex, layer: str, columns: list[str], ids: list[str]) -> list[tuple[Any, ...]]:
    """Rows (``columns``, the first being ``id``) of the pinned snapshot whose id is among ``ids``."""
    h = _hashes(ids)
    lo = np.searchsorted(index.hashes, h, side="left")
    hi = np.searchsorted(index.hashes, h, side="right")
    rowids = [int(r) for a, b in zip(lo, hi, strict=True) for r in index.rowids[a:b]]
    if not rowids:
        return []
    select = ", ".join(f'"{c}"' for c in columns)
    cur = store.cursor(index.con)
    try:
        if len(rowids) > MAX_POINT_LOOKUPS:
            marks = ", ".join("?" for _ in ids)
            return cur.execute(f"SELECT {select} FROM {layer} WHERE id IN ({marks})", ids).fetchall()
        wanted, out = set(ids), []
        for r in rowids:
            out += [row for row in cur.execute(f"SELECT {select} FROM {layer} WHERE rowid = ?", [r]).fetchall()
                    if row[0] in wanted]
        return out
    finally:
        cur.close()
