"""Chunked ingest (issue 17 item 5): a file read, validated and written in chunks gives
exactly what a one-chunk ingest of it gives — rows, ids, rejections (reason, row number,
field, value, raw), notes, counts — on messy real files: GBK CSV with blank lines, quoted
newlines, malformed records, bad coordinates, duplicate ids across chunk borders and
rejected rows in every chunk; UTF-8 hazards (sorted layer, re-import over stored rows);
xlsx; GeoJSON. Chunks are made small with ``ingest_chunk_rows``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from geo import store
from geo.errors import ConfigError, ReadError
from geo.ingest import ingest_file
from geo.settings import Settings

CHUNK = 40


def messy_hydrant_rows(n: int) -> list[str]:
    """CSV lines of a messy hydrant register: every 7th row a bad coordinate, every 11th
    without id (stable content id), ids repeating 250 rows apart (across chunk borders),
    quoted newlines, value aliases, unknown values, blank lines and malformed records."""
    lines = ["编号,名称,状态,经度,纬度,管径,地址"]
    for i in range(n):
        lon = "abc" if i % 7 == 3 else ("1e999" if i % 29 == 5 else f"{121.1 + i * 0.0003:.6f}")
        ident = f"H{i % 250}" if i % 11 else ""
        addr = f'"路{i}号\n二楼, 东"' if i % 13 == 0 else f"路{i}号"
        status = "完好" if i % 5 == 0 else ("坏了" if i % 17 == 0 else "正常")
        pipe = "{{7*7}}" if i % 31 == 2 else "150"
        lines.append(f"{ident},栓{i} <script>,{status},{lon},31.0{i % 9},{pipe},{addr}")
        if i % 37 == 0:
            lines.append("")
        if i % 41 == 0:
            lines.append("x,' OR 1=1 --")
    return lines


def ingest(path: Path, db: Path, chunk_rows: int = 0, layer: str = "hydrant", **kw: Any):
    return ingest_file(layer, path, db=db, settings=Settings(ingest_chunk_rows=chunk_rows), **kw)


def contents(db: Path, layer: str) -> dict[str, Any]:
    """Everything an ingest stored: the layer's rows (all columns but the write time), the
    rejected rows, the notes and the log counts."""
    con = store.connect(db)
    try:
        rows = con.execute(
            f"SELECT * EXCLUDE (geom, ingested_at), ST_AsText(geom) AS wkt FROM {layer} ORDER BY id"
        ).fetchall()
        rejected = con.execute(
            "SELECT layer, file, row_number, field, reason, value, detail, raw FROM rejected"
        ).fetchall()
        notes = con.execute("SELECT layer, file, row_number, id, field, note FROM ingest_notes").fetchall()
        log = con.execute(
            "SELECT file, sha256, layer, crs, rows_read, accepted, rejected, repaired, note "
            "FROM ingest_log ORDER BY started_at"
        ).fetchall()
        codes = con.execute("SELECT * FROM h3_codes ORDER BY res, cell").fetchall()
    finally:
        con.close()
    return {
        "rows": rows,
        "rejected": sorted(rejected, key=repr),
        "notes": sorted(notes, key=repr),
        "log": log,
        "codes": codes,
    }


def same_result(one: Any, many: Any) -> None:
    for name in ("rows_read", "accepted", "rejected", "rejected_by_reason", "repaired",
                 "assigned_to_grid", "column_map", "unmapped_columns", "notes", "sha256",
                 "encoding", "crs", "fmt", "units"):
        assert getattr(one, name) == getattr(many, name), name


@pytest.fixture
def messy_csv(tmp_path: Path) -> Path:
    path = tmp_path / "消火栓.csv"
    path.write_bytes("\r\n".join(messy_hydrant_rows(300)).encode("gbk"))
    return path


def test_messy_gbk_csv_in_chunks_equals_one_chunk(tmp_path: Path, messy_csv: Path) -> None:
    one = ingest(messy_csv, tmp_path / "one.duckdb")
    many = ingest(messy_csv, tmp_path / "many.duckdb", chunk_rows=CHUNK)
    assert "chunks" not in one.stages and many.stages["chunks"] >= 5
    same_result(one, many)
    assert one.encoding == "gb18030" and one.accepted > 150
    reasons = one.rejected_by_reason
    for code in ("malformed_row", "bad_coordinates", "duplicate_id", "unknown_value", "bad_number"):
        assert reasons.get(code), code
    a, b = contents(tmp_path / "one.duckdb", "hydrant"), contents(tmp_path / "many.duckdb", "hydrant")
    assert a == b
    # rejected rows in every chunk, numbered as the user sees them in Excel
    numbers = sorted({r[2] for r in a["rejected"]})
    assert max(numbers) > 250 and all(x - y < CHUNK for x, y in zip(numbers[1:], numbers))
    first_bad = next(r for r in a["rejected"] if r[4] == "bad_coordinates")
    assert json.loads(first_bad[7])["经度"] in ("abc", "1e999")
    # the duplicate of an id first seen in an earlier chunk is the one rejected
    dup_rows = {r[2] for r in a["rejected"] if r[4] == "duplicate_id"}
    kept = {r[0]: r for r in a["rows"]}
    assert "H3" not in kept or all(n > 250 for n in dup_rows)
    assert all("<script>" in r[1] for r in a["rows"])  # stored as text, never run


def test_utf8_hazards_reimported_over_stored_rows(tmp_path: Path) -> None:
    """A sorted layer (discovered_at), malformed records without blank lines or quotes (row
    numbers from pyarrow, then the csv module), and a second file replacing stored ids."""
    def hazards(n: int, shift: int) -> str:
        lines = ["编号,隐患类别,隐患等级,状态,经度,纬度,发现时间,立案时间,结案时间,当场整改"]
        for i in range(n):
            day = (i * 7 + shift) % 28 + 1
            lat = "91" if i % 9 == 4 else f"31.{(i * 37) % 1000:03d}"
            lines.append(
                f"Z{i + shift},违规住人,一般,结案,121.2{i % 10},{lat},2024-01-{day:02d} 09:00,"
                f"2024-01-{day:02d} 10:00,2024-02-{day:02d} 10:00,否"
            )
            if i % 23 == 11:
                lines.append("Z,违规住人")
        return "\n".join(lines) + "\n"

    first, second = tmp_path / "h1.csv", tmp_path / "h2.csv"
    first.write_text(hazards(200, 0), encoding="utf-8")
    second.write_text(hazards(150, 100), encoding="utf-8")
    results = {}
    for name, chunk in (("one", 0), ("many", 30)):
        db = tmp_path / f"{name}.duckdb"
        r1 = ingest(first, db, chunk, layer="hazard")
        r2 = ingest(second, db, chunk, layer="hazard")
        results[name] = (r1, r2, contents(db, "hazard"))
    for a, b in zip(results["one"][:2], results["many"][:2]):
        same_result(a, b)
    assert results["one"][2] == results["many"][2]
    assert results["many"][1].stages["chunks"] >= 5
    assert results["one"][0].rejected_by_reason["malformed_row"] == 9
    stored = results["many"][2]["rows"]
    assert len(stored) == len({r[0] for r in stored})  # ids 100-199 replaced, not doubled
    con = store.connect(tmp_path / "many.duckdb")
    try:  # the layer is stored in discovered_at order, as a one-chunk write leaves it
        got = [r[0] for r in con.execute("SELECT discovered_at FROM hazard").fetchall()]
    finally:
        con.close()
    assert got == sorted(got)


def test_xlsx_in_chunks_equals_one_chunk(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "消火栓编号": [f"X{i % 90}" if i % 6 else None for i in range(200)],
            "状态": ["正常" if i % 8 else "可用" for i in range(200)],
            "经度": [121.2 + i * 1e-4 if i % 10 != 7 else "东经" for i in range(200)],
            "纬度": [31.05 if i % 15 else None for i in range(200)],
            "最近检查日期": pd.Timestamp("2024-03-05"),
        }
    )
    path = tmp_path / "hydrants.xlsx"
    with pd.ExcelWriter(path) as xl:
        pd.DataFrame([["松江区消火栓台账"]]).to_excel(xl, index=False, header=False, startrow=0)
        frame.to_excel(xl, index=False, startrow=2)
    one = ingest(path, tmp_path / "one.duckdb")
    many = ingest(path, tmp_path / "many.duckdb", chunk_rows=25)
    assert many.stages["chunks"] >= 6
    same_result(one, many)
    assert one.rejected_by_reason["duplicate_id"] > 0
    assert contents(tmp_path / "one.duckdb", "hydrant") == contents(tmp_path / "many.duckdb", "hydrant")


def test_geojson_in_chunks_equals_one_chunk(tmp_path: Path) -> None:
    features = []
    for i in range(120):
        coords = [121.3 + i * 1e-4, 31.1] if i % 9 != 2 else [999.0, 31.1]
        geometry = None if i % 19 == 3 else {"type": "Point", "coordinates": coords}
        props = {"name": f"栓{i}", "status": ["正常"] if i % 4 else "停止使用", "id": f"G{i % 100}"}
        features.append({"type": "Feature", "properties": props, "geometry": geometry})
    path = tmp_path / "hydrants.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False))
    one = ingest(path, tmp_path / "one.duckdb")
    many = ingest(path, tmp_path / "many.duckdb", chunk_rows=16)
    assert many.stages["chunks"] >= 7
    same_result(one, many)
    assert one.rejected > 10
    assert contents(tmp_path / "one.duckdb", "hydrant") == contents(tmp_path / "many.duckdb", "hydrant")


def test_a_broken_chunk_leaves_the_database_as_it_was(tmp_path: Path, messy_csv: Path) -> None:
    """A file that turns out unreadable mid-way (bytes that are not GB18030 at the end,
    with --encoding forced) fails with a clear error; the earlier snapshot stays."""
    db = tmp_path / "db.duckdb"
    ingest(messy_csv, db, chunk_rows=CHUNK)
    before = contents(db, "hydrant")
    bad = tmp_path / "bad.csv"
    bad.write_bytes(messy_csv.read_bytes() + b"\r\nH9,\xff\xfe\xff,x,1,2,3,4\r\n")
    with pytest.raises(ReadError):
        ingest(bad, db, chunk_rows=CHUNK)
    with pytest.raises(ReadError):
        ingest(bad, db, chunk_rows=CHUNK, encoding="ascii")
    assert contents(db, "hydrant") == before
    assert not list(tmp_path.glob(".db.duckdb.*"))  # no copy, no spill folder left


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("ingest_memory_mb = nan", "ingest_memory_mb"),
        ("ingest_memory_mb = -5", "ingest_memory_mb"),
        ("ingest_memory_mb = '{{7*7}}'", "ingest_memory_mb"),
        ("ingest_chunk_rows = -1", "ingest_chunk_rows"),
        ("ingest_chunk_rows = 2.5", "ingest_chunk_rows"),
        ("ingest_chunk_rows = \"' OR 1=1 --\"", "ingest_chunk_rows"),
    ],
)
def test_hostile_memory_settings_are_refused(tmp_path: Path, text: str, name: str) -> None:
    config = tmp_path / "onemap.toml"
    config.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=name):
        Settings.load(config)


def test_geoparquet_in_chunks_equals_one_chunk(tmp_path: Path) -> None:
    """GeoParquet read by record batches: same text values (integral floats, dates, nulls),
    geometries, CRS and rejections as the whole-file reader."""
    import geopandas as gpd
    import numpy as np
    import pyarrow.parquet as pq

    n = 150
    frame = gpd.GeoDataFrame(
        {
            "id": [f"P{i % 120}" if i % 13 else None for i in range(n)],
            "status": np.where(np.arange(n) % 6 == 1, "废弃", "正常"),
            "pipe_diameter_mm": [150.0 if i % 5 else (np.nan if i % 2 else 1e400) for i in range(n)],
            "last_inspection": pd.Timestamp("2024-03-05") + pd.to_timedelta(np.arange(n), "D"),
        },
        geometry=gpd.points_from_xy(
            [121.3 + i * 1e-4 if i % 17 != 4 else 200.0 for i in range(n)], [31.1] * n
        ),
        crs=4326,
    )
    path = tmp_path / "hydrants.parquet"
    frame.to_parquet(path, row_group_size=50)
    assert pq.ParquetFile(path).num_row_groups == 3
    one = ingest(path, tmp_path / "one.duckdb")
    many = ingest(path, tmp_path / "many.duckdb", chunk_rows=20)
    assert many.stages["chunks"] >= 7
    same_result(one, many)
    assert one.rejected_by_reason["bad_coordinates"] > 0
    assert contents(tmp_path / "one.duckdb", "hydrant") == contents(tmp_path / "many.duckdb", "hydrant")


def test_a_spill_folder_left_by_a_killed_ingest_is_removed(tmp_path: Path, messy_csv: Path) -> None:
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    left = tmp_path / f".db.duckdb.spill-{dead.stdout.strip()}"
    left.mkdir()
    (left / "duckdb_temp_block.tmp").write_bytes(b"x" * 1000)
    ingest(messy_csv, tmp_path / "db.duckdb", chunk_rows=CHUNK)
    assert not left.exists()
