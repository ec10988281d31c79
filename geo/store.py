"""The only module that opens DuckDB: connections, schema, snapshots, writes and reads.

Design: one writer, many readers, by **snapshot swap**.
A writer (``onemap ingest``, the demo generator) takes an exclusive lock file, copies the
current database file to a private temporary file, writes there, checkpoints, detaches, and
swaps it in with ``os.replace`` (atomic on POSIX), then fsyncs the directory. Holding the
lock, a writer first removes copies left by writers that were killed mid-write. Readers
(the dashboard, the CLI) attach the file read-only (``ATTACH ... (READ_ONLY)``) into the
process's in-memory DuckDB instance and attach it anew when the file's identity (inode,
mtime, size) changes; an old
snapshot stays readable (its inode lives while open) until its last cursor is gone, then
it is detached. A reader therefore sees the old snapshot or the new one, never a
half-finished ingest, and never waits for the writer; DuckDB's own file lock (one
read-write process excludes all others) is never contended.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import itertools
import os
import shutil
import threading
import weakref
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from geo import h3index
from geo.cache import BoundedCache, retire_snapshot
from geo.errors import StoreError
from geo.settings import Settings
from layers.base import LayerSpec
from layers.registry import LAYERS, get_spec

POINT_RESOLUTIONS: tuple[int, ...] = (7, 8, 9, 10)
COVER_RESOLUTIONS: tuple[int, ...] = (9, 10)
# Resolutions whose cells also get a dense number (1, 2, 3, ... per resolution, kept in
# CODES_TABLE): a district has a few thousand such cells, so counting by the number lets
# DuckDB group with a perfect hash table instead of hashing 64-bit cell ids (2-3x faster
# on millions of rows). Res 10 has too many cells in a large district to stay dense.
CODED_RESOLUTIONS: tuple[int, ...] = (7, 8, 9)
CODES_TABLE = "h3_codes"
PERFECT_HASH_BITS = 16
ROW_GROUP_ROWS = 122_880  # DuckDB's row group size
STORAGE_VERSION = "v1.5.0"  # storage format of new database files (DuckDB >= 1.5 reads them)
_alias_counter = itertools.count()

META_TABLES: dict[str, str] = {
    "ingest_log": """
        file VARCHAR, sha256 VARCHAR, layer VARCHAR, crs VARCHAR,
        started_at TIMESTAMP, finished_at TIMESTAMP,
        rows_read BIGINT, accepted BIGINT, rejected BIGINT, repaired BIGINT, note VARCHAR
    """,
    "rejected": """
        layer VARCHAR, file VARCHAR, row_number BIGINT, field VARCHAR, reason VARCHAR,
        value VARCHAR, detail VARCHAR, raw VARCHAR, ingested_at TIMESTAMP
    """,
    "ingest_notes": """
        layer VARCHAR, file VARCHAR, row_number BIGINT, id VARCHAR, field VARCHAR, note VARCHAR,
        ingested_at TIMESTAMP
    """,
    CODES_TABLE: "res UTINYINT, cell UBIGINT, code UINTEGER",
    "road_nodes": "node_id BIGINT, lon DOUBLE, lat DOUBLE, "
    + ", ".join(f"{h3index.cell_column(r)} UBIGINT" for r in COVER_RESOLUTIONS),
    "road_edges": """
        u BIGINT, v BIGINT, length_m DOUBLE, speed_kmh DOUBLE, highway VARCHAR, name VARCHAR,
        oneway BOOLEAN, geom GEOMETRY
    """,
}


# --------------------------------------------------------------------------- paths


def resolve_db_path(
    path: str | os.PathLike[str] | None = None, settings: Settings | None = None
) -> Path:
    """The database file: ``path``, else ``ONEMAP_DB``, else the settings' ``db_path``."""
    chosen = path or os.environ.get("ONEMAP_DB") or (settings or Settings()).db_path
    return Path(chosen).expanduser().resolve()


def _spatial_extension_file() -> str:
    import duckdb_extension_spatial

    root = os.path.dirname(duckdb_extension_spatial.__file__)
    found = glob.glob(
        os.path.join(root, "extensions", "**", "spatial.duckdb_extension"), recursive=True
    )
    if not found:
        raise StoreError(
            f"spatial extension file not found under {root}; reinstall duckdb-extension-spatial"
        )
    return found[0]


def _new_instance() -> duckdb.DuckDBPyConnection:
    """A fresh in-memory DuckDB with the spatial extension loaded from the wheel (no download)."""
    con = duckdb.connect(
        ":memory:",
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            # Group by dense cell numbers (CODED_RESOLUTIONS) with a perfect hash table up to
            # 2^16 numbers (a res-9 cover of ~7,000 km²); DuckDB's default stops at 2^12.
            "perfect_ht_threshold": PERFECT_HASH_BITS,
        },
    )
    con.execute(f"LOAD '{_spatial_extension_file()}'")
    return con


# One in-memory DuckDB instance per process, spatial loaded once (loading it costs 0.3-2 s).
# Files are ATTACHed into it: each read snapshot (file identity) once, under its own alias;
# each writer's private copy for the length of the write. A ``:memory:`` instance is never
# shared through DuckDB's own per-path instance cache, so a swapped file is never confused
# with the old one: a new identity means a new ATTACH.
_INSTANCE: duckdb.DuckDBPyConnection | None = None
_INSTANCE_PID: int | None = None
_LOCK = threading.RLock()
_SNAPSHOTS: dict[
    Path, tuple[tuple[int, int, int], str]
] = {}  # path -> (identity, alias) of the newest
_USERS: dict[str, weakref.WeakSet[Any]] = {}  # alias -> cursors handed out on it
# connection → alias of the database it uses; weak, so the cursors of every query do not pile up
_ALIASES: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def _instance() -> duckdb.DuckDBPyConnection:
    global _INSTANCE, _INSTANCE_PID
    with _LOCK:
        if _INSTANCE is None or _INSTANCE_PID != os.getpid():  # a forked child gets its own
            _INSTANCE = _new_instance()
            _INSTANCE_PID = os.getpid()
            _SNAPSHOTS.clear()
            _USERS.clear()
        return _INSTANCE


