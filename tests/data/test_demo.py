"""The demo district: determinism, boundary, tiling grids, roads, stations, hydrants, hazards, counts.

Speed: most tests read the session's ``demo_db`` (Songjiang, scale 0.2, seed 7). The other
checks regenerate districts in memory (``generate_demo``: ~1-2 s) instead of writing new
databases; the full default build is timed by ``bench/demo.py``.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Geod
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from data.areas import AREAS, load_boundary
from data.demo import DemoData, build_demo, demo_end, generate_demo
from data.demo_params import DemoProfile
from geo import store
from geo.errors import ConfigError
from geo.network import graph_from_tables, load_graph
from geo.settings import Settings
from layers.base import LayerSpec
from layers.hazard import STATUSES
from layers.registry import LAYERS

LIVE_ONLY = frozenset({"alarm", "device"})
"""Layers the demo database holds no rows of: devices and their alarms come from `onemap demo --live`."""

END = "2025-06-30"
GEOD = Geod(ellps="WGS84")


def _read(path: Path, sql: str) -> pd.DataFrame:
    con = store.connect(path)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def _metric(lon: np.ndarray, lat: np.ndarray):
    from pyproj import Transformer

    crs = store.local_metric_crs(lon, lat)
    return Transformer.from_crs("EPSG:4326", crs, always_xy=True)


@pytest.fixture(scope="module")
def end_of(demo_db: Path) -> datetime:
    """The moment the session's demo data ends (it was built with end_date=None: now)."""
    con = store.connect(demo_db)
    try:
        return demo_end(con)
    finally:
        con.close()


@pytest.fixture(scope="module")
def regenerated(end_of: datetime) -> DemoData:
    """The session demo's seed, scale and end, generated again in memory."""
    return generate_demo(area="310117", scale=0.2, seed=7, end_date=end_of)


@pytest.fixture(scope="module")
def default_demo() -> tuple[DemoData, float]:
    """The default demo (Songjiang, scale 1, seed 2024) in memory, with its generation time."""
    t0 = time.perf_counter()
    demo = generate_demo(end_date=END)
    return demo, time.perf_counter() - t0


def _canonical(frame: pd.DataFrame, spec: LayerSpec) -> pd.DataFrame:
    """The spec's fields sorted by id, datetimes to the second, text as objects."""
    out = pd.DataFrame({f.name: frame[f.name].to_numpy() for f in spec.fields})
    for f in spec.fields:
        if f.type in ("date", "datetime"):
            out[f.name] = pd.to_datetime(out[f.name]).astype("datetime64[s]")
        elif f.type == "str":
            out[f.name] = out[f.name].astype(object).where(out[f.name].notna(), None)
    return out.sort_values("id", ignore_index=True)


