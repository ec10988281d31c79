"""Spark (local mode) on a two-district province gives the embedded DuckDB path's figures:
counts exactly, Gi* z and coverage shares to 1e-9 (issue 17, acceptance)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from geo import governance, h3index, partition, store
from geo.aggregate import Filter
from geo.hotspots import hotspots
from geo.settings import Settings

TOL = 1e-9


def _out(province: dict, name: str) -> pd.DataFrame:
    con = duckdb.connect()
    glob = (province["out"] / name).as_posix() + "/**/*.parquet"
    return con.execute(f"SELECT * FROM read_parquet('{glob}', hive_partitioning = true)").df()


def _same(spark: pd.DataFrame, embedded: pd.DataFrame, keys: list[str]) -> None:
    """Equal frames: the same rows on ``keys``, integers exactly, floats to 1e-9 (NaN = NaN)."""
    a = spark.sort_values(keys, ignore_index=True) if keys else spark.reset_index(drop=True)
    b = embedded.sort_values(keys, ignore_index=True) if keys else embedded.reset_index(drop=True)
    assert len(a) == len(b) > 0
    for col in b.columns:
        x, y = a[col], b[col]
        if pd.api.types.is_float_dtype(y):
            np.testing.assert_allclose(x.to_numpy(np.float64), y.to_numpy(np.float64), rtol=0, atol=TOL,
                                       equal_nan=True, err_msg=col)
        else:
            assert list(x.astype(object).where(x.notna(), None)) == list(y.astype(object).where(y.notna(), None)), col


def test_both_districts_are_in_the_output(province: dict) -> None:
    rank = _out(province, "district_rank")
    assert sorted(rank["district"]) == sorted(province["dbs"])
    assert set(rank["name"]) == {"松江区", "平阳县"}
    assert list(rank["rank"]) == sorted(rank["rank"]) and rank["score"].between(0, 100).all()


def test_counts_equal_sql_on_each_district(province: dict) -> None:
    counts = _out(province, "hazard_counts")
    for code, db in province["dbs"].items():
        con = store.connect(db)
        want = con.execute("""SELECT town, coalesce(strftime(discovered_at, '%Y-%m'), 'none') AS month,
            category, severity, count(*) AS hazards FROM hazard GROUP BY ALL""").df()
        got = counts[counts["district"] == code].drop(columns="district")
        _same(got, want, ["town", "month", "category", "severity"])
        assert got["hazards"].sum() == con.execute("SELECT count(*) FROM hazard").fetchone()[0]


@pytest.mark.parametrize("res", [5, 6, 7, 8, 9])
def test_cell_counts_equal_the_stored_h3_columns(province: dict, res: int) -> None:
    cells = _out(province, "hazard_cells")
    for code, db in province["dbs"].items():
        frame = store.connect(db).execute(
            "SELECT h3_r9 FROM hazard WHERE lon IS NOT NULL AND lat IS NOT NULL").df()
        stored = h3index.parent_cells(frame["h3_r9"].to_numpy(np.uint64), res) if res < 9 \
            else frame["h3_r9"].to_numpy(np.uint64)
        want = pd.Series(stored.astype(np.int64)).value_counts().sort_index()
        got = cells[(cells["district"] == code) & (cells["res"] == res)].groupby("cell")["hazards"].sum()
        assert got.index.tolist() == want.index.tolist()
        assert got.tolist() == want.tolist()


def test_closed_loop_and_compliance_equal_the_embedded_path(province: dict) -> None:
    t, s = province["as_of"], Settings()
    for code, db in province["dbs"].items():
        con = store.connect(db)

        def pick(name: str, code: str = code) -> pd.DataFrame:
            frame = _out(province, name)
            return frame[frame["district"] == code].drop(columns="district")

        _same(pick("closed_loop_town"), governance.closed_loop(con, ("town",), as_of=t, settings=s), ["town"])
        _same(pick("closed_loop_district"), governance.closed_loop(con, (), as_of=t, settings=s), [])
        embedded = governance.inspection_compliance(con, ("town",), t, settings=s, per_class=False)
        _same(pick("compliance_town"), embedded, ["town"])
        year = governance.scorecard_year(t)
        _same(pick("scorecard_town"), governance.town_scorecard(con, year, t, s), ["town"])


def test_gi_star_equals_the_embedded_hotspots(province: dict) -> None:
    spark = _out(province, "hotspots")
    for code, db in province["dbs"].items():
        table = hotspots(store.connect(db), Filter(), settings=Settings()).table
        got = spark[spark["district"] == code].sort_values("cell", ignore_index=True)
        assert got["cell"].to_numpy(np.uint64).tolist() == np.sort(table["cell"].to_numpy(np.uint64)).tolist()
        want = table.sort_values("cell", ignore_index=True)
        np.testing.assert_allclose(got["z"], want["z"], rtol=0, atol=TOL)
        assert got["count"].tolist() == want["count"].tolist()
        assert got["bin_fdr"].tolist() == want["bin_fdr"].tolist()
        assert (got["count"] > 0).any() and got["significant"].any()


def test_coverage_shares_equal_the_embedded_coverage(province: dict) -> None:
    from geo import coverage
    from geo.coverage_inputs import load_scene

    spark = _out(province, "coverage_district")
    for code, db in province["dbs"].items():
        want = coverage.summary(coverage.compute_coverage(load_scene(store.connect(db), Settings())))
        got = spark[spark["district"] == code].iloc[0]
        for key in ("area_share", "places_share", "weight_share", "covered_km2"):
            assert want[key] is not None and abs(float(got[key]) - float(want[key])) <= TOL, key
        assert int(got["responders"]) == want["responders"] > 0


def test_restored_district_has_every_table_with_its_types(province: dict, tmp_path: Path) -> None:
    code, db = next(iter(province["dbs"].items()))
    restored = partition.restore_district(province["data"], code, tmp_path / "r.duckdb")
    q = "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() ORDER BY ALL"
    assert store.connect(restored).execute(q).fetchall() == store.connect(db).execute(q).fetchall()
    assert (province["data"] / "hazard" / f"district={code}").is_dir()
    assert any((province["data"] / "hazard" / f"district={code}").glob("month=*/*.parquet"))
    meta = duckdb.connect().execute(
        f"SELECT decode(value) FROM parquet_kv_metadata('{(province['data'] / 'grid' / f'district={code}').as_posix()}/*.parquet') WHERE decode(key) = 'geo'"
    ).fetchone()
    assert meta and '"primary_column"' in meta[0]


def _onemap(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", "from dashboard.cli import main; main()", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("district", ["../../etc", "' OR 1=1 --", "{{7*7}}", "<script>", "x" * 40, ""])
def test_hostile_district_codes_are_refused(demo_db: Path, tmp_path: Path, district: str) -> None:
    got = _onemap("export-partition", "--out", str(tmp_path / "p"), "--db", str(demo_db), "--district", district)
    assert got.returncode == 2 and "district code" in got.stderr and "Traceback" not in got.stderr
    assert not (tmp_path / "p").exists() or not any((tmp_path / "p").rglob("*.parquet"))


def test_province_run_refuses_bad_inputs(province: dict, tmp_path: Path) -> None:
    not_data = tmp_path / "empty"
    not_data.mkdir()
    cases = [
        (["--data", str(not_data), "--out", str(tmp_path / "o")], "not a province dataset"),
        (["--data", str(province["data"]), "--out", str(tmp_path / "o"), "--district", "999999"], "not in"),
        (["--data", str(province["data"]), "--out", str(tmp_path / "o"), "--master", "'; rm -rf /"], "--master"),
        (["--data", str(province["data"]), "--out", str(tmp_path / "o"), "--as-of", "{{7*7}}"], "as-of"),
    ]
    for args, words in cases:
        got = _onemap("province", "run", *args)
        assert got.returncode == 2, (args, got.stderr)
        assert words in got.stderr and "Traceback" not in got.stderr