_PLAIN: duckdb.DuckDBPyConnection | None = None
_PLAIN_PID: int | None = None
_PLAIN_LOCK = threading.Lock()  # not _LOCK: that one is held while spatial loads


def _plain() -> duckdb.DuckDBPyConnection:
    """A DuckDB instance without extensions, for computing on in-memory Arrow data only.

    It needs no spatial extension, so validation can use it while the main instance is
    still loading spatial in the background.
    """
    global _PLAIN, _PLAIN_PID
    with _PLAIN_LOCK:
        if _PLAIN is None or _PLAIN_PID != os.getpid():
            _PLAIN = duckdb.connect(
                ":memory:",
                config={"autoinstall_known_extensions": False, "autoload_known_extensions": False},
            )
            _PLAIN_PID = os.getpid()
        return _PLAIN


def warm_up() -> None:
    """Create this process's DuckDB instance (loads spatial, 0.3-2 s) ahead of its first use.

    Also imports ``pyarrow.dataset``, which DuckDB imports on its first scan of an Arrow table.
    """
    import pyarrow.dataset  # noqa: F401

    _instance()


def _identity(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _cursor_on(alias: str) -> duckdb.DuckDBPyConnection:
    with _LOCK:  # _detach_unused iterates the same sets from other threads
        if _RETIRED:  # a swapped-out snapshot whose last cursor may be gone by now
            _detach_unused(keep={alias})
        cur = _instance().cursor()
        cur.execute(f"USE {alias}")
        _ALIASES[cur] = alias
        _USERS.setdefault(alias, weakref.WeakSet()).add(cur)
        return cur


# Read snapshots swapped out while a cursor still used them: detached (and their cache
# entries dropped) by the first cursor handed out after their last cursor is gone.
_RETIRED: set[str] = set()


def _detach_unused(keep: set[str]) -> None:
    """Detach read snapshots that are no longer the newest and have no live cursor.

    Each detached snapshot's entries leave every cache (``geo.cache.retire_snapshot``), so
    nothing derived from an old snapshot outlives its last reader.
    """
    current = {alias for _, alias in _SNAPSHOTS.values()} | keep
    for alias, users in list(_USERS.items()):
        if alias in current or not alias.startswith("snap"):
            continue
        if len(users):
            _RETIRED.add(alias)
            continue
        with contextlib.suppress(duckdb.Error):
            _instance().execute(f"DETACH {alias}")
        del _USERS[alias]
        _RETIRED.discard(alias)
        retire_snapshot(alias)


def drop_memory_table(name: str) -> None:
    """Drop table ``name`` of this process's in-memory database (a per-snapshot structure a cache let go).

    Uses a cursor of its own: a cursor derived from a reader's cursor is closed with it.
    """
    with _LOCK:
        if _INSTANCE is None or _INSTANCE_PID != os.getpid():  # a forked child leaves the parent's alone
            return
        cur = _INSTANCE.cursor()
    try:
        cur.execute(f'DROP TABLE IF EXISTS memory.main."{name}"')
    finally:
        cur.close()


def _attach(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    read_only: bool,
    prefix: str = "db",
    options: str = "",
) -> str:
    alias = f"{prefix}{next(_alias_counter)}"
    opts = ", ".join(o for o in ("READ_ONLY" if read_only else "", options) if o)
    quoted = path.as_posix().replace("'", "''")  # a path is a SQL string literal here
    con.execute(f"ATTACH '{quoted}' AS {alias}" + (f" ({opts})" if opts else ""))
    con.execute(f"USE {alias}")
    return alias


def connect(
    path: str | os.PathLike[str] | None = None, read_only: bool = True
) -> duckdb.DuckDBPyConnection:
    """A connection to the newest snapshot of the database file, spatial loaded; read-only unless asked.

    Read-only connections are cursors on the process-wide instance: cheap, and a file
    swapped in by a writer is attached anew. Writers should use ``writer()`` instead.
    """
    db = resolve_db_path(path)
    if not read_only:
        con = _new_instance()
        try:
            alias = _attach(con, db, read_only=False)
        except duckdb.Error as exc:
            con.close()
            raise StoreError(f"cannot open database {db}: {exc}") from exc
        _ALIASES[con] = alias
        return con
    with _LOCK:
        try:
            identity = _identity(db)
        except FileNotFoundError:
            msg = f"database {db} not found; build it with `onemap demo` or `onemap ingest LAYER FILE`"
            raise StoreError(msg) from None
        known = _SNAPSHOTS.get(db)
        if known is None or known[0] != identity:
            inst = _instance()
            try:
                alias = _attach(inst, db, read_only=True, prefix="snap")
            except duckdb.Error as exc:
                raise StoreError(f"cannot open database {db}: {exc}") from exc
            inst.execute("USE memory")
            _SNAPSHOTS[db] = (identity, alias)
            _USERS.setdefault(alias, weakref.WeakSet())
            _detach_unused(keep={alias})
        return _cursor_on(_SNAPSHOTS[db][1])


def cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A cursor (for another thread) on the same attached database as ``con``."""
    alias = _ALIASES.get(con)
    if alias and alias.startswith("snap"):
        return _cursor_on(alias)
    cur = con.cursor()
    if alias:
        cur.execute(f"USE {alias}")
        _ALIASES[cur] = alias
    return cur


# --------------------------------------------------------------------------- writing


@contextlib.contextmanager
def writer(
    path: str | os.PathLike[str] | None = None, fresh: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Write a new snapshot and swap it in atomically when the block ends without error.

    ``fresh`` starts from an empty database instead of a copy of the current one. Writers
    are serialised by an exclusive lock on ``<db>.lock``; readers are never blocked.
    """
    db = resolve_db_path(path)
    db.parent.mkdir(parents=True, exist_ok=True)
    lock_path = db.with_name(db.name + ".lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        remove_leftover_copies(db)
        tmp = db.with_name(f"{_temp_prefix(db)}{os.getpid()}-{threading.get_ident()}")
        copied = db.exists() and not fresh
        if copied:
            shutil.copyfile(db, tmp)
        control = _instance().cursor()
        alias = None
        con: duckdb.DuckDBPyConnection | None = None
        try:
            # A new file gets DuckDB's current storage format (native GEOMETRY storage:
            # points are stored as coordinates, several times cheaper to write than WKB).
            options = "" if copied else f"STORAGE_VERSION '{STORAGE_VERSION}'"
            alias = _attach(control, tmp, read_only=False, prefix="w", options=options)
            con = _instance().cursor()
            con.execute(f"USE {alias}")
            _ALIASES[con] = alias
            ensure_schema(con)
            yield con
            # The caller's cursor goes first: a result still held on it pins the file.
            con.close()
            control.execute(f"CHECKPOINT {alias}")
            control.execute("USE memory")
            control.execute(f"DETACH {alias}")
            alias = None
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, db)
            fsync_directory(db.parent)  # the rename itself survives a power cut
        except BaseException:
            if con is not None:
                with contextlib.suppress(Exception):
                    con.close()
            if alias is not None:
                with contextlib.suppress(Exception):
                    control.execute("USE memory")
                    control.execute(f"DETACH {alias}")
            for path in (tmp, tmp.with_name(tmp.name + ".wal")):
                path.unlink(missing_ok=True)
            raise
        finally:
            with contextlib.suppress(Exception):
                control.close()
            fcntl.flock(lock, fcntl.LOCK_UN)


def _temp_prefix(db: Path) -> str:
    """Name prefix of the writers' temporary copies of ``db`` (``.<name>.tmp-<pid>-<thread>``)."""
    return f".{db.name}.tmp-"


def remove_leftover_copies(db: Path) -> list[Path]:
    """Remove temporary copies (and their WAL) of ``db`` left by writers that died mid-write.

    Call it only with the writer lock held: a live writer holds that lock from before its
    copy exists until after it is renamed or removed, and the kernel releases the lock of
    a killed process, so every copy found then belongs to a writer that is gone. Returns
    the removed paths.
    """
    removed = []
    for path in db.parent.glob(glob.escape(_temp_prefix(db)) + "*"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed


def fsync_directory(directory: Path) -> None:
    """Flush a directory's entries (a rename is durable only once its directory is synced)."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def layer_columns(spec: LayerSpec) -> list[tuple[str, str]]:
    """(column, DuckDB type) of a layer table: fields, coordinates, H3 cells, geometry, provenance."""
    cols = [(f.name, f.sql_type) for f in spec.fields]
    cols += [("lon", "DOUBLE"), ("lat", "DOUBLE")]
    cols += [(h3index.cell_column(r), "UBIGINT") for r in POINT_RESOLUTIONS]
    cols += [(code_column(r), "UINTEGER") for r in CODED_RESOLUTIONS]
    if spec.geometry == "polygon":
        cols.append(("area_km2", "DOUBLE"))
    cols += [
        ("geom", "GEOMETRY"),
        ("source_file", "VARCHAR"),
        ("source_row", "BIGINT"),
        ("ingested_at", "TIMESTAMP"),
    ]
    return cols


def code_column(res: int) -> str:
    """Name of the column holding the dense number of a row's H3 cell at ``res`` (see CODES_TABLE)."""
    return f"h3n_r{res}"


def cover_table(layer: str) -> str:
    """Name of a polygon layer's H3 cover side table."""
    return f"{layer}_h3cover"


def interior_table(layer: str) -> str:
    """Name of a polygon layer's side table of H3 cells lying entirely inside each polygon.

    Written with the polygons, read by exact point-in-polygon assignment (``geo.assign``):
    points in these cells need no geometric test.
    """
    return f"{layer}_h3interior"


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create every layer table, cover table and meta table that does not exist yet."""
    for spec in LAYERS.values():
        cols = ", ".join(f'"{n}" {t}' for n, t in layer_columns(spec))
        con.execute(f"CREATE TABLE IF NOT EXISTS {spec.name} ({cols})")
        if spec.geometry == "polygon":
            con.execute(
                f"CREATE TABLE IF NOT EXISTS {cover_table(spec.name)} (id VARCHAR, res UTINYINT, cell UBIGINT)"
            )
            con.execute(
                f"CREATE TABLE IF NOT EXISTS {interior_table(spec.name)} (id VARCHAR, cell UBIGINT)"
            )
    for name, cols in META_TABLES.items():
        con.execute(f"CREATE TABLE IF NOT EXISTS {name} ({cols})")
    # Columns added after the first release: older files get them on their next write.
    con.execute("ALTER TABLE rejected ADD COLUMN IF NOT EXISTS detail VARCHAR")
    for spec in LAYERS.values():
        if not has_cell_codes(con, spec.name):
            for res in CODED_RESOLUTIONS:
                con.execute(f'ALTER TABLE {spec.name} ADD COLUMN IF NOT EXISTS "{code_column(res)}" UINTEGER')
            fill_cell_codes(con, spec.name)


def has_cell_codes(con: duckdb.DuckDBPyConnection, layer: str) -> bool:
    """Whether ``layer`` in the database ``con`` reads has the dense cell-number columns
    (files written before they existed get them on their next write)."""
    row = con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = current_schema() AND table_name = ? AND column_name = ?",
        [layer, code_column(CODED_RESOLUTIONS[-1])],
    ).fetchone()
    return bool(row and row[0])


def _register_new_codes(con: duckdb.DuckDBPyConnection, source: str) -> None:
    """Give every cell of ``source`` (a table or view with h3_r* columns) without a number
    the next free numbers of its resolution."""
    for res in CODED_RESOLUTIONS:
        col = h3index.cell_column(res)
        con.execute(
            f"""INSERT INTO {CODES_TABLE}
            SELECT ?::UTINYINT, cell,
                   (SELECT coalesce(max(code), 0) FROM {CODES_TABLE} WHERE res = ?) + row_number() OVER (ORDER BY cell)
            FROM (SELECT DISTINCT "{col}" AS cell FROM {source} WHERE "{col}" IS NOT NULL
                  EXCEPT SELECT cell FROM {CODES_TABLE} WHERE res = ?)""",
            [res, res, res],
        )


def fill_cell_codes(con: duckdb.DuckDBPyConnection, layer: str) -> None:
    """Number the cells of ``layer``'s rows that have none yet (older files, bulk inserts).

    ``write_layer`` numbers the rows it writes; this is for tables filled another way.
    """
    _register_new_codes(con, layer)
    sets = ", ".join(
        f'"{code_column(r)}" = (SELECT code FROM {CODES_TABLE} d WHERE d.res = {r} AND d.cell = {layer}."{h3index.cell_column(r)}")'
        for r in CODED_RESOLUTIONS
    )
    con.execute(f'UPDATE {layer} SET {sets} WHERE "{code_column(CODED_RESOLUTIONS[-1])}" IS NULL')


def _with_cell_codes(con: duckdb.DuckDBPyConnection, rows: pa.Table) -> pa.Table:
    """``rows`` with the dense number of their cell at each of CODED_RESOLUTIONS; cells seen
    for the first time get the next free numbers (recorded in CODES_TABLE)."""
    for res in CODED_RESOLUTIONS:
        column = rows.column(h3index.cell_column(res))
        valid = np.asarray(pc.is_valid(column).to_numpy(zero_copy_only=False), dtype=bool)
        cells = np.asarray(pc.fill_null(column, 0).to_numpy(), dtype=np.uint64)
        labels, uniques = pd.factorize(cells)  # hashing: a few distinct cells among many rows
        uniques = np.asarray(uniques, dtype=np.uint64)
        known = con.execute(
            f"SELECT cell, code FROM {CODES_TABLE} WHERE res = ? ORDER BY cell", [res]
        ).fetchnumpy()
        known_cells = np.asarray(known["cell"], dtype=np.uint64)
        known_codes = np.asarray(known["code"], dtype=np.int64)
        pos = np.searchsorted(known_cells, uniques)
        found = (pos < len(known_cells)) & (
            known_cells[np.minimum(pos, max(len(known_cells) - 1, 0))] == uniques
        ) if len(known_cells) else np.zeros(len(uniques), dtype=bool)
        new = ~found & (uniques != 0)
        codes = np.zeros(len(uniques), dtype=np.int64)
        codes[found] = known_codes[pos[found]]
        if new.any():
            order = np.argsort(uniques[new])
            fresh = np.empty(int(new.sum()), dtype=np.int64)
            fresh[order] = known_codes.max(initial=0) + 1 + np.arange(len(order))
            codes[new] = fresh
            con.register(
                "_new_codes",
                pa.table({"cell": pa.array(uniques[new]), "code": pa.array(fresh, type=pa.uint32())}),
            )
            try:
                con.execute(f"INSERT INTO {CODES_TABLE} SELECT ?::UTINYINT, cell, code FROM _new_codes", [res])
            finally:
                con.unregister("_new_codes")
        per_row = codes[labels]
        rows = rows.append_column(
            code_column(res),
            pa.array(per_row.astype(np.uint32), mask=~valid | (per_row == 0), type=pa.uint32()),
        )
    return rows


# Cells by their dense number, per (read snapshot alias, res): a snapshot never changes and
# its alias is never reused in a process. None: a file written before the numbers existed.
# Bounded by entries and bytes (``cache_max_mb``); a snapshot's tables go when it is detached.
_CODE_CELLS: BoundedCache[np.ndarray | None] = BoundedCache("cell numbers by code", max_entries=16)


def _cells_by_code(con: duckdb.DuckDBPyConnection, res: int) -> np.ndarray | None:
    """Array mapping number → cell (uint64) of the read snapshot ``con`` reads, kept per snapshot."""
    alias = _ALIASES.get(con)
    if not alias or not alias.startswith("snap"):
        raise KeyError(alias)  # a writer's numbers can change: not kept
    found, held = _CODE_CELLS.lookup(alias, res)
    if found:
        return held
    try:
        got = con.execute(f"SELECT code, cell FROM {CODES_TABLE} WHERE res = ?", [res]).fetchnumpy()
        table: np.ndarray | None = np.zeros(int(got["code"].max(initial=0)) + 1, dtype=np.uint64)
        table[np.asarray(got["code"], dtype=np.int64)] = np.asarray(got["cell"], dtype=np.uint64)
    except duckdb.CatalogException:
        table = None
    with _LOCK:
        if alias in _USERS:  # not detached meanwhile (its entries would never be dropped)
            _CODE_CELLS.put(alias, res, table)
    return table


def cell_aggregates(
    con: duckdb.DuckDBPyConnection,
    layer: str,
    res: int,
    aggregates: str,
    where: str,
    params: Sequence[Any] = (),
) -> dict[str, np.ndarray]:
    """``aggregates`` per H3 cell at ``res`` over the rows of ``layer`` passing ``where``.

    Returns numpy columns: ``cell`` (uint64) and one per aggregate, in no order. At the
    CODED_RESOLUTIONS the rows are grouped by the cell's dense number (a perfect hash
    table) and the numbers turned back into cells; a file written before the numbers
    existed (read-only, so not yet migrated) is grouped by the cell itself.
    """
    cell = h3index.cell_column(res)
    plain = (
        f'SELECT "{cell}" AS cell, {aggregates} FROM {layer} '
        f'WHERE ({where}) AND "{cell}" IS NOT NULL GROUP BY 1'
    )
    if res not in CODED_RESOLUTIONS:
        return con.execute(plain, list(params)).fetchnumpy()
    code = code_column(res)
    by_code = (
        f'SELECT "{code}" AS code, {aggregates} FROM {layer} '
        f'WHERE ({where}) AND "{code}" IS NOT NULL GROUP BY 1'
    )
    try:
        cells = _cells_by_code(con, res)
    except KeyError:  # a writer: numbers joined back in SQL
        joined = (
            f"WITH c AS ({by_code}) SELECT d.cell AS cell, c.* EXCLUDE (code) FROM c "
            f"JOIN {CODES_TABLE} d ON d.res = {res} AND d.code = c.code"
        )
        return con.execute(joined, list(params)).fetchnumpy()
    if cells is None:
        return con.execute(plain, list(params)).fetchnumpy()
    try:
        got = con.execute(by_code, list(params)).fetchnumpy()
    except duckdb.BinderException:  # a layer table without the numbers
        return con.execute(plain, list(params)).fetchnumpy()
    codes = np.asarray(got.pop("code"), dtype=np.int64)
    return {"cell": cells[codes], **got}


def _incoming(spec: LayerSpec, frame: pd.DataFrame | pa.Table) -> pa.Table:
    """Rows to insert as one Arrow table: the fields the frame has, lon/lat, H3 cells,
    area and WKB (polygons), source file and row. Absent fields are left to NULL.

    Point layers may come as an Arrow table or a plain frame with ``lon``/``lat`` columns
    (no shapely objects: the geometry is built in SQL with ST_Point) and with precomputed
    ``h3_r*`` columns.
    """
    if isinstance(frame, pa.Table):
        if spec.geometry != "point":
            raise StoreError(f"write_layer({spec.name!r}): a polygon layer needs a GeoDataFrame")
        names = set(frame.column_names)
        cols: dict[str, Any] = {
            f.name: frame.column(f.name) for f in spec.fields if f.name in names
        }
        if "lon" not in names or "lat" not in names:
            raise StoreError(f"write_layer({spec.name!r}): a point table needs lon/lat columns")
        lon = np.asarray(frame.column("lon").to_numpy(), dtype=np.float64)
        lat = np.asarray(frame.column("lat").to_numpy(), dtype=np.float64)
        get = frame.column
    else:
        has_geometry = isinstance(frame, gpd.GeoDataFrame) and frame._geometry_column_name in frame
        geoms = frame.geometry.to_numpy() if has_geometry else None
        names = {str(c) for c in frame.columns}
        cols = {f.name: _arrow_column(frame[f.name]) for f in spec.fields if f.name in names}
        if spec.geometry == "point" and not has_geometry:
            if "lon" not in names or "lat" not in names:
                raise StoreError(
                    f"write_layer({spec.name!r}): a point frame needs a geometry or lon/lat columns"
                )
            lon = frame["lon"].to_numpy(dtype=np.float64)
            lat = frame["lat"].to_numpy(dtype=np.float64)
        elif spec.geometry == "point":
            lon, lat = shapely.get_x(geoms), shapely.get_y(geoms)
        else:
            if not has_geometry:
                raise StoreError(
                    f"write_layer({spec.name!r}): a polygon layer needs a GeoDataFrame"
                )
            reps = shapely.point_on_surface(geoms)
            lon, lat = shapely.get_x(reps), shapely.get_y(reps)

        def get(name: str) -> pa.Array:
            return _arrow_column(frame[name])

    cols["lon"] = pa.array(np.asarray(lon, dtype=np.float64))
    cols["lat"] = pa.array(np.asarray(lat, dtype=np.float64))
    cell_names = [h3index.cell_column(r) for r in POINT_RESOLUTIONS]
    if all(c in names for c in cell_names):
        for c in cell_names:
            cols[c] = pc.cast(get(c), pa.uint64())
    else:
        cells = h3index.index_points(
            np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64), POINT_RESOLUTIONS
        )
        for res, arr in cells.items():
            cols[h3index.cell_column(res)] = pa.array(arr)
    if spec.geometry == "polygon":
        cols["area_km2"] = pa.array(
            gpd.GeoSeries(geoms, crs=4326).to_crs(equal_area_crs(lon, lat)).area.to_numpy() / 1e6
        )
        cols["geom_wkb"] = pa.array(shapely.to_wkb(geoms), type=pa.binary())
    for name in ("source_file", "source_row"):
        if name in names:
            cols[name] = get(name)
    table = pa.table(cols)
    # Batches of one DuckDB row group: DuckDB scans and inserts them in parallel.
    return pa.Table.from_batches(
        table.to_batches(max_chunksize=ROW_GROUP_ROWS), schema=table.schema
    )


def _arrow_column(col: pd.Series) -> pa.Array | pa.ChunkedArray:
    """A pandas column as Arrow for DuckDB to scan natively (strings stay Arrow strings).

    DuckDB's pandas scan turns Arrow-backed string columns into Python objects first,
    which costs seconds per million rows; an Arrow table is read without conversion.
    """
    if col.dtype == object and col.isna().all():
        return pa.nulls(len(col))
    return pa.array(col, from_pandas=True)


def constant_text(value: str, n: int) -> pa.DictionaryArray:
    """``n`` copies of one string as a dictionary array (no n Python strings)."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int32)), pa.array([value]))


def point_wkb(lon: np.ndarray | pd.Series, lat: np.ndarray | pd.Series) -> pa.Array:
    """ISO WKB points built in numpy (21 bytes each: byte order, type 1, x, y); no shapely objects."""
    n = len(lon)
    rec = np.empty(n, dtype=[("order", "u1"), ("type", "<u4"), ("x", "<f8"), ("y", "<f8")])
    rec["order"], rec["type"] = 1, 1
    rec["x"], rec["y"] = np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    offsets = pa.array(np.arange(0, 21 * (n + 1), 21, dtype=np.int32))
    return pa.BinaryArray.from_buffers(
        pa.binary(), n, [None, offsets.buffers()[1], pa.py_buffer(rec.tobytes())]
    )


def equal_area_crs(lon: np.ndarray, lat: np.ndarray) -> str:
    """A Lambert azimuthal equal-area projection centred on the data (for km²)."""
    lon0 = float(np.nanmean(lon)) if len(lon) else 0.0
    lat0 = float(np.nanmean(lat)) if len(lat) else 0.0
    return f"+proj=laea +lat_0={lat0:.4f} +lon_0={lon0:.4f} +datum=WGS84 +units=m +no_defs"


def local_metric_crs(lon: np.ndarray, lat: np.ndarray) -> str:
    """A transverse Mercator projection centred on the data (metres, for distances)."""
    lon0 = float(np.nanmean(lon)) if len(lon) else 0.0
    lat0 = float(np.nanmean(lat)) if len(lat) else 0.0
    return f"+proj=tmerc +lat_0={lat0:.4f} +lon_0={lon0:.4f} +k=1 +datum=WGS84 +units=m +no_defs"


def write_layer(
    con: duckdb.DuckDBPyConnection,
    layer: str,
    frame: gpd.GeoDataFrame | pd.DataFrame | pa.Table,
    replace: bool = False,
) -> int:
    """Upsert validated rows of ``layer`` (canonical fields, WGS-84 geometry); returns rows written.

    Rows replace stored rows with the same ``id``. ``replace`` empties the table first.
    Computes lon/lat, H3 cells at res 7-10 (unless given), polygon area and the H3 cover
    of polygons. Point layers may be given as an Arrow table with ``lon``/``lat``.
    One INSERT from Arrow; the point geometry is built in SQL (``ST_Point``).
    """
    spec = get_spec(layer)
    if isinstance(frame, pa.Table):
        missing_id = "id" not in frame.column_names or frame.column("id").null_count > 0
    else:
        missing_id = "id" not in frame or bool(frame["id"].isna().any())
    if missing_id:
        raise StoreError(
            f"write_layer({layer!r}): every row needs an id (ingestion assigns stable ids)"
        )
    rows = _with_cell_codes(con, _incoming(spec, frame))
    stored = {n for n, _ in layer_columns(spec)}
    names = [c for c in rows.column_names if c in stored]
    select = ", ".join(f'"{c}"' for c in names)
    geom_sql = "ST_Point(lon, lat)" if spec.geometry == "point" else "ST_GeomFromWKB(geom_wkb)"
    con.register("_incoming", rows)
    try:
        existing = con.execute(f"SELECT count(*) FROM {layer}").fetchone()[0]
        if existing and replace:
            con.execute(f"DELETE FROM {layer}")
        elif existing:  # an empty table (a first ingest) needs no delete
            con.execute(f"DELETE FROM {layer} WHERE id IN (SELECT id FROM _incoming)")
        order, rewrite = "", False
        if spec.sort_by and rows.num_rows:
            order = f' ORDER BY "{spec.sort_by}"'
            rewrite = existing > 0 and _needs_resort(con, layer, spec.sort_by)
        con.execute(
            f"INSERT INTO {layer} BY NAME SELECT {select}, {geom_sql} AS geom, "
            f"?::TIMESTAMP AS ingested_at FROM _incoming{order}",
            [datetime.now()],
        )
        if spec.geometry == "polygon":
            _write_cover(con, layer, frame, replace)
        if rewrite:
            con.execute(
                f"CREATE OR REPLACE TABLE {layer} AS SELECT * FROM {layer} ORDER BY {spec.sort_by}"
            )
    finally:
        con.unregister("_incoming")
    return rows.num_rows


def _needs_resort(
    con: duckdb.DuckDBPyConnection, layer: str, column: str, source: str = "_incoming"
) -> bool:
    """Whether appending ``source`` (sorted) after the stored rows would leave the table unsorted.

    The stored rows are sorted with NULLs last; the new ones keep that order if none of the
    stored values is NULL and the new values start at or after the last stored value.
    """
    kept, kept_nulls, last = con.execute(
        f'SELECT count(*), count(*) - count("{column}"), max("{column}") FROM {layer}'
    ).fetchone()
    if not kept:
        return False
    first = con.execute(f'SELECT min("{column}") FROM {source}').fetchone()[0]
    if kept_nulls:
        return True
    return first is not None and last is not None and first < last


# --------------------------------------------------------------------------- chunked writes
#
# A chunked ingest (``geo.ingest_stream``) appends each chunk's accepted point rows to a
# staging table in the writer's private copy (on disk, so DuckDB may evict it), and at the
# end moves them into the layer in one statement, as ``write_layer`` would the whole file:
# same deletes by id, same order, same cell numbers (new cells numbered in cell order).

STAGE_TABLE = "_ingest_stage"


def begin_stage(con: duckdb.DuckDBPyConnection, spec: LayerSpec) -> None:
    """Create the (empty) staging table of a chunked ingest of point layer ``spec``."""
    skip = {"geom", "ingested_at", *(code_column(r) for r in CODED_RESOLUTIONS)}
    cols = ", ".join(f'"{n}" {t}' for n, t in layer_columns(spec) if n not in skip)
    con.execute(f"CREATE OR REPLACE TABLE {STAGE_TABLE} ({cols})")


def stage_rows(con: duckdb.DuckDBPyConnection, spec: LayerSpec, rows: pa.Table) -> int:
    """Append one chunk's accepted rows (fields, lon/lat, H3 cells, source) to the staging table."""
    incoming = _incoming(spec, rows)
    con.register("_chunk", incoming)
    try:
        con.execute(f"INSERT INTO {STAGE_TABLE} BY NAME SELECT * FROM _chunk")
    finally:
        con.unregister("_chunk")
    return incoming.num_rows


def staged_ids(con: duckdb.DuckDBPyConnection, ids: pa.Array, where: np.ndarray) -> np.ndarray:
    """Mask of the rows (among ``where``) whose id is already in the staging table."""
    out = np.zeros(len(ids), dtype=bool)
    pos = np.flatnonzero(where)
    if not len(pos):
        return out
    probe = pa.table({"id": ids.filter(pa.array(where)), "p": pa.array(pos)})
    con.register("_probe", probe)
    try:
        hits = con.execute(
            f"SELECT p FROM _probe WHERE id IN (SELECT id FROM {STAGE_TABLE})"
        ).fetchnumpy()["p"]
    finally:
        con.unregister("_probe")
    out[np.asarray(hits, dtype=np.int64)] = True
    return out


def merge_stage(con: duckdb.DuckDBPyConnection, spec: LayerSpec) -> int:
    """Move the staged rows into the layer (upsert by id, sorted like ``write_layer``); returns rows.

    New cells are numbered over all staged rows at once (in cell order, as ``write_layer``
    numbers a whole file); the rows are then read back in batches, in staging (file) order
    or sorted by ``spec.sort_by``, given their numbers in numpy and inserted, so neither a
    join (which would not keep the order) nor the whole table passes through memory.
    """
    layer = spec.name
    n = con.execute(f"SELECT count(*) FROM {STAGE_TABLE}").fetchone()[0]
    if n:
        stored = {c for c, _ in layer_columns(spec)}
        names = [
            str(r[0])
            for r in con.execute(f"DESCRIBE {STAGE_TABLE}").fetchall()
            if str(r[0]) in stored
        ]
        existing = con.execute(f"SELECT count(*) FROM {layer}").fetchone()[0]
        _register_new_codes(con, STAGE_TABLE)
        if existing:
            con.execute(f"DELETE FROM {layer} WHERE id IN (SELECT id FROM {STAGE_TABLE})")
        order, rewrite = "", False
        if spec.sort_by:
            order = f' ORDER BY "{spec.sort_by}"'
            rewrite = existing > 0 and _needs_resort(con, layer, spec.sort_by, STAGE_TABLE)
        _insert_staged(con, layer, names, order)
        if rewrite:
            con.execute(
                f"CREATE OR REPLACE TABLE {layer} AS SELECT * FROM {layer} ORDER BY {spec.sort_by}"
            )
    con.execute(f"DROP TABLE {STAGE_TABLE}")
    return int(n)


def _insert_staged(
    con: duckdb.DuckDBPyConnection, layer: str, names: list[str], order: str
) -> None:
    """Insert the staged rows into ``layer`` batch by batch, with their cell numbers."""
    known = {}
    for res in CODED_RESOLUTIONS:
        got = con.execute(
            f"SELECT cell, code FROM {CODES_TABLE} WHERE res = ? ORDER BY cell", [res]
        ).fetchnumpy()
        known[res] = (np.asarray(got["cell"], dtype=np.uint64), np.asarray(got["code"], dtype=np.int64))
    select = ", ".join(f'"{c}"' for c in names)
    reader_con = cursor(con)
    try:
        batches = reader_con.execute(f"SELECT {select} FROM {STAGE_TABLE}{order}").to_arrow_reader(
            ROW_GROUP_ROWS
        )
        now = datetime.now()
        for batch in batches:
            rows = pa.Table.from_batches([batch])
            for res in CODED_RESOLUTIONS:
                cells_known, codes_known = known[res]
                column = rows.column(h3index.cell_column(res))
                valid = np.asarray(pc.is_valid(column).to_numpy(zero_copy_only=False), dtype=bool)
                cells = np.asarray(pc.fill_null(column, 0).to_numpy(), dtype=np.uint64)
                pos = np.minimum(np.searchsorted(cells_known, cells), max(len(cells_known) - 1, 0))
                codes = codes_known[pos] if len(cells_known) else np.zeros(len(cells), np.int64)
                rows = rows.append_column(
                    code_column(res), pa.array(codes.astype(np.uint32), mask=~valid, type=pa.uint32())
                )
            con.register("_staged", rows)
            try:
                con.execute(
                    f"INSERT INTO {layer} BY NAME SELECT *, ST_Point(lon, lat) AS geom, "
                    f"?::TIMESTAMP AS ingested_at FROM _staged",
                    [now],
                )
            finally:
                con.unregister("_staged")
    finally:
        reader_con.close()


@contextlib.contextmanager
def memory_bound(mb: float, spill: Path) -> Iterator[None]:
    """Cap this process's DuckDB instance at ``mb`` MB for a block, spilling to ``spill``
    (removed afterwards: put the writer inside the block, its checkpoint may spill too)."""
    con = _instance().cursor()
    old = con.execute(
        "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
    ).fetchone()
    spill.mkdir(parents=True, exist_ok=True)
    quoted = spill.as_posix().replace("'", "''")
    con.execute(f"SET memory_limit = '{int(mb)}MB'")
    con.execute(f"SET temp_directory = '{quoted}'")
    try:
        yield
    finally:
        with contextlib.suppress(duckdb.Error):
            con.execute(f"SET memory_limit = '{old[0]}'")
            prior = str(old[1] or "").replace("'", "''")
            con.execute(f"SET temp_directory = '{prior}'")
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


def _write_cover(
    con: duckdb.DuckDBPyConnection, layer: str, frame: gpd.GeoDataFrame, replace: bool
) -> None:
    table = cover_table(layer)
    ids = frame["id"].astype(str).to_numpy()
    parts = []
    for res in COVER_RESOLUTIONS:
        cover = h3index.polygon_cover(frame.geometry.to_numpy(), res)
        parts.append(
            pd.DataFrame(
                {"id": ids[cover["row"].to_numpy()], "res": np.uint8(res), "cell": cover["cell"]}
            )
        )
    covers = pd.concat(parts, ignore_index=True)
    from geo.assign import interior_cells  # geo.assign does not import the store

    cells, rows = interior_cells(frame.geometry.to_numpy(), dedupe=False)
    interior = pd.DataFrame({"id": ids[rows], "cell": cells})
    con.register("_cover", covers)
    con.register("_interior", interior)
    con.register("_ids", pd.DataFrame({"id": ids}))
    try:
        for name in (table, interior_table(layer)):
            if replace:
                con.execute(f"DELETE FROM {name}")
            else:
                con.execute(f"DELETE FROM {name} WHERE id IN (SELECT id FROM _ids)")
        con.execute(f"INSERT INTO {table} SELECT id, res, cell FROM _cover")
        con.execute(f"INSERT INTO {interior_table(layer)} SELECT id, cell FROM _interior")
    finally:
        con.unregister("_cover")
        con.unregister("_interior")
        con.unregister("_ids")


def write_table(
    con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, replace: bool = True
) -> None:
    """Write a plain frame to a meta table (rejected rows, notes, log, roads) by column name."""
    con.register("_frame", frame)
    try:
        if replace:
            con.execute(f"DELETE FROM {table}")
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _frame")
    finally:
        con.unregister("_frame")


def stable_ids(material: pd.DataFrame | pa.Table, prefix: str = "") -> np.ndarray:
    """Stable ids from row content: ``prefix`` + the first 16 hex digits of the MD5 of the values.

    Columns are taken in name order and joined with U+001F, so the id does not depend on
    the column order of a file, on the machine or on the DuckDB version (MD5 is fixed).
    """
    if isinstance(material, pa.Table):
        if not material.num_rows:
            return np.array([], dtype=object)
        cols = sorted(material.column_names)
        frame = pa.table(
            {f"c{i}": pc.cast(material.column(c), pa.string()) for i, c in enumerate(cols)}
        )
    else:
        if not len(material):
            return np.array([], dtype=object)
        cols = sorted(material.columns)
        frame = pd.DataFrame({f"c{i}": material[c].astype("str") for i, c in enumerate(cols)})
    joined = ", ".join(f"coalesce(c{i}, '')" for i in range(len(cols)))
    con = _plain().cursor()
    try:
        con.register("_material", frame)
        ids = con.execute(
            f"SELECT ? || left(md5(concat_ws(chr(31), {joined})), 16) FROM _material", [prefix]
        ).fetchnumpy()
    finally:
        con.close()
    return np.asarray(next(iter(ids.values())), dtype=object)


def repeated(values: pa.Array, where: np.ndarray | None = None) -> np.ndarray:
    """Mask of the rows whose value already occurred in an earlier row (only rows ``where`` count).

    DuckDB's parallel hash aggregate; the rows are located only when there are repeats.
    """
    n = len(values)
    out = np.zeros(n, dtype=bool)
    pos = np.arange(n, dtype=np.int64) if where is None else np.flatnonzero(where)
    if len(pos) < 2:
        return out
    vals = values if where is None or len(pos) == n else values.filter(pa.array(where))
    table = pa.table({"v": vals, "p": pos})
    # Batches of one row group: DuckDB aggregates them in parallel.
    table = pa.Table.from_batches(
        table.to_batches(max_chunksize=ROW_GROUP_ROWS), schema=table.schema
    )
    con = _plain().cursor()
    try:
        con.register("_values", table)
        distinct, total = con.execute("SELECT count(DISTINCT v), count(v) FROM _values").fetchone()
        if distinct < total:
            rows = con.execute(
                "SELECT p FROM (SELECT p, row_number() OVER (PARTITION BY v ORDER BY p) AS k "
                "FROM _values WHERE v IS NOT NULL) WHERE k > 1"
            ).fetchnumpy()["p"]
            out[np.asarray(rows, dtype=np.int64)] = True
    finally:
        con.close()
    return out


# --------------------------------------------------------------------------- reading


def read_layer(
    con: duckdb.DuckDBPyConnection,
    layer: str,
    where: str | None = None,
    params: Sequence[Any] | dict[str, Any] | None = None,
    columns: Sequence[str] | None = None,
) -> gpd.GeoDataFrame:
    """Rows of a layer as a GeoDataFrame in WGS-84; ``where`` is SQL with ``?`` parameters."""
    spec = get_spec(layer)
    cols = list(columns) if columns else [n for n, _ in layer_columns(spec) if n != "geom"]
    select = ", ".join(f'"{c}"' for c in cols)
    sql = f"SELECT {select}, ST_AsWKB(geom) AS _wkb FROM {layer}"
    if where:
        sql += f" WHERE {where}"
    df = con.execute(sql, params or []).df()
    geometry = from_wkb_column(df.pop("_wkb"))
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geometry, crs=4326), crs=4326)