def test_same_seed_same_rows(demo_db: Path, regenerated: DemoData, default_demo: tuple[DemoData, float]) -> None:
    """Generating again with the demo's seed and end date gives the stored rows; another seed differs."""
    for name, spec in LAYERS.items():
        db = _read(demo_db, f"SELECT * EXCLUDE (geom), ST_AsWKB(geom) AS wkb FROM {name}")
        if name in LIVE_ONLY:  # devices and their alarms come from `onemap demo --live` (the simulator)
            assert len(db) == 0 and name not in regenerated.layers, name
            continue
        assert len(db) > 0, name
        frame = regenerated.layers[name]
        pd.testing.assert_frame_equal(_canonical(db, spec), _canonical(frame, spec), check_dtype=False, obj=name)
        stored = store.from_wkb_column(db.sort_values("id")["wkb"])
        made = frame.sort_values("id").geometry.to_numpy()
        assert shapely.equals_exact(stored, made, tolerance=1e-9).all(), name
    nodes = _read(demo_db, "SELECT * FROM road_nodes ORDER BY node_id")
    pd.testing.assert_frame_equal(nodes, regenerated.road_nodes, check_dtype=False, obj="road_nodes")
    edges = _read(demo_db, "SELECT * EXCLUDE (geom), ST_AsText(geom) AS geom FROM road_edges")
    made = regenerated.road_edges
    cols = ["u", "v", "length_m", "speed_kmh", "highway", "name", "oneway"]
    pd.testing.assert_frame_equal(edges[cols].astype(object), made[cols].astype(object), obj="road_edges")
    assert shapely.equals_exact(shapely.from_wkt(edges["geom"]), shapely.from_wkt(made["geom"]), 1e-9).all()
    # Another seed: other grids, roads and hazards.
    other = default_demo[0]
    grids = _read(demo_db, "SELECT ST_AsWKB(geom) AS wkb FROM grid")
    assert len(other.layers["grid"]) != len(grids) or not shapely.equals_exact(
        store.from_wkb_column(grids["wkb"]), other.layers["grid"].geometry.to_numpy(), 1.0).all()
    assert not np.allclose(other.road_nodes["lon"][:100], nodes["lon"][:100])
    hz = _read(demo_db, "SELECT category FROM hazard ORDER BY id LIMIT 1000")["category"].to_numpy()
    assert (other.layers["hazard"].sort_values("id")["category"].to_numpy()[:1000] != hz).any()


def test_default_scale_counts_and_time(demo_db: Path, default_demo: tuple[DemoData, float]) -> None:
    """Scale 1 has 5× the points of the 0.2 fixture (grids, roads, stations do not scale)."""
    demo, took = default_demo
    counts = demo.counts()
    print(f"\ndefault demo (Songjiang, scale 1) generated in {took:.1f} s (full build with the "
          f"database: bench/demo.py); {counts}")
    big = _read(demo_db, "SELECT (SELECT count(*) FROM hazard) h, (SELECT count(*) FROM key_place) k, "
                         "(SELECT count(*) FROM incident) i, (SELECT count(*) FROM grid) g")
    assert counts["hazard"] == 5 * big.h[0] == 50_000
    assert counts["key_place"] == 5 * big.k[0] == 2_000
    assert 4.5 < counts["incident"] / big.i[0] <= 5.5
    assert abs(counts["grid"] - big.g[0]) < 0.1 * big.g[0]  # grids do not scale
    assert 10_000 < counts["hydrant"] < 30_000 and 2 <= counts["fire_station"] <= 20
    assert took < 60


def _crossing(lines: np.ndarray, area: shapely.Geometry) -> np.ndarray:
    """Whether each line crosses the outline of ``area`` (outline split into short segments)."""
    ring = shapely.get_coordinates(shapely.get_parts(shapely.boundary(area)), return_index=True)
    xy, part = ring
    same = part[1:] == part[:-1]
    segs = shapely.linestrings(np.stack([xy[:-1][same], xy[1:][same]], axis=1))
    hit = np.zeros(len(lines), dtype=bool)
    hit[shapely.STRtree(lines).query(segs, predicate="intersects")[1]] = True
    return hit


def test_everything_inside_the_boundary(demo_db: Path) -> None:
    boundary = load_boundary("310117").buffer(1e-6)  # ~0.1 m of rounding
    shapely.prepare(boundary)
    for spec in LAYERS.values():
        if spec.name in LIVE_ONLY:
            continue
        if spec.geometry == "point":
            df = _read(demo_db, f"SELECT ST_X(geom) AS x, ST_Y(geom) AS y FROM {spec.name}")
            assert len(df) and shapely.contains_xy(boundary, df["x"], df["y"]).all(), spec.name
        else:
            df = _read(demo_db, f"SELECT ST_AsWKB(geom) AS wkb FROM {spec.name}")
            assert len(df) and shapely.covered_by(store.from_wkb_column(df["wkb"]), boundary).all(), spec.name
    nodes = _read(demo_db, "SELECT lon, lat FROM road_nodes")
    assert shapely.contains_xy(boundary, nodes["lon"], nodes["lat"]).all()
    # An edge lies inside when its ends do (nodes, above) and it does not cross the outline.
    edges = store.from_wkb_column(_read(demo_db, "SELECT ST_AsWKB(geom) AS w FROM road_edges WHERE u < v OR oneway")["w"])
    start, stop = shapely.get_point(edges, 0), shapely.get_point(edges, -1)
    assert shapely.contains_xy(boundary, shapely.get_x(start), shapely.get_y(start)).all()
    assert shapely.contains_xy(boundary, shapely.get_x(stop), shapely.get_y(stop)).all()
    assert not _crossing(edges, boundary).any()
    # The check itself: a line from the centre to far outside crosses the outline.
    centre = shapely.get_coordinates(shapely.centroid(boundary))[0]
    assert _crossing(np.array([shapely.LineString([centre, centre + 1.0])]), boundary).all()


