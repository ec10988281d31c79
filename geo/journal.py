"""The live write path (issue 12): an append-only journal beside the snapshot, folded into it.

Design
------
Files are still written by snapshot swaps (``geo.store.writer``: copy, write, swap), which
cost about 1 s per GB and suit registers. Single records (a hotline report, a status
change, an alarm) go to a **journal** instead: ``<stem>.journal.sqlite`` beside the data
file, an SQLite database in WAL mode with ``synchronous=FULL``.

- **Write** (``append``): one SQLite transaction per batch, committed (fsync of the WAL)
  before the API answers 201. Its cost grows with the batch, not with the database: no
  copy. SQLite's own lock serialises writers of any process; the serving process is the
  usual one (the feed API), the CLI may write too.
- **Atomic batches**: a batch is one transaction: a reader sees all of it or none of it.
- **Durability**: an acknowledged batch is in the WAL on disk; SQLite replays or discards
  the WAL tail after ``kill -9`` of any process at any moment, so an acknowledged event is
  never lost and a half-written one never appears.
- **Rows**: each event stores the record's *whole resulting row* (canonical fields +
  lon/lat, after a partial update is merged with the row it updates), so the current
  state of an id is simply its newest event; the field changes go to ``history``.
- **Fold** (``fold``): a compactor (the server's thread, ``live_fold_s``) moves the events
  with ``seq <= S`` into the snapshot with ``store.writer`` (upsert by id, history rows into
  the snapshot's ``live_history`` table) and records ``S`` in the snapshot's
  ``journal_folded`` table in the same swap. A fold killed midway leaves the old snapshot
  and the journal untouched; a fold done twice changes nothing (``seq <= S`` is skipped).
  ``onemap ingest`` keeps working while the app serves: it takes the same writer lock and
  its copy carries ``journal_folded`` along.
- **Reads**: snapshot readers work as before and see journal rows once folded (within
  ``live_fold_s`` plus the swap). A reader that needs them at once reads the journal:
  ``head`` (the newest seq), ``changes_since(seq)`` (events after a token, in order, whole
  batches only: for the wall's 2 s update and the alarm layer), ``current_rows`` (the
  newest unfolded row per id). Events stay in the journal ``live_keep_s`` after their fold,
  so a ``changes_since`` token stays valid that long.

Why SQLite and not a second DuckDB file: a DuckDB file open for writing cannot be opened by
another process at all, while SQLite's WAL lets any process read while one writes, commits
a small transaction in about a millisecond plus one fsync, and ships with Python. DuckLake
(``duckdb-extension-ducklake``) would need a catalog database and Parquet files per commit,
more moving parts than a journal of small rows for the same guarantees.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- 1, 2, 3 ... in commit order
        batch INTEGER NOT NULL,                 -- the seq of the batch's first event
        layer TEXT NOT NULL,
        id TEXT NOT NULL,
        source TEXT NOT NULL,                   -- the token's source name
        op TEXT NOT NULL,                       -- 'new' or 'update'
        at TEXT NOT NULL,                       -- ISO local time of the commit
        row TEXT NOT NULL)                      -- JSON: the whole resulting row (fields, lon, lat)""",
    "CREATE INDEX IF NOT EXISTS events_id ON events (layer, id, seq)",
    """CREATE TABLE IF NOT EXISTS history (
        seq INTEGER NOT NULL,                   -- the event that made the change
        layer TEXT NOT NULL, id TEXT NOT NULL, field TEXT NOT NULL,
        old TEXT, new TEXT, at TEXT NOT NULL, source TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS history_seq ON history (seq)",
    """CREATE TABLE IF NOT EXISTS rejected (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        layer TEXT, file TEXT, row_number INTEGER, field TEXT, reason TEXT, value TEXT,
        detail TEXT, raw TEXT, ingested_at TEXT)""",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)

HISTORY_TABLE = "live_history"
"""Snapshot table the folded history rows go to (hazard id, field, old, new, time, source)."""
FOLDED_TABLE = "journal_folded"
"""Snapshot table holding the seq of the last journal event folded into it."""
SNAPSHOT_TABLES: dict[str, str] = {
    HISTORY_TABLE: "seq BIGINT, layer VARCHAR, id VARCHAR, field VARCHAR, old VARCHAR, new VARCHAR, "
                   '"at" TIMESTAMP, source VARCHAR',
    FOLDED_TABLE: "seq BIGINT, rejected_seq BIGINT",
}


@dataclass(frozen=True)
class Event:
    """One journal row: a record's whole resulting row after the event."""

    seq: int
    batch: int
    layer: str
    id: str
    source: str
    op: str
    at: str
    row: dict[str, Any]


