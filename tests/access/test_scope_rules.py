"""The scope's rules on the demo database (``dashboard.access.scope``), without a server.

An empty intersection of a town user's scope and a filter matches nothing, never everything;
the map filter, the tables and the masking follow the principal; the cache key tells scopes apart.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from dashboard.access import ANONYMOUS, LOCAL, ROLES, Principal, scope
from geo import governance, mapdata, store
from geo.aggregate import Filter
from layers.registry import get_spec


@pytest.fixture(scope="module")
def con(demo_db: Path) -> duckdb.DuckDBPyConnection:
    return store.connect(demo_db)


@pytest.fixture(scope="module")
def two_towns(con: duckdb.DuckDBPyConnection) -> tuple[str, str]:
    rows = con.execute("SELECT town FROM hazard WHERE town IS NOT NULL GROUP BY town ORDER BY count(*) DESC LIMIT 2").fetchall()
    return rows[0][0], rows[1][0]


def viewer(*towns: str) -> Principal:
    return Principal("v", ROLES["viewer"], tuple(towns), "password")


def hazards(con: duckdb.DuckDBPyConnection, town: str | None = None) -> int:
    if town is None:
        return con.execute("SELECT count(*) FROM hazard").fetchone()[0]
    return con.execute("SELECT count(*) FROM hazard WHERE town = ?", [town]).fetchone()[0]


def test_a_filter_of_another_town_matches_nothing_never_everything(con, two_towns) -> None:
    a, b = two_towns
    p = viewer(a)
    assert governance.discovered_count(con, scope.scoped(Filter(towns=(b,)), p), as_of="2100-01-01") == 0
    assert governance.discovered_count(con, scope.scoped(Filter(), p), as_of="2100-01-01") == hazards(con, a)
    assert governance.discovered_count(con, scope.scoped(Filter(towns=(a, b)), p), as_of="2100-01-01") == hazards(con, a)
    assert governance.discovered_count(con, scope.scoped(Filter(), ANONYMOUS), as_of="2100-01-01") == 0
    assert scope.scoped(Filter(towns=(b,)), LOCAL) == Filter(towns=(b,))
    assert governance.discovered_count(con, scope.scoped(None, LOCAL), as_of="2100-01-01") == hazards(con)


def test_the_map_filter_intersects_with_a_town_criterion(con, two_towns) -> None:
    a, b = two_towns
    p = viewer(a)
    count = lambda flt: mapdata.count_points(con, "hazard", None, flt)  # noqa: E731
    assert count(scope.map_filter(None, p)) == hazards(con, a)
    assert count(scope.map_filter(mapdata.MapFilter({"town": [b]}), p)) == 0
    assert count(scope.map_filter(mapdata.MapFilter({"town": [a, b]}), p)) == hazards(con, a)
    assert count(scope.map_filter(None, ANONYMOUS)) == 0
    assert scope.map_filter(None, LOCAL) is None
    assert count(scope.map_filter(mapdata.MapFilter({"town": [b]}), LOCAL)) == hazards(con, b)
    # a layer without a town of its own: admin areas by name and parent; nothing for ANONYMOUS
    where, params = mapdata.town_sql(get_spec("admin_area"), [a])
    admin = mapdata.polygon_features(con, "admin_area", where=where, params=params, fields=["id", "name"])
    assert f'"name":"{a}"' in admin and f'"name":"{b}"' not in admin


def test_tables_keep_the_scope_towns_and_nothing_without_a_town_column(two_towns) -> None:
    a, b = two_towns
    frame = pd.DataFrame({"town": [a, b, None], "n": [1, 2, 3]})
    assert scope.keep_towns(frame, principal=viewer(a))["n"].tolist() == [1]
    assert scope.keep_towns(frame, principal=LOCAL)["n"].tolist() == [1, 2, 3]
    assert scope.keep_towns(frame.drop(columns="town"), principal=viewer(a)).empty
    assert not scope.town_allowed(None, viewer(a)) and scope.town_allowed(None, LOCAL)
    assert not scope.town_allowed(["x", a], viewer(a)) and scope.town_allowed(a, viewer(a))


def test_masking_follows_the_role_and_the_kiosk() -> None:
    record = {"id": "1", "contact": "张三", "phone": "13812345678", "name": "某某大厦"}
    editor = Principal("e", ROLES["editor"], ("x",), "password")
    assert scope.masked(record, "key_place", principal=viewer("x")) == {**record, "contact": "张*", "phone": "138****5678"}
    assert scope.masked(record, "key_place", principal=editor) == record
    assert scope.masked(record, "key_place", principal=LOCAL) == record
    assert scope.masked(record, "key_place", page="wall", principal=LOCAL)["phone"] == "138****5678"
    assert scope.masked(record, "key_place", page="wall", principal=editor) == record
    wall = Principal("w", ROLES["wall"], None, "password")
    assert scope.mask_fields("grid", principal=wall) == ("grid_worker", "phone")
    frame = scope.masked(pd.DataFrame([record]), "key_place", principal=wall)
    assert frame.loc[0, "phone"] == "138****5678" and frame.loc[0, "name"] == "某某大厦"
    assert scope.masked_records([record], "key_place", principal=wall)[0]["contact"] == "张*"
    assert scope.mask_fields("no_such_layer", principal=wall) == ()


def test_the_cache_key_tells_scopes_and_masking_apart(two_towns) -> None:
    a, b = two_towns
    keys = {scope.cache_key(p) for p in (LOCAL, viewer(a), viewer(b), viewer(a, b), ANONYMOUS,
                                          Principal("d", ROLES["viewer"], None, "password"))}
    assert len(keys) == 6
    assert scope.cache_key(viewer(a, b)) == scope.cache_key(viewer(b, a, a))  # the same towns share answers
    assert scope.cache_key(Principal("e", ROLES["editor"], (a,), "password")) != scope.cache_key(viewer(a))