def test_grids_tile_the_district(demo_db: Path) -> None:
    grids = _read(demo_db, "SELECT id, area_km2, ST_AsWKB(geom) AS wkb FROM grid")
    district = _read(demo_db, "SELECT area_km2 FROM admin_area WHERE level = '区县'")["area_km2"][0]
    assert 590 < district < 620  # Songjiang is ~605 km²
    assert grids["area_km2"].sum() == pytest.approx(district, rel=2e-3)
    assert grids["area_km2"].between(0.2, 1.0).all(), grids["area_km2"].describe()
    geoms = store.from_wkb_column(grids["wkb"])
    lon, lat = shapely.get_coordinates(shapely.centroid(geoms)).T
    to_m = _metric(lon, lat)
    gm = shapely.transform(geoms, lambda c: np.column_stack(to_m.transform(c[:, 0], c[:, 1])))
    union = shapely.union_all(gm).area
    assert shapely.area(gm).sum() == pytest.approx(union, rel=1e-6)  # no overlaps


def test_admin_levels_nest(demo_db: Path) -> None:
    admin = _read(demo_db, "SELECT id, name, level, parent_id, population, area_km2 FROM admin_area")
    towns = admin[admin.level == "街镇"]
    comms = admin[admin.level == "社区"]
    assert sorted(towns["name"]) == sorted(t.name for t in AREAS["310117"].towns)
    assert set(comms["parent_id"]) <= set(towns["id"])
    assert comms["name"].str.endswith(("居委", "村")).all()
    assert comms["area_km2"].sum() == pytest.approx(towns["area_km2"].sum(), rel=1e-3)
    grids = _read(demo_db, "SELECT g.id, g.town, g.community, c.id AS cid, c.parent_id, t.name AS tname "
                           "FROM grid g JOIN admin_area c ON c.level = '社区' AND c.name = g.community "
                           "JOIN admin_area t ON t.id = c.parent_id")
    assert len(grids) == _read(demo_db, "SELECT count(*) n FROM grid")["n"][0]
    assert (grids["town"] == grids["tname"]).all()
    assert grids.apply(lambda r: r["id"].startswith(r["cid"]), axis=1).all()
    g = _read(demo_db, "SELECT grid_worker, phone, population, built_up FROM grid")
    assert g["grid_worker"].notna().all() and g["phone"].str.fullmatch(r"1[3-9]\d{9}").all()
    assert 0.15 < g["built_up"].mean() < 0.7 and (g["population"] > 0).all()


def test_points_carry_their_grid(demo_db: Path) -> None:
    """grid_id/community/town of a point are those of the grid polygon it lies in."""
    bad = _read(demo_db, """
        SELECT count(*) AS n FROM (SELECT * FROM hazard USING SAMPLE 2000 ROWS (reservoir, 1)) h
        JOIN grid g ON g.id = h.grid_id
        WHERE NOT ST_Intersects(g.geom, h.geom) OR g.town <> h.town OR g.community <> h.community""")
    assert bad["n"][0] == 0
    for spec in LAYERS.values():
        if spec.assign_to_grid:
            n = _read(demo_db, f"SELECT count(*) FILTER (WHERE grid_id IS NULL OR town IS NULL) n FROM {spec.name}")
            assert n["n"][0] == 0, spec.name


