"""A serving app keeps nothing of a swapped-out snapshot, and its answer caches stay within their bytes."""

from __future__ import annotations

import gc
from pathlib import Path

import pandas as pd

from geo import cache, store
from geo.settings import Settings

BBOX = "120.9,30.8,121.5,31.2"


def _swap(db: Path) -> None:
    """A real write through geo.store: one hazard's remark changes, a new snapshot is swapped in."""
    with store.writer(db) as con:
        row = store.read_layer(con, "hazard", where="id = (SELECT min(id) FROM hazard)")
        row["remark"] = "memory test"
        store.write_layer(con, "hazard", row)


def _attached_snapshots() -> set[str]:
    cur = store._instance().cursor()
    try:
        return {r[0] for r in cur.execute("SELECT database_name FROM duckdb_databases()").fetchall()
                if r[0].startswith("snap")}
    finally:
        cur.close()


def test_a_swap_leaves_nothing_of_the_old_snapshot_in_the_app(copy_demo_db: Path):
    """Answers, page figures, the coverage scene and session engines of snapshot N go once N+1 is seen."""
    from dashboard.app import create_app
    from dashboard.components import context, engines, routes

    client = create_app(Settings(), str(copy_demo_db), warm=False).server.test_client()
    urls = [f"/api/layer/hazard/hex.geojson?bbox={BBOX}&zoom=10", "/api/polygons/grid.geojson?fields=map"]
    for url in urls:
        assert client.get(url).status_code == 200
    engines.memo("test figure", "k", lambda: pd.DataFrame({"n": range(1000)}))
    engines.scenario("session-1", [])
    before = engines.scene()
    old_alias = store._ALIASES[context.reader()._con]
    assert len(routes._URL_ANSWERS.cache) == len(urls) and len(engines._MEMO.cache) == 1

    _swap(copy_demo_db)
    for url in urls:  # the app's first requests after the swap
        assert client.get(url).status_code == 200
    gc.collect()
    client.get(urls[0])

    token = (context.reader(), context.version())
    assert routes._URL_ANSWERS.cache.snapshots() == {token}
    assert engines._MEMO.cache.snapshots() == set()  # the figure of snapshot N is gone, none asked since
    assert "session-1" not in engines._ENGINES
    assert engines.scene() is not before
    assert old_alias not in _attached_snapshots()
    assert all(cache.snapshot_alias(s) != old_alias for c in cache.caches() for s in c.snapshots())


def test_answer_cache_evicts_beyond_its_bytes(copy_demo_db: Path):
    """GeoJSON answers count by their length: a budget of two answers keeps the two most recent."""
    from dashboard.app import create_app
    from dashboard.components.snapshot_cache import SnapshotLRU

    create_app(Settings(), str(copy_demo_db), warm=False)
    answers = SnapshotLRU(256, name="test answers", max_bytes=2 * 110_000)
    for i in range(5):
        assert answers.get(i, lambda i=i: str(i) * 100_000) == str(i) * 100_000
    assert len(answers.cache) == 2 and answers.cache.nbytes <= 2 * 110_000
    assert answers.peek(4) is not None and answers.peek(0) is None
