"""Partitioned GeoParquet: the exchange format of a province dataset (issue 17).

``export_partition`` writes every table of a district database as Parquet under
``OUT/<table>/district=<adcode>/`` (hazard and incident one level deeper, by month of
discovery / report: ``month=YYYY-MM/``), geometry as WKB with GeoParquet metadata (DuckDB's
spatial extension writes it for GEOMETRY columns), the stored H3 columns (``h3_r7`` …
``h3_r10``) kept. Several districts' exports in one directory form a province dataset that
Spark (``onemap province run``) reads with partition discovery. ``OUT/_districts/`` holds
one manifest row per district (adcode, name, row counts, export time).

``restore_district`` turns one district's partition back into a district database with
the same tables and column types, so the embedded ``geo/`` functions run on it unchanged.
"""

from __future__ import annotations

import re
import shutil
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

from geo import store
from geo.errors import StoreError, ValidationError

MONTH_COLUMNS: dict[str, str] = {"hazard": "discovered_at", "incident": "reported_at"}
MANIFEST = "_districts"
_ADCODE = re.compile(r"^[0-9A-Za-z_-]{1,32}$")


def district_of(con: duckdb.DuckDBPyConnection) -> tuple[str, str]:
    """(adcode, name) of the district a database holds: its admin area of level 区县."""
    row = con.execute(
        "SELECT adcode, name FROM admin_area WHERE level = '区县' ORDER BY adcode LIMIT 1"
    ).fetchone()
    if row is None or not row[0]:
        raise ValidationError("the database has no admin area of level 区县 with an adcode; pass --district")
    return str(row[0]), str(row[1])


def check_adcode(adcode: str) -> str:
    """The district key as used in paths: letters, digits, ``_`` or ``-``, at most 32."""
    if not isinstance(adcode, str) or not _ADCODE.match(adcode):
        raise ValidationError(f"district code {adcode!r} must be 1-32 letters, digits, _ or -")
    return adcode


def _tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def _quote(path: Path) -> str:
    return "'" + path.as_posix().replace("'", "''") + "'"


def _copy_table(con: duckdb.DuckDBPyConnection, table: str, out: Path, adcode: str) -> None:
    """One table into ``out/<table>/district=<adcode>/`` (and ``month=`` for hazard/incident)."""
    target = out / table / f"district={adcode}"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    month = MONTH_COLUMNS.get(table)
    if month:
        sql = (f"COPY (SELECT *, coalesce(strftime({month}, '%Y-%m'), 'none') AS month FROM \"{table}\") "
               f"TO {_quote(target)} (FORMAT parquet, PARTITION_BY (month), OVERWRITE_OR_IGNORE)")
    else:
        sql = f"COPY \"{table}\" TO {_quote(target / 'part-0.parquet')} (FORMAT parquet)"
    con.execute(sql)


def export_partition(db: str | Path, out: str | Path, district: str | None = None,
                     name: str | None = None) -> dict[str, int]:
    """Write every table of the district database ``db`` under ``out`` (see the module doc).

    ``district`` overrides the partition key (default: the 区县 admin area's adcode), ``name``
    the district's name. Returns row counts per table. A district already in ``out`` is replaced.
    """
    out = Path(out)
    con = store.connect(db)
    code, default_name = district_of(con) if district is None else (district, district)
    code = check_adcode(code)
    counts: dict[str, int] = {}
    for table in _tables(con):
        _copy_table(con, table, out, code)
        counts[table] = int(con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
    manifest = pd.DataFrame([{"district": code, "name": name or default_name,
                              "hazards": counts.get("hazard", 0), "tables": len(counts),
                              "exported_at": datetime.now().replace(microsecond=0)}])
    target = out / MANIFEST / f"district={code}"
    target.mkdir(parents=True, exist_ok=True)
    manifest.drop(columns="district").to_parquet(target / "part-0.parquet", index=False)
    return counts


def districts(data: str | Path) -> pd.DataFrame:
    """The manifest of a province dataset: ``district, name, hazards, tables, exported_at``."""
    root = Path(data) / MANIFEST
    if not root.is_dir():
        raise StoreError(f"{data} is not a province dataset (no {MANIFEST}/); write one with onemap export-partition")
    con = duckdb.connect()
    glob = _quote(root / "*" / "*.parquet")
    frame = con.execute(f"SELECT * FROM read_parquet({glob}, hive_partitioning = true) ORDER BY district").df()
    frame["district"] = frame["district"].astype(str)
    return frame


def restore_district(data: str | Path, district: str, db: str | Path) -> Path:
    """Rebuild district ``district`` of the province dataset ``data`` as the DuckDB file ``db``.

    Every table comes back with its columns and types (the partition columns dropped), so
    ``store.connect(db)`` and every ``geo/`` function read it as the district's own database.
    """
    district = check_adcode(district)
    data, db = Path(data), Path(db)
    if db.exists():
        db.unlink()
    con = store._new_instance()
    con.execute(f"ATTACH {_quote(db)} AS restored (STORAGE_VERSION '{store.STORAGE_VERSION}')")
    con.execute("USE restored")
    tables = sorted(p.name for p in data.iterdir() if p.is_dir() and not p.name.startswith("_"))
    for table in tables:
        part = data / table / f"district={district}"
        if not part.is_dir():
            continue
        files = _quote(part / "**" / "*.parquet")
        source = f"read_parquet({files}, hive_partitioning = true, hive_types_autocast = false)"
        extra = "district, month" if table in MONTH_COLUMNS else "district"
        order = " ORDER BY source_row" if table in MONTH_COLUMNS else ""
        described = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
        # GeoParquet tags the geometry with its CRS (OGC:CRS84); the store's columns are plain.
        # An empty table's file carries no GeoParquet metadata: its `geom` comes back as WKB bytes.
        geoms = [f"CAST({r[0]} AS GEOMETRY) AS {r[0]}" for r in described if str(r[1]).startswith("GEOMETRY")]
        geoms += [f"ST_GeomFromWKB({r[0]}) AS {r[0]}" for r in described if r[0] == "geom" and r[1] == "BLOB"]
        replace = f" REPLACE ({', '.join(geoms)})" if geoms else ""
        con.execute(f'CREATE TABLE "{table}" AS SELECT * EXCLUDE ({extra}){replace} FROM {source}{order}')
    con.execute("CHECKPOINT")
    con.execute("USE memory")
    con.execute("DETACH restored")
    con.close()
    return db