def test_values_follow_the_specs(demo_db: Path) -> None:
    for spec in LAYERS.values():
        for f in spec.fields:
            if f.required:
                n = _read(demo_db, f'SELECT count(*) n FROM {spec.name} WHERE "{f.name}" IS NULL')["n"][0]
                assert n == 0, (spec.name, f.name)
            if f.choices:
                seen = set(_read(demo_db, f'SELECT DISTINCT CAST("{f.name}" AS VARCHAR) v FROM {spec.name} '
                                          f'WHERE "{f.name}" IS NOT NULL')["v"])
                assert seen <= set(f.choices), (spec.name, f.name, seen - set(f.choices))
        ids = _read(demo_db, f"SELECT count(*) n, count(DISTINCT id) d FROM {spec.name}")
        assert ids["n"][0] == ids["d"][0], spec.name
    log = _read(demo_db, "SELECT file, note FROM ingest_log")
    assert log["file"].tolist() == ["demo"] and "seed=7" in log["note"][0]


def test_road_network_connected_and_plausible(demo_db: Path) -> None:
    nodes = _read(demo_db, "SELECT node_id, lon, lat FROM road_nodes")
    edges = _read(demo_db, "SELECT u, v, length_m, speed_kmh, highway, name, oneway FROM road_edges")
    n = len(nodes)
    assert set(nodes["node_id"]) == set(range(n))
    graph = coo_matrix((np.ones(len(edges)), (edges.u, edges.v)), shape=(n, n))
    assert connected_components(graph, directed=True, connection="strong")[0] == 1
    # Directed: a two-way street has both directions, a one-way street one.
    pairs = set(zip(edges.u, edges.v, strict=True))
    two = edges[~edges.oneway]
    assert all((v, u) in pairs for u, v in zip(two.u, two.v, strict=True))
    one = edges[edges.oneway]
    assert 0 < len(one) < 0.1 * len(edges) and not any((v, u) in pairs for u, v in zip(one.u, one.v, strict=True))
    # Lengths agree with the geodesic length of the edge.
    geod = GEOD.inv(nodes.lon[edges.u].to_numpy(), nodes.lat[edges.u].to_numpy(),
                    nodes.lon[edges.v].to_numpy(), nodes.lat[edges.v].to_numpy())[2]
    assert np.allclose(edges.length_m, geod, rtol=0.01)
    assert 10_000 < len(edges) < 100_000
    speed = edges.groupby("highway")["speed_kmh"].first()
    assert speed["primary"] > speed["secondary"] > speed["residential"]
    assert edges["name"].notna().all()
    # Dense streets in built-up parts (~200 m blocks), sparse roads in the countryside.
    res = edges[edges.highway == "residential"]["length_m"]
    assert 150 < res.median() < 250


def test_responders_on_the_road_network(demo_db: Path) -> None:
    """Stations sit on a street: the coverage engine snaps every one of them (and places, water)."""
    settings = Settings()
    con = store.connect(demo_db)
    try:
        graph = load_graph(con, settings)
        assert graph is not None
        for layer, realistic_m in [("micro_station", 100), ("fire_station", 100), ("water_source", 150),
                                   ("key_place", 150)]:
            pts = con.execute(f"SELECT id, lon, lat FROM {layer}").df()
            snap = graph.snap(pts["lon"].to_numpy(), pts["lat"].to_numpy(), settings.snap_distance_m)
            assert snap.ok.all(), (layer, pts["id"][~snap.ok].tolist(), snap.distance_m[~snap.ok])
            assert snap.distance_m.max() <= realistic_m, (layer, snap.distance_m.max())
        kinds = set(con.execute("SELECT DISTINCT kind FROM water_source").df()["kind"])
        assert {"消防水池", "天然水源取水点", "取水码头"} <= kinds
        # A community's micro station lies in that community.
        own = con.execute("SELECT count(*) FILTER (WHERE name <> community || '微型消防站') n, count(*) total "
                          "FROM micro_station WHERE kind = '社区'").df()
        assert own["n"][0] == 0 and own["total"][0] == con.execute(
            "SELECT count(*) FROM admin_area WHERE level = '社区'").fetchone()[0]
    finally:
        con.close()