def journal_path(db_path: str | os.PathLike[str]) -> Path:
    """The journal of data file ``db_path``: ``data/onemap.duckdb`` → ``data/onemap.journal.sqlite``."""
    db = Path(db_path)
    return db.with_name(f"{db.stem}.journal.sqlite")


_LOCAL = threading.local()


def _open(db_path: str | os.PathLike[str]) -> sqlite3.Connection:
    """This thread's connection to the journal (created with its schema on first use)."""
    path = journal_path(db_path)
    cons: dict[Path, sqlite3.Connection] = _LOCAL.__dict__.setdefault("cons", {})
    if _LOCAL.__dict__.get("pid") != os.getpid():
        cons.clear()
        _LOCAL.pid = os.getpid()
    con = cons.get(path)
    if con is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")  # the WAL is fsynced at every commit
        con.execute("PRAGMA busy_timeout=30000")
        for ddl in SCHEMA:
            con.execute(ddl)
        cons[path] = con
    return con


@contextlib.contextmanager
def transaction(db_path: str | os.PathLike[str]) -> Iterator[sqlite3.Connection]:
    """A write transaction on the journal (``BEGIN IMMEDIATE``: one writer at a time, any process).

    Committed, durably, when the block ends; rolled back on an exception."""
    con = _open(db_path)
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def exists(db_path: str | os.PathLike[str]) -> bool:
    """Whether data file ``db_path`` has a journal."""
    return journal_path(db_path).exists()


# --------------------------------------------------------------------------- writing


def append(
    con: sqlite3.Connection,
    layer: str,
    source: str,
    rows: Sequence[tuple[str, str, dict[str, Any], list[tuple[str, Any, Any]]]],
) -> list[int]:
    """Append one batch inside ``transaction``: per record (id, op, whole row, [(field, old, new)]).

    Returns the events' seqs. Values are stored as JSON (datetimes as ISO text)."""
    at = datetime.now().isoformat(sep=" ", timespec="seconds")
    seqs: list[int] = []
    batch = None
    for rid, op, row, changes in rows:
        cur = con.execute(
            "INSERT INTO events (batch, layer, id, source, op, at, row) VALUES (coalesce(?, -1), ?, ?, ?, ?, ?, ?)",
            [batch, layer, rid, source, op, at, json.dumps(row, ensure_ascii=False, default=str)],
        )
        seq = int(cur.lastrowid or 0)
        if batch is None:
            batch = seq
            con.execute("UPDATE events SET batch = ? WHERE seq = ?", [seq, seq])
        seqs.append(seq)
        con.executemany(
            "INSERT INTO history (seq, layer, id, field, old, new, at, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(seq, layer, rid, f, _text(old), _text(new), at, source) for f, old, new in changes],
        )
    return seqs


def continue_after(con: sqlite3.Connection, events_after: int, rejected_after: int) -> None:
    """Inside ``transaction``: make the next event and rejection numbers follow the snapshot's
    folded ones. A journal lost or left behind (a data file restored or copied without its
    ``.journal.sqlite``) would number from 1 again, below what the snapshot records as
    folded, and its events would be skipped by every fold and by partial updates."""
    for table, floor in (("events", events_after), ("rejected", rejected_after)):
        row = con.execute(f"SELECT max(seq) FROM {table}").fetchone()
        known = con.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", [table]).fetchone()
        current = max(int(row[0] or 0), int(known[0]) if known else 0)
        if current < floor:
            con.execute("DELETE FROM sqlite_sequence WHERE name = ?", [table])
            con.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", [table, int(floor)])


