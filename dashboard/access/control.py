"""The control database: users, the audit trail, published scenarios and feed tokens, beside the data file.

The data file (``onemap.duckdb``) is written by snapshot swaps (a whole copy per write), fit
for registers but not for a sign-in or an audit row every few seconds. Those go to a small
DuckDB file of their own next to it, ``<stem>.control.duckdb`` (``control_path``), opened
briefly by whichever process needs it (the server, the CLI) under an exclusive file lock
(``<file>.lock``, ``fcntl``), so processes take turns and never fail on DuckDB's own lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

from geo.errors import OnemapError

LOCK_TIMEOUT_S = 10.0

SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS users (
        name VARCHAR PRIMARY KEY,
        password_hash VARCHAR,          -- werkzeug.security scheme string; NULL: SSO only
        role VARCHAR NOT NULL,
        towns VARCHAR[],                -- NULL: the whole district
        disabled BOOLEAN NOT NULL DEFAULT FALSE,
        created_at TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS audit (
        seq BIGINT PRIMARY KEY,         -- 1, 2, 3, ... in the order written
        "at" TIMESTAMP NOT NULL,        -- local time of the server
        actor VARCHAR NOT NULL,         -- user name, token source, or 'local'
        role VARCHAR,
        action VARCHAR NOT NULL,
        object VARCHAR,
        before VARCHAR,                 -- JSON text
        after VARCHAR,                  -- JSON text
        prev_hash VARCHAR NOT NULL,
        hash VARCHAR NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS scenarios (
        id VARCHAR PRIMARY KEY,
        name VARCHAR NOT NULL,
        owner VARCHAR NOT NULL,
        published_at TIMESTAMP NOT NULL,
        body VARCHAR NOT NULL)          -- JSON text of the scenario""",
    """CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS signed_out (
        sid VARCHAR PRIMARY KEY,        -- the session id a sign-out ended (its cookie is refused)
        until TIMESTAMP NOT NULL)       -- after this the cookie has expired anyway (idle timeout)""",
    """CREATE TABLE IF NOT EXISTS tokens (
        id VARCHAR PRIMARY KEY,         -- the public part of a feed token (om_<id>.<secret>)
        source VARCHAR NOT NULL,        -- the platform that posts with it (12345, iot-smoke ...)
        layers VARCHAR[] NOT NULL,      -- the layers it may write
        secret_hash VARCHAR NOT NULL,   -- SHA-256 hex of the secret part; the token is shown once
        created_at TIMESTAMP NOT NULL,
        revoked_at TIMESTAMP)""",
)


def file_stamp(path: Path) -> tuple[object, ...]:
    """(mtime, size, inode) of a DuckDB file and its WAL: it changes whenever another process
    commits to it, so a cache of the file's rows can tell it must read again."""
    out: list[object] = []
    for each in (path, path.with_name(path.name + ".wal")):
        try:
            st = each.stat()
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            out.append(None)
    return tuple(out)


class ControlBusy(OnemapError):
    """The control database stayed locked by another process for ``LOCK_TIMEOUT_S``."""


def control_path(db_path: str | os.PathLike[str]) -> Path:
    """The control file of data file ``db_path``: ``data/onemap.duckdb`` → ``data/onemap.control.duckdb``."""
    db = Path(db_path)
    return db.with_name(f"{db.stem}.control.duckdb")


@contextlib.contextmanager
def _file_lock(path: Path, timeout_s: float) -> Iterator[None]:
    """An exclusive ``fcntl`` lock on ``path`` (created), waited for up to ``timeout_s``."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ControlBusy(f"{path}: the control database stayed locked for {timeout_s:.0f} s "
                                      "by another onemap process; try again") from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextlib.contextmanager
def open_control(db_path: str | os.PathLike[str], timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection to ``db_path``'s control file, schema ensured, under the file lock.

    Keep the block short: every other process waits for it. Changes made in the block are
    committed when it closes (DuckDB autocommit; use ``BEGIN``/``COMMIT`` for several statements
    that must land together)."""
    path = control_path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(path.with_name(path.name + ".lock"), timeout_s):
        con = duckdb.connect(str(path))
        try:
            for ddl in SCHEMA:
                con.execute(ddl)
            yield con
        finally:
            con.close()