def test_hydrants_every_120_m_along_built_up_roads(demo_db: Path) -> None:
    hyd = _read(demo_db, "SELECT h.lon, h.lat, h.status, g.built_up FROM hydrant h JOIN grid g ON g.id = h.grid_id")
    to_m = _metric(hyd.lon.to_numpy(), hyd.lat.to_numpy())
    x, y = to_m.transform(hyd.lon.to_numpy(), hyd.lat.to_numpy())
    tree = shapely.STRtree(shapely.points(x, y))
    _, dist = tree.query_nearest(shapely.points(x, y), exclusive=True, return_distance=True, all_matches=False)
    assert 40 < np.median(dist) < 125, np.median(dist)
    bad = hyd["status"] != "正常"
    assert 0.02 < bad.mean() < 0.07
    # Road length of built-up grids per hydrant there ≈ 120 m (spacing ≤ 120 m per GB 50974).
    per = _read(demo_db, """
        SELECT sum(e.length_m) / (SELECT count(*) FROM hydrant h JOIN grid g ON g.id = h.grid_id WHERE g.built_up) AS m
        FROM road_edges e JOIN grid g ON ST_Intersects(g.geom, ST_Centroid(e.geom))
        WHERE g.built_up AND (e.oneway OR e.u < e.v)""")["m"][0]
    assert 80 < per < 125, per


def test_hazard_closed_loop_in_order(demo_db: Path, end_of: datetime) -> None:
    hz = _read(demo_db, "SELECT * EXCLUDE (geom) FROM hazard")
    times = ["discovered_at", "filed_at", "dispatched_at", "handled_at", "verified_at", "closed_at"]
    t = hz[times].to_numpy(dtype="datetime64[s]")
    end = np.datetime64(end_of, "s")
    assert (t[~np.isnat(t)] <= end).all()
    assert hz["discovered_at"].min() >= pd.Timestamp(end_of) - pd.Timedelta(days=731)
    last = np.datetime64("1970-01-01", "s") + np.zeros(len(hz), dtype="timedelta64[s]")
    for k in range(len(times)):
        col = t[:, k]
        ok = ~np.isnat(col)
        assert (col[ok] >= last[ok]).all(), times[k]
        last = np.where(ok, col, last)
    # Status = the latest stage reached; on-the-spot fixes skip 立案/派遣/处置.
    reached = np.array([max(i for i in range(6) if not np.isnat(row[i])) for row in t])
    assert (hz["status"].to_numpy() == np.asarray(STATUSES, dtype=object)[reached]).all()
    spot = hz["on_spot"].to_numpy(dtype=bool)
    assert np.isnat(t[spot, 1:4]).all() and (hz.loc[spot, "status"] == "结案").all()
    assert 0.2 < spot.mean() < 0.45
    major = (hz["severity"] == "重大").mean()
    assert 0.015 < major < 0.04
    open_ = hz["status"] != "结案"
    overdue = open_ & (hz["deadline"] < pd.Timestamp(end_of))
    assert overdue.sum() > 0 and open_.mean() < 0.2
    assert set(hz["supervision"]) == {"无", "街镇挂牌", "区级挂牌"}
    assert (hz.loc[hz.supervision == "区级挂牌", "severity"] == "重大").all()
    assert (hz["handled_by"] == "网格").mean() > 0.6
    # Recurring places: some key places have several hazards.
    per_place = hz["place_id"].value_counts()
    assert (per_place >= 3).sum() >= 10


