"""The running app's settings and database reader, set once by ``create_app``.

Dash page modules register their callbacks at import time and cannot receive arguments,
so they read the settings and the snapshot-following ``store.Reader`` from here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import duckdb

from geo import cache, store
from geo.settings import Settings

_STATE: dict[str, object] = {}


def configure(settings: Settings, db_path: str) -> None:
    """Remember the settings and open a Reader on ``db_path`` (called by ``create_app``)."""
    _STATE["settings"] = settings
    cache.set_budget_mb(settings.cache_max_mb)
    _STATE["reader"] = store.Reader(db_path)
    _STATE["db_path"] = db_path


def settings() -> Settings:
    """The app's settings (defaults before ``configure``)."""
    value = _STATE.get("settings")
    return value if isinstance(value, Settings) else Settings()


def reader() -> store.Reader:
    """The app's database reader (follows snapshot swaps)."""
    value = _STATE.get("reader")
    if not isinstance(value, store.Reader):
        raise RuntimeError("dashboard not configured: call dashboard.app.create_app(settings, db_path) first")
    return value


@contextlib.contextmanager
def connection() -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor on the newest snapshot, closed after use."""
    cur = reader().connection()
    try:
        yield cur
    finally:
        cur.close()


def version() -> int:
    """Snapshot version of the reader (changes when a writer swaps a new snapshot in)."""
    r = reader()
    r.connection().close()
    return r.version
