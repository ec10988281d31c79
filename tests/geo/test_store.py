"""The DuckDB store: snapshot swap under concurrent readers, H3 cells, polygon covers, upserts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
import shapely

from geo import store
from geo.errors import StoreError

ROOT = Path(__file__).resolve().parents[2]
N_ROWS = 3000


def hydrants(version: str, n: int = N_ROWS, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "编号": [f"H{i:05d}" for i in range(n)],
            "名称": [f"栓{i}" for i in range(n)],
            "状态": "正常",
            "经度": rng.uniform(121.1, 121.4, n).round(6),
            "纬度": rng.uniform(30.9, 31.1, n).round(6),
            "备注": version,
        }
    )


READER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from geo import store
    db, stop = Path(sys.argv[1]), Path(sys.argv[2])
    reader = store.Reader(db)
    sql = ("SELECT count(*) AS n, count(DISTINCT remark) AS versions, min(remark) AS v, "
           "(SELECT count(*) FROM ingest_log) AS ingests FROM hydrant")
    seen, errors, fresh_seen = [], [], []
    while not stop.exists():
        try:
            row = reader.query(sql).iloc[0]
            seen.append([int(row.n), int(row.versions), row.v, int(row.ingests)])
            con = store.connect(db)          # a new connection in the same process after swaps
            r = con.execute(sql).fetchone()
            fresh_seen.append([int(r[0]), int(r[1]), r[2], int(r[3])])
            con.close()
        except Exception as exc:  # the test fails on any error
            errors.append(repr(exc))
    final = reader.query(sql).iloc[0]
    con = store.connect(db)
    final_fresh = con.execute(sql).fetchone()
    print(json.dumps({"seen": seen, "fresh": fresh_seen, "errors": errors, "version": reader.version,
                      "final": [int(final.n), final.v, int(final.ingests)], "final_fresh": [final_fresh[0], final_fresh[2], final_fresh[3]]}))
""")

WRITER = textwrap.dedent("""
    import sys
    from geo.ingest import ingest_file
    from geo.settings import Settings
    db, a, b, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    for i in range(rounds):
        ingest_file("hydrant", b if i % 2 == 0 else a, db=db, settings=Settings())
""")