def test_hazards_cluster_in_old_neighbourhoods(demo_db: Path) -> None:
    dens = _read(demo_db, """
        SELECT a.name, count(h.id) / any_value(a.area_km2) AS per_km2
        FROM admin_area a LEFT JOIN hazard h ON h.town = a.name WHERE a.level = '街镇' GROUP BY a.name""")
    dens = dens.set_index("name")["per_km2"]
    old = [t.name for t in AREAS["310117"].towns if t.old_centre]
    assert dens[old].min() > 2 * dens.median()
    # Seasons: more hazards found in winter months than in summer ones.
    by_month = _read(demo_db, "SELECT month(discovered_at) m, count(*) n FROM hazard GROUP BY 1").set_index("m")["n"]
    assert by_month[[12, 1]].sum() > 1.2 * by_month[[6, 7]].sum()


def test_incidents_today_with_response_times(demo_db: Path) -> None:
    inc = _read(demo_db, "SELECT kind, source, reported_at, arrived_at, response_s, status FROM incident")
    now = pd.Timestamp(datetime.now())
    assert (inc["reported_at"] <= now).all()
    assert (inc["reported_at"].dt.date == now.date()).sum() >= 1 or now.hour == 0
    fires = inc[(inc.kind == "火灾") & inc.response_s.notna()]
    assert len(fires) > 50 and 120 < fires.response_s.median() < 1200
    arrived = inc.dropna(subset=["arrived_at"])
    secs = (arrived.arrived_at - arrived.reported_at).dt.total_seconds()
    assert np.allclose(secs, arrived.response_s, atol=1)
    assert {"火灾", "烟感报警", "电动车充电报警"} <= set(inc.kind) and (inc.status == "误报").any()


def test_key_place_classes_follow_seed_000(demo_db: Path) -> None:
    kp = _read(demo_db, "SELECT category, inspection_class, last_inspection FROM key_place")
    cls = kp.groupby("category")["inspection_class"].agg(set)
    for cat in ("住宅小区", "自建出租房"):
        assert cls[cat] == {1}
    for cat in ("沿街商铺", "九小场所"):
        assert cls[cat] == {2}
    for cat in ("厂房仓库", "建筑工地", "高层建筑", "地下空间"):
        assert cls[cat] == {3}
    assert 0.01 < kp["last_inspection"].isna().mean() < 0.12


def test_other_area_and_errors(tmp_path: Path) -> None:
    demo = generate_demo(area="330326", scale=0.02, seed=3, end_date=END)
    counts = demo.counts()
    assert counts["grid"] > 1000 and counts["hazard"] == 1000
    towns = demo.layers["admin_area"].query("level == '街镇'")["name"]
    assert {"昆阳镇", "鳌江镇", "水头镇"} <= set(towns)
    boundary = load_boundary("330326").buffer(1e-6)
    for name, spec in LAYERS.items():
        if name in LIVE_ONLY:
            continue
        frame = demo.layers[name]
        assert len(frame) and frame["id"].is_unique, name
        assert shapely.covered_by(frame.geometry.to_numpy(), boundary).all(), name
        for f in spec.fields:
            if f.required:
                assert frame[f.name].notna().all(), (name, f.name)
            if f.choices:
                seen = set(frame[f.name].dropna().astype(str))
                assert seen <= set(f.choices), (name, f.name, seen - set(f.choices))
    graph = graph_from_tables(demo.road_nodes, demo.road_edges)
    for layer in ("micro_station", "fire_station", "water_source"):
        pts = demo.layers[layer].geometry
        snap = graph.snap(pts.x.to_numpy(), pts.y.to_numpy(), Settings().snap_distance_m)
        assert snap.ok.all() and snap.distance_m.max() <= (100 if layer != "water_source" else 150), layer
    with pytest.raises(ConfigError, match="310117"):
        build_demo(tmp_path / "x.duckdb", area="999999")
    with pytest.raises(ConfigError, match="end_date"):
        build_demo(tmp_path / "x.duckdb", end_date="30/06/2025")
    assert not (tmp_path / "x.duckdb").exists()