def from_wkb_column(column: pd.Series) -> np.ndarray:
    """Shapely geometries from a column of WKB as DuckDB returns it (bytearray)."""
    return shapely.from_wkb(
        np.array([bytes(b) if b is not None else None for b in column], dtype=object)
    )


def query(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | dict[str, Any] | None = None
) -> pd.DataFrame:
    """Run a parameterised query and return a frame."""
    return con.execute(sql, params or []).df()


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Row count of every layer table; 0 for a layer a file made by an older onemap has no table for."""
    present = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() "
                                         "WHERE database_name = current_database() AND schema_name = 'main'").fetchall()}
    return {name: con.execute(f"SELECT count(*) FROM {name}").fetchone()[0] if name in present else 0
            for name in LAYERS}


class Reader:
    """Read-only access for long-running readers (the dashboard) that follows snapshot swaps.

    Each call checks the file's identity (inode, mtime, size) and reopens after a swap.
    Queries run on a per-thread cursor so Flask threads can read at once.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = resolve_db_path(path)
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._identity: tuple[int, int, int] | None = None
        self.version = 0

    def _file_identity(self) -> tuple[int, int, int]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise StoreError(
                f"database {self.path} not found; run `onemap demo` or `onemap ingest`"
            ) from None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def connection(self) -> duckdb.DuckDBPyConnection:
        """A cursor on the newest snapshot."""
        identity = self._file_identity()
        with self._lock:
            if identity != self._identity or self._con is None:
                # The old connection is left to the garbage collector: cursors in other
                # threads may still be reading the old snapshot, which stays valid.
                self._con = connect(self.path, read_only=True)
                self._identity = identity
                self.version += 1
            return cursor(self._con)

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> pd.DataFrame:
        """Run a parameterised query on the newest snapshot."""
        cur = self.connection()
        try:
            return cur.execute(sql, params or []).df()
        finally:
            cur.close()
