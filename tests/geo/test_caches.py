"""Caches: bounded by bytes, and nothing of a swapped-out snapshot kept once no reader uses it."""

from __future__ import annotations

import gc
import shutil
from pathlib import Path

import numpy as np
import pytest
from analytics_fixture import add_hazards, build_fixture, cluster_rows

from geo import cache, governance, hotspots, store
from geo.aggregate import SnapshotCache, snapshot_key
from geo.settings import Settings


@pytest.fixture(scope="module")
def fixture_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fixture(tmp_path_factory.mktemp("caches") / "fx.duckdb")


def _use_every_cache(con) -> None:
    """Figures whose inputs are kept per snapshot: study areas, cell numbers, place columns, gap table."""
    hotspots.hotspots(con, res=8, k=1)
    store.cell_aggregates(con, "hazard", 9, "count(*) AS n", "true")
    governance.inspection_compliance(con, as_of="2025-06-30")
    governance.recurring_places(con, as_of="2025-06-30")


def _held_by(alias: str) -> list[str]:
    """Names of the caches holding an entry of snapshot ``alias``."""
    return [c.name for c in cache.caches() if any(cache.snapshot_alias(s) == alias for s in c.snapshots())]


def _attached(alias: str) -> bool:
    cur = store._instance().cursor()
    try:
        names = {r[0] for r in cur.execute("SELECT database_name FROM duckdb_databases()").fetchall()}
        tables = {r[0] for r in cur.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = 'memory'")
                  .fetchall()}
    finally:
        cur.close()
    return alias in names or any(t.endswith(f"_{alias}") for t in tables)


def test_a_swap_drops_every_entry_and_table_of_the_old_snapshot(tmp_path: Path, fixture_db: Path):
    """Entries for snapshot N go when N+1 is swapped in and N's last cursor is gone; N is detached."""
    path = tmp_path / "fx.duckdb"
    shutil.copyfile(fixture_db, path)
    con = store.connect(path)
    old = snapshot_key(con)[1]
    _use_every_cache(con)
    assert set(_held_by(old)) >= {"hotspot study areas", "cell numbers by code", "key place columns",
                                  "place gap tables"}
    assert _attached(old)

    add_hazards(path, cluster_rows("N", "G1", ["2025-03-16 10:00"]))  # a real write: snapshot N+1
    reader = store.connect(path)  # sees the swap while the old cursor still reads N
    new = snapshot_key(reader)[1]
    assert new != old
    assert con.execute("SELECT count(*) FROM hazard").fetchone()[0] + 1 == \
        reader.execute("SELECT count(*) FROM hazard").fetchone()[0]  # N still readable meanwhile
    _use_every_cache(reader)

    con.close()  # as a request does when it is done
    del con
    gc.collect()
    store.connect(path).close()  # the next cursor handed out after N's last one is gone
    assert _held_by(old) == []
    assert not _attached(old), f"snapshot {old} or its per-snapshot table is still in DuckDB"
    assert set(_held_by(new)) >= {"hotspot study areas", "cell numbers by code"}


def test_a_cache_over_its_byte_budget_evicts_the_least_recent():
    """Entries count by the bytes they hold: beyond the budget the oldest go, whatever the entry bound."""
    held = cache.BoundedCache("test arrays", max_entries=100, max_bytes=3 * 8_000)
    for i in range(5):
        held.put("snap-x", i, np.zeros(1_000))  # 8,000 bytes each
    assert len(held) == 3 and held.nbytes == 24_000
    assert [held.lookup("snap-x", i)[0] for i in range(5)] == [False, False, True, True, True]
    huge = np.zeros(10_000)
    assert held.put("snap-x", "huge", huge) is huge  # handed back, never kept
    assert not held.lookup("snap-x", "huge")[0] and held.nbytes <= 24_000


def test_the_cache_max_mb_setting_bounds_snapshot_caches():
    """``cache_max_mb`` is the default budget of every cache; text counts by its length."""
    assert Settings().cache_max_mb > 0
    structures: SnapshotCache[str] = SnapshotCache(maxsize=1000, name="test text")
    try:
        cache.set_budget_mb(1.0)
        for i in range(8):
            structures.at(("pid", "snap-y", "f"), i, lambda: "x" * 300_000)  # ~0.3 MB each
        assert structures.cache.nbytes <= 2**20 and len(structures.cache) == 3
        with pytest.raises(ValueError, match="cache_max_mb"):
            cache.set_budget_mb(float("nan"))
    finally:
        cache.set_budget_mb(Settings().cache_max_mb)


def test_size_of_measures_what_is_stored():
    """Sizes: arrays by nbytes, frames deep, text by length, objects by their attributes."""
    import pandas as pd

    arr = np.zeros(10_000)
    frame = pd.DataFrame({"name": ["消防站" * 10] * 1_000})
    assert cache.size_of(arr) == arr.nbytes
    assert cache.size_of(frame) >= 1_000 * 30 * 2
    assert cache.size_of("x" * 100_000) >= 100_000
    assert cache.size_of({"a": arr, "b": [arr, arr]}) < 2 * arr.nbytes  # one array counted once
    assert cache.size_of({"a": arr}, shared=(arr,)) < 1_000