def keep_rejected(con: sqlite3.Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Keep rejected records (the columns of the snapshot's ``rejected`` table) inside ``transaction``."""
    con.executemany(
        "INSERT INTO rejected (layer, file, row_number, field, reason, value, detail, raw, ingested_at) "
        "VALUES (:layer, :file, :row_number, :field, :reason, :value, :detail, :raw, :ingested_at)",
        [{k: _text(r.get(k)) if k != "row_number" else r.get(k) for k in
          ("layer", "file", "row_number", "field", "reason", "value", "detail", "raw", "ingested_at")}
         for r in rows],
    )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


# --------------------------------------------------------------------------- reading


def head(db_path: str | os.PathLike[str]) -> int:
    """The seq of the newest committed event (0 when there is none): a token for ``changes_since``."""
    if not exists(db_path):
        return 0
    row = _open(db_path).execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
    return int(row[0])


def changes_since(
    db_path: str | os.PathLike[str], seq: int, layers: Sequence[str] | None = None, limit: int = 10_000
) -> list[Event]:
    """Events committed after ``seq`` (a ``head`` token), oldest first, whole batches only.

    ``layers`` limits them to some layers. A reader polls with the last seq it saw; a batch
    is one transaction, so it is seen whole or not at all."""
    if not exists(db_path):
        return []
    sql = "SELECT seq, batch, layer, id, source, op, at, row FROM events WHERE seq > ?"
    params: list[Any] = [int(seq)]
    if layers:
        sql += f" AND layer IN ({', '.join('?' for _ in layers)})"
        params += list(layers)
    sql += " ORDER BY seq LIMIT ?"
    params.append(int(limit))
    rows = _open(db_path).execute(sql, params).fetchall()
    return [Event(s, b, la, i, so, op, at, json.loads(r)) for s, b, la, i, so, op, at, r in rows]


def current_rows(
    db_path: str | os.PathLike[str], layer: str, ids: Sequence[str] | None = None, after: int = 0
) -> dict[str, dict[str, Any]]:
    """The newest row per id of ``layer`` among events after ``after`` (the snapshot's folded seq)."""
    if not exists(db_path):
        return {}
    sql = ("SELECT id, row FROM events WHERE seq IN (SELECT max(seq) FROM events WHERE layer = ? AND seq > ?"
           + (f" AND id IN ({', '.join('?' for _ in ids)})" if ids else "") + " GROUP BY id)")
    params: list[Any] = [layer, int(after), *(ids or [])]
    if ids is not None and not ids:
        return {}
    return {i: json.loads(r) for i, r in _open(db_path).execute(sql, params).fetchall()}


def pending(db_path: str | os.PathLike[str], after: int) -> tuple[int, float | None]:
    """(events after seq ``after``, age in seconds of the oldest of them) — what a fold would move."""
    if not exists(db_path):
        return 0, None
    n, first = _open(db_path).execute(
        "SELECT count(*), min(at) FROM events WHERE seq > ?", [int(after)]).fetchone()
    age = None if first is None else max(0.0, time.time() - datetime.fromisoformat(first).timestamp())
    return int(n), age


def history_rows(db_path: str | os.PathLike[str], after: int = 0, layer: str | None = None) -> list[dict[str, Any]]:
    """History rows (seq, layer, id, field, old, new, at, source) of events after ``after``."""
    if not exists(db_path):
        return []
    sql = "SELECT seq, layer, id, field, old, new, at, source FROM history WHERE seq > ?"
    params: list[Any] = [int(after)]
    if layer:
        sql += " AND layer = ?"
        params.append(layer)
    cur = _open(db_path).execute(sql + " ORDER BY seq", params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def rejected_head(db_path: str | os.PathLike[str]) -> int:
    """The seq of the newest kept rejection (0 when there is none)."""
    if not exists(db_path):
        return 0
    return int(_open(db_path).execute("SELECT coalesce(max(seq), 0) FROM rejected").fetchone()[0])


def rejected_rows(db_path: str | os.PathLike[str], after: int, upto: int) -> list[dict[str, Any]]:
    """Kept rejections with ``after < seq <= upto`` (the columns of the snapshot's ``rejected``)."""
    if not exists(db_path):
        return []
    cur = _open(db_path).execute(
        "SELECT seq, layer, file, row_number, field, reason, value, detail, raw, ingested_at FROM rejected "
        "WHERE seq > ? AND seq <= ? ORDER BY seq", [int(after), int(upto)])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def forget(db_path: str | os.PathLike[str], upto: int, upto_rejected: int, keep_s: float) -> None:
    """Delete folded events (and their history) older than ``keep_s`` seconds, folded rejections."""
    cutoff = datetime.fromtimestamp(time.time() - keep_s).isoformat(sep=" ", timespec="seconds")
    with transaction(db_path) as con:
        old = con.execute("SELECT coalesce(max(seq), 0) FROM events WHERE seq <= ? AND at < ?",
                          [int(upto), cutoff]).fetchone()[0]
        if old:
            con.execute("DELETE FROM events WHERE seq <= ?", [old])
            con.execute("DELETE FROM history WHERE seq <= ?", [old])
        con.execute("DELETE FROM rejected WHERE seq <= ?", [int(upto_rejected)])