def test_emerging_new_and_intensifying_areas(demo_db: Path, end_of: datetime) -> None:
    """The first emerging town appears in the last weeks; the intensifying old centre grows."""
    towns = AREAS["310117"].towns
    new_town = next(t.name for t in towns if t.emerging)
    growing = next(t.name for t in towns if t.intensifying)
    end = pd.Timestamp(end_of)
    hz = _read(demo_db, "SELECT town, discovered_at FROM hazard")
    age = (end - hz["discovered_at"]).dt.days

    def rate(town: str, lo: int, hi: int) -> float:
        return ((hz.town == town) & (age >= lo) & (age < hi)).sum() / (hi - lo)

    assert rate(new_town, 0, 40) > 3 * rate(new_town, 120, 730)
    assert rate(growing, 0, 365) > 1.5 * rate(growing, 365, 730)
    assert rate("新浜镇", 0, 365) < 1.5 * rate("新浜镇", 365, 730)  # a quiet rural town


# --------------------------------------------------------------------------- measured response (issue 15)


def _first_due_against_model(demo_db: Path) -> pd.DataFrame:
    """Per attended call: its first-listed unit, that unit's layer, and the nearest working
    responder of that layer by the store's road model (one Dijkstra per layer), with the
    model's road seconds and the measured rolling → arrival seconds."""
    from geo.coverage import multi_source_times
    from geo.units import load_responders, match_units

    settings = Settings()
    con = store.connect(demo_db)
    try:
        graph = load_graph(con, settings)
        responders = load_responders(con)
        inc = con.execute("SELECT id, units, reported_at, dispatched_at, arrived_at, lon, lat FROM incident "
                          "WHERE units IS NOT NULL").df()
    finally:
        con.close()
    assert graph is not None
    working = responders[(responders["duty_status"] != "暂停执勤")
                         & responders["status"].isin(["在用", "在役"])].reset_index(drop=True)
    call_node = graph.snap(inc["lon"].to_numpy(), inc["lat"].to_numpy(), 1e9).node
    first = match_units(inc, responders).pairs.query("position == 0").set_index("incident_id")
    inc = inc.join(first[["layer", "unit_id"]], on="id")
    inc["nearest"], inc["model_s"] = None, np.nan
    for layer, rows in working.groupby("layer"):
        src = graph.snap(rows["lon"].to_numpy(), rows["lat"].to_numpy(), 1e9).node
        eta, which = multi_source_times(graph.seconds, src, np.zeros(len(rows)))
        sel = (inc["layer"] == layer).to_numpy()
        inc.loc[sel, "nearest"] = rows["id"].to_numpy()[which[call_node[sel]]]
        inc.loc[sel, "model_s"] = eta[call_node[sel]]
    inc["travel_s"] = (inc["arrived_at"] - inc["dispatched_at"]).dt.total_seconds()
    return inc