def test_reader_in_another_process_sees_old_or_new_never_a_mix(
    tmp_path: Path, tmp_db: Path
) -> None:
    from geo.ingest import ingest_file
    from geo.settings import Settings

    a, b = tmp_path / "v1.csv", tmp_path / "v2.csv"
    hydrants("v1").to_csv(a, index=False)
    hydrants("v2", seed=1).to_csv(b, index=False)
    ingest_file("hydrant", a, db=tmp_db, settings=Settings())
    stop = tmp_path / "stop"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(tmp_db), str(stop)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)  # the reader is running before the first swap
    rounds = 6
    writer = subprocess.run(
        [sys.executable, "-c", WRITER, str(tmp_db), str(a), str(b), str(rounds)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert writer.returncode == 0, writer.stderr
    time.sleep(0.5)
    stop.touch()
    out, err = reader.communicate(timeout=120)
    assert reader.returncode == 0, err
    result = json.loads(out)
    assert result["errors"] == []
    observed = result["seen"] + result["fresh"]
    assert len(observed) > 10
    for n, versions, v, ingests in observed:
        # Every snapshot is whole: all rows of one file, one version, its own log count.
        assert (n, versions) == (N_ROWS, 1)
        assert v == ("v1" if ingests % 2 == 1 else "v2")
    assert {v for _, _, v, _ in observed} == {"v1", "v2"}  # swaps happened while reading
    assert result["version"] >= 2  # the long-lived Reader followed the swaps
    # After the last swap both the long-lived Reader and a new connection see the newest snapshot.
    last = "v1" if (1 + rounds) % 2 == 1 else "v2"
    assert result["final"] == [N_ROWS, last, 1 + rounds]
    assert result["final_fresh"] == [N_ROWS, last, 1 + rounds]


def test_failed_write_leaves_the_old_snapshot(tmp_db: Path) -> None:
    frame = gpd.GeoDataFrame(
        {"id": ["a"], "status": ["正常"]}, geometry=[shapely.Point(121.2, 31.0)], crs=4326
    )
    with store.writer(tmp_db) as con:
        store.write_layer(con, "hydrant", frame)
    with pytest.raises(RuntimeError), store.writer(tmp_db) as con:
        con.execute("DELETE FROM hydrant")
        raise RuntimeError("boom")
    reader = store.connect(tmp_db)
    assert reader.execute("SELECT count(*) FROM hydrant").fetchone()[0] == 1
    assert not list(tmp_db.parent.glob(".*.tmp-*"))


def test_connection_follows_swaps_in_the_same_process(tmp_db: Path) -> None:
    frame = gpd.GeoDataFrame(
        {"id": ["a"], "status": ["正常"]}, geometry=[shapely.Point(121.2, 31.0)], crs=4326
    )
    with store.writer(tmp_db) as con:
        store.write_layer(con, "hydrant", frame)
    old = store.connect(tmp_db)
    reader = store.Reader(tmp_db)
    assert reader.query("SELECT count(*) AS n FROM hydrant")["n"][0] == 1
    with store.writer(tmp_db) as con:
        store.write_layer(con, "hydrant", frame.assign(id="b"))
    # An open connection keeps reading its snapshot; a new one and the Reader see the new snapshot.
    assert old.execute("SELECT count(*) FROM hydrant").fetchone()[0] == 1
    assert store.connect(tmp_db).execute("SELECT count(*) FROM hydrant").fetchone()[0] == 2
    assert reader.query("SELECT count(*) AS n FROM hydrant")["n"][0] == 2


def test_stored_h3_cells_equal_h3_latlng_to_cell(tmp_db: Path) -> None:
    """res 10 is the point's own cell; res 7-9 are its parents (they nest, so counts roll up)."""
    rng = np.random.default_rng(42)
    n = 5000
    lon, lat = rng.uniform(73.5, 135.0, n), rng.uniform(18.0, 53.5, n)
    frame = gpd.GeoDataFrame(
        {"id": [f"p{i}" for i in range(n)], "status": "正常"},
        geometry=gpd.points_from_xy(lon, lat),
        crs=4326,
    )
    with store.writer(tmp_db) as con:
        store.write_layer(con, "hydrant", frame)
    df = store.query(
        store.connect(tmp_db), "SELECT lon, lat, h3_r7, h3_r8, h3_r9, h3_r10 FROM hydrant"
    )
    sample = df.sample(500, random_state=1)
    own = [h3.latlng_to_cell(la, lo, 10) for lo, la in zip(sample.lon, sample.lat, strict=True)]
    assert [int(c) for c in sample["h3_r10"].to_numpy(dtype=np.uint64)] == [
        h3.str_to_int(c) for c in own
    ]
    for res in (7, 8, 9):
        stored = [
            int(c) for c in sample[f"h3_r{res}"].to_numpy(dtype=np.uint64)
        ]  # exact Python ints
        assert stored == [h3.str_to_int(h3.cell_to_parent(c, res)) for c in own]
        # The parent is the point's own cell at that resolution for the large majority of points.
        direct = [
            h3.str_to_int(h3.latlng_to_cell(la, lo, res))
            for lo, la in zip(sample.lon, sample.lat, strict=True)
        ]
        assert np.mean(np.array(stored, dtype=object) == np.array(direct, dtype=object)) > 0.85


def test_polygon_cover_side_table_and_upsert(tmp_db: Path) -> None:
    polys = [shapely.box(121.20, 31.00, 121.22, 31.02), shapely.box(121.22, 31.00, 121.24, 31.02)]
    grid = gpd.GeoDataFrame({"id": ["g1", "g2"], "name": ["一", "二"]}, geometry=polys, crs=4326)
    with store.writer(tmp_db) as con:
        store.write_layer(con, "grid", grid)
    con = store.connect(tmp_db)
    cover = store.query(con, "SELECT id, res, cell FROM grid_h3cover")
    for gid, poly in zip(["g1", "g2"], polys, strict=True):
        for res in (9, 10):
            got = {int(c) for c in cover[(cover.id == gid) & (cover.res == res)]["cell"]}
            want = {
                h3.str_to_int(c)
                for c in h3.h3shape_to_cells(h3.geo_to_h3shape(poly.__geo_interface__), res)
            }
            assert got == want and got
    # Cells entirely inside each grid (for exact assignment) lie inside its polygon.
    interior = store.query(con, "SELECT id, cell FROM grid_h3interior")
    from geo import h3index

    hexes = h3index.cell_polygons(interior["cell"].to_numpy(dtype=np.uint64))
    owners = np.array([polys[0] if i == "g1" else polys[1] for i in interior["id"]], dtype=object)
    assert len(interior) > 50 and shapely.within(hexes, owners).all()
    # Upserting g1 with a smaller polygon replaces its row and its cover, not g2's.
    with store.writer(tmp_db) as w:
        store.write_layer(
            w, "grid", grid.iloc[:1].set_geometry([shapely.box(121.20, 31.00, 121.21, 31.01)])
        )
    con = store.connect(tmp_db)
    assert store.query(con, "SELECT count(*) AS n FROM grid")["n"][0] == 2
    counts = store.query(
        con, "SELECT id, count(*) AS n FROM grid_h3cover WHERE res = 10 GROUP BY id ORDER BY id"
    )
    assert counts["n"][0] < counts["n"][1]


def test_missing_database_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not found; build it with `onemap demo`"):
        store.connect(tmp_path / "none.duckdb")


def test_a_database_path_with_a_quote_opens(tmp_path):
    """Paths come from --db / ONEMAP_DB as users type them; a quote must not break the SQL."""
    import geopandas as gpd

    from geo import store

    db = tmp_path / "o'brien's 消防.duckdb"
    frame = gpd.GeoDataFrame({"id": ["h1"], "status": ["正常"]},
                             geometry=gpd.points_from_xy([121.2], [31.0]), crs=4326)
    with store.writer(db) as con:
        store.write_layer(con, "hydrant", frame)
    assert store.Reader(db).query("SELECT id FROM hydrant")["id"].tolist() == ["h1"]


def test_a_long_running_reader_does_not_accumulate_state(copy_demo_db):
    """The wall display queries every few seconds for weeks: per-query bookkeeping must not grow."""
    import gc

    from geo import store

    reader = store.Reader(copy_demo_db)
    for _ in range(50):
        reader.query("SELECT count(*) FROM hazard")
    gc.collect()
    before = len(store._ALIASES)
    for _ in range(500):
        reader.query("SELECT count(*) FROM hazard")
    gc.collect()
    assert len(store._ALIASES) <= before + 5


def _points(ids: range, lon0: float, seed: int) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    n = len(ids)
    return gpd.GeoDataFrame(
        {"id": [f"h{i}" for i in ids], "status": "正常"},
        geometry=gpd.points_from_xy(rng.uniform(lon0, lon0 + 0.1, n), rng.uniform(31.0, 31.1, n)),
        crs=4326,
    )


def _plain_counts(con, layer: str, res: int) -> dict[int, int]:
    rows = con.execute(f"SELECT h3_r{res}, count(*) FROM {layer} GROUP BY 1").fetchall()
    return {int(c): int(n) for c, n in rows}


def test_cell_numbers_are_dense_stable_and_count_like_the_cells(tmp_db: Path) -> None:
    """Every stored row's cell number maps back to its own cell; numbers run 1..N per resolution
    and keep their meaning when a later write brings new cells; counts by number equal counts by cell."""
    with store.writer(tmp_db) as con:
        store.write_layer(con, "hydrant", _points(range(0, 2000), 121.1, 1))
    con = store.connect(tmp_db)
    first = store.query(con, f"SELECT res, cell, code FROM {store.CODES_TABLE}")
    with store.writer(tmp_db) as con:
        store.write_layer(con, "hydrant", _points(range(1500, 4000), 121.15, 2))  # overlaps and extends
        store.write_layer(
            con, "hazard",
            _points(range(0, 300), 121.12, 3).assign(category="消防通道", discovered_at=pd.Timestamp("2026-01-05")),
        )
        # a writer sees its own new numbers
        got = store.cell_aggregates(con, "hydrant", 9, "count(*) AS n", "status = ?", ["正常"])
        assert dict(zip(got["cell"].tolist(), got["n"].tolist(), strict=True)) == _plain_counts(con, "hydrant", 9)
    con = store.connect(tmp_db)
    codes = store.query(con, f"SELECT res, cell, code FROM {store.CODES_TABLE}")
    for res, group in codes.groupby("res"):
        assert sorted(group["code"]) == list(range(1, len(group) + 1))
        assert group["cell"].is_unique
    assert first.merge(codes, on=["res", "cell"], suffixes=("_1", "_2")).eval("code_1 == code_2").all()
    for layer in ("hydrant", "hazard"):
        for res in store.CODED_RESOLUTIONS:
            mismatched = con.execute(
                f"SELECT count(*) FROM {layer} h LEFT JOIN {store.CODES_TABLE} d "
                f"ON d.res = {res} AND d.code = h.h3n_r{res} WHERE d.cell IS DISTINCT FROM h.h3_r{res}"
            ).fetchone()[0]
            assert mismatched == 0
            got = store.cell_aggregates(con, layer, res, "count(*) AS n", "TRUE")
            assert dict(zip(got["cell"].tolist(), got["n"].tolist(), strict=True)) == _plain_counts(con, layer, res)
    assert con.execute("SELECT count(*) FROM hydrant").fetchone()[0] == 4000


def test_a_file_without_cell_numbers_is_read_and_then_migrated(tmp_db: Path) -> None:
    """A database written before the numbers existed: readers count by cell; the next write numbers every row."""
    with store.writer(tmp_db) as con:
        store.write_layer(con, "hydrant", _points(range(0, 1000), 121.1, 4))
    raw = __import__("duckdb").connect(str(tmp_db))
    for res in store.CODED_RESOLUTIONS:
        raw.execute(f"ALTER TABLE hydrant DROP COLUMN h3n_r{res}")
    raw.execute(f"DROP TABLE {store.CODES_TABLE}")
    raw.close()
    con = store.connect(tmp_db)
    old = store.cell_aggregates(con, "hydrant", 8, "count(*) AS n", "TRUE")
    assert int(old["n"].sum()) == 1000
    with store.writer(tmp_db) as con:
        store.write_layer(con, "hydrant", _points(range(1000, 1200), 121.1, 5))
    con = store.connect(tmp_db)
    assert con.execute("SELECT count(*) FROM hydrant WHERE h3n_r9 IS NULL").fetchone()[0] == 0
    got = store.cell_aggregates(con, "hydrant", 8, "count(*) AS n", "TRUE")
    assert dict(zip(got["cell"].tolist(), got["n"].tolist(), strict=True)) == _plain_counts(con, "hydrant", 8)


def test_a_writer_cursor_kept_by_the_caller_does_not_block_the_next_write(tmp_db: Path) -> None:
    """A caller may keep the writer's cursor (with a result on it) past the block; the next write still opens."""
    with store.writer(tmp_db) as kept:
        store.write_layer(kept, "hydrant", _points(range(0, 10), 121.1, 6))
        kept.execute("SELECT database_name FROM duckdb_databases() WHERE database_name = current_database()")
    with store.writer(tmp_db) as con:
        store.write_layer(con, "hydrant", _points(range(10, 20), 121.1, 7))
    assert store.connect(tmp_db).execute("SELECT count(*) FROM hydrant").fetchone()[0] == 20
    assert kept is not None


HELD_WRITER = textwrap.dedent("""
    import sys
    import geopandas as gpd
    import shapely
    from geo import store
    db, row_id = sys.argv[1], sys.argv[2]
    frame = gpd.GeoDataFrame({"id": [row_id], "status": ["正常"]},
                             geometry=[shapely.Point(121.2, 31.0)], crs=4326)
    with store.writer(db) as con:
        store.write_layer(con, "hydrant", frame)
        con.execute("CHECKPOINT")  # the temporary copy holds the new rows on disk
        print("writing", flush=True)
        sys.stdin.readline()  # killed here, or told to finish
""")


def start_held_writer(db: Path, row_id: str) -> subprocess.Popen[str]:
    """A real writer in another process, stopped inside ``store.writer`` (lock held, temp copy made)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HELD_WRITER, str(db), row_id],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "writing", proc.stderr.read() if proc.stderr else ""
    return proc


def temp_copies(db: Path) -> list[Path]:
    return sorted(db.parent.glob(f".{db.name}.tmp-*"))


def hydrant_ids(db: Path) -> list[str]:
    con = store.connect(db)
    try:
        return [r[0] for r in con.execute("SELECT id FROM hydrant ORDER BY id").fetchall()]
    finally:
        con.close()


def test_a_killed_writer_leaves_a_temp_copy_that_the_next_write_removes(tmp_db: Path) -> None:
    frame = gpd.GeoDataFrame(
        {"id": ["a"], "status": ["正常"]}, geometry=[shapely.Point(121.2, 31.0)], crs=4326
    )
    with store.writer(tmp_db) as con:
        store.write_layer(con, "hydrant", frame)
    crashed = start_held_writer(tmp_db, "lost")
    leftovers = temp_copies(tmp_db)
    assert leftovers and leftovers[0].stat().st_size > 0
    crashed.kill()  # SIGKILL: no cleanup runs
    crashed.communicate(timeout=30)
    assert temp_copies(tmp_db) == leftovers  # what a crashed ingest leaves today
    assert hydrant_ids(tmp_db) == ["a"]
    with store.writer(tmp_db) as con:
        store.write_layer(con, "hydrant", frame.assign(id="b"))
    assert temp_copies(tmp_db) == []
    assert hydrant_ids(tmp_db) == ["a", "b"]  # the killed write never reached the database


def test_a_live_writer_keeps_its_temp_copy_while_the_next_one_waits(tmp_db: Path) -> None:
    import threading

    frame = gpd.GeoDataFrame(
        {"id": ["a"], "status": ["正常"]}, geometry=[shapely.Point(121.2, 31.0)], crs=4326
    )
    with store.writer(tmp_db) as con:
        store.write_layer(con, "hydrant", frame)
    live = start_held_writer(tmp_db, "live")
    theirs = temp_copies(tmp_db)
    errors: list[BaseException] = []

    def second_write() -> None:
        try:
            with store.writer(tmp_db) as con:
                store.write_layer(con, "hydrant", frame.assign(id="b"))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=second_write)
    thread.start()
    time.sleep(1.0)
    assert thread.is_alive() and temp_copies(tmp_db) == theirs  # waiting, nothing removed
    _, err = live.communicate("\n", timeout=60)
    assert live.returncode == 0, err
    thread.join(timeout=60)
    assert errors == [] and not thread.is_alive()
    assert hydrant_ids(tmp_db) == ["a", "b", "live"]
    assert temp_copies(tmp_db) == []