def test_incidents_carry_dispatch_times_and_units_around_the_road_model(demo_db: Path) -> None:
    inc = _read(demo_db, "SELECT kind, reported_at, dispatched_at, arrived_at, cleared_at, units, response_s, status "
                         "FROM incident")
    went = inc[inc["units"].notna()]
    assert len(went) > 0.6 * len(inc)
    # Times in order, response = call → arrival.
    done = went.dropna(subset=["cleared_at"])
    assert (done.reported_at <= done.dispatched_at).all() and (done.dispatched_at <= done.arrived_at).all()
    assert (done.arrived_at < done.cleared_at).all()
    assert np.allclose((done.arrived_at - done.reported_at).dt.total_seconds(), done.response_s)
    turnout = (went.dispatched_at - went.reported_at).dt.total_seconds().dropna()
    assert 45 <= turnout.median() <= 70 and turnout.quantile(0.99) > 120  # a tail of slow ones
    # First-due = the nearest working responder of its layer by road; travel ≈ model × noise.
    calls = _first_due_against_model(demo_db).dropna(subset=["travel_s"])
    assert (calls["unit_id"] == calls["nearest"]).mean() > 0.98
    fair = calls[(calls["unit_id"] == calls["nearest"]) & (calls["model_s"] > 90)]
    ratio = fair["travel_s"] / fair["model_s"]
    hour = fair["dispatched_at"].dt.hour
    rush = hour.isin([7, 8, 17, 18])
    profile = DemoProfile()
    assert abs(ratio[~rush].median() - profile.travel_bias) < 0.08
    assert abs(ratio[rush].median() / ratio[~rush].median() - profile.rush_hour_factor) < 0.25
    # Often a micro station first with a fire station behind it.
    two = calls["units"].str.contains("微型消防站|WXZ") & calls["units"].str.contains("消防救援站|消防队|XFZ")
    assert (calls["layer"] == "micro_station").mean() > 0.7 and two.mean() > 0.2


def test_units_by_name_and_id_a_few_unmatched_and_some_busy_now(demo_db: Path, end_of: datetime) -> None:
    from data.demo_response import OUTSIDE_UNITS
    from geo.units import busy_units, load_responders, match_units

    con = store.connect(demo_db)
    try:
        responders = load_responders(con)
        inc = con.execute("SELECT id, units, status, reported_at, dispatched_at, cleared_at FROM incident").df()
    finally:
        con.close()
    match = match_units(inc, responders)
    texts = match.pairs["unit_text"]
    assert (texts == match.pairs["unit_id"]).mean() > 0.1 and (texts == match.pairs["unit_name"]).mean() > 0.5
    assert 0 < len(match.unmatched) < 0.05 * len(match.pairs)
    assert set(match.unmatched["unit_text"]) <= set(OUTSIDE_UNITS) and set(match.unmatched["reason"]) == {"unknown"}
    # One or two responders are out of service, and none of them is ever sent.
    suspended = responders[responders["duty_status"] == "暂停执勤"]
    assert 1 <= len(suspended) <= 2
    assert not set(suspended["id"]) & set(match.pairs["unit_id"])
    # A few calls of today are still open: their units are busy at the end of the data.
    busy = busy_units(inc, responders, end_of)
    assert len(busy) >= 2 and set(inc.set_index("id").loc[busy["incident_id"], "status"]) <= {"处置中", "待处置"}


def test_key_places_pre_plan_and_vulnerable_people(demo_db: Path) -> None:
    kp = _read(demo_db, "SELECT category, storeys, occupants, hazmat FROM key_place")
    assert kp["storeys"].notna().all() and kp["occupants"].notna().all() and (kp["storeys"] >= 1).all()
    by = kp.groupby("category")
    assert by["storeys"].median()["高层建筑"] >= 10 and by["storeys"].max()["自建出租房"] <= 5
    assert kp["hazmat"].notna().sum() > 0 and kp.loc[kp["category"] == "住宅小区", "hazmat"].isna().all()
    people = _read(demo_db, "SELECT v.category, v.risk_level, v.mobility, v.age, "
                            "(SELECT min(ST_Distance_Sphere(v.geom, k.geom)) FROM key_place k "
                            " WHERE k.category IN ('住宅小区', '自建出租房', '规模租赁公寓')) AS home_m "
                            "FROM vulnerable_person v")
    assert len(people) == round(DemoProfile().vulnerable_people * 0.2)  # the fixture's scale
    assert {"独居老人", "残疾人", "卧床病人"} <= set(people["category"]) and set(people["risk_level"]) == {"低", "中", "高"}
    assert (people.loc[people["mobility"] == "不能行动", "risk_level"] == "高").all()
    assert (people.loc[people["category"] == "独居老人", "age"] >= 65).all()
    assert (people["home_m"] <= 100).mean() > 0.5  # most live at a residential key place
