"""Road import, speeds, one-way streets, graph building and snapping."""

from __future__ import annotations

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pyrosm
import pytest
import shapely
from test_coverage_cases import LAT0, SETTINGS, lonlat

from geo import network, store
from geo.errors import NetworkError, ReadError
from geo.settings import Settings

HELSINKI = pyrosm.get_data("helsinki_pbf")


@pytest.fixture(scope="module")
def helsinki_db(tmp_path_factory: pytest.TempPathFactory):
    db = tmp_path_factory.mktemp("helsinki") / "roads.duckdb"
    summary = network.import_roads(HELSINKI, db)
    return db, summary


def _nx_graph(db) -> nx.DiGraph:
    """An independent graph from the stored edge rows: seconds = length / (speed × factor / 3.6)."""
    con = store.connect(db)
    rows = con.execute("SELECT u, v, length_m, speed_kmh FROM road_edges").fetchall()
    factor = Settings().urban_slowdown_factor
    graph = nx.DiGraph()
    for u, v, length, speed in rows:
        if u == v:
            continue
        t = length / (speed * factor / 3.6)
        if not graph.has_edge(u, v) or graph[u][v]["t"] > t:
            graph.add_edge(u, v, t=t)
    return graph


def test_helsinki_import_counts_and_oneway(helsinki_db) -> None:
    db, summary = helsinki_db
    con = store.connect(db)
    n_nodes = con.execute("SELECT count(*) FROM road_nodes").fetchone()[0]
    assert summary["nodes"] == n_nodes > 1000
    # a one-way way has one row; a two-way way two rows in opposite directions
    both = con.execute("""SELECT count(*) FROM road_edges a JOIN road_edges b ON a.u = b.v AND a.v = b.u
                          WHERE a.oneway""").fetchone()[0]
    assert both == 0
    two_way = con.execute("SELECT count(*) FROM road_edges WHERE NOT oneway").fetchone()[0]
    assert two_way % 2 == 0 and two_way > 0
    assert (
        con.execute("SELECT count(*) FROM road_edges WHERE oneway").fetchone()[0]
        == summary["oneway_edges"]
        > 100
    )
    # speeds come from maxspeed (30/40 km/h in central Helsinki)
    speeds = {r[0] for r in con.execute("SELECT DISTINCT speed_kmh FROM road_edges").fetchall()}
    assert {30.0, 40.0} <= speeds


def test_helsinki_travel_times_equal_networkx(helsinki_db) -> None:
    from geo.coverage import multi_source_times

    db, _ = helsinki_db
    con = store.connect(db)
    graph = network.load_graph(con)
    ref = _nx_graph(db)
    rng = np.random.default_rng(3)
    sources = rng.choice(graph.n_nodes, 5, replace=False)
    eta, which = multi_source_times(graph.seconds, sources, np.zeros(len(sources)))
    expected = nx.multi_source_dijkstra_path_length(
        ref, {int(graph.node_ids[s]) for s in sources}, weight="t"
    )
    ids = graph.node_ids
    reached = np.isfinite(eta)
    assert reached.sum() == len(expected)
    got = {int(ids[i]): eta[i] for i in np.nonzero(reached)[0]}
    diff = max(abs(got[k] - v) for k, v in expected.items())
    assert diff < 1e-6  # the same to the second and well below
    # "which" names a source that really reaches the node in that time
    for i in rng.choice(np.nonzero(reached)[0], 20, replace=False):
        src = int(ids[sources[which[i]]])
        t = nx.dijkstra_path_length(ref, src, int(ids[i]), weight="t")
        assert abs(t - eta[i]) < 1e-6


def test_helsinki_oneway_reverse_trip_is_longer(helsinki_db) -> None:
    from scipy.sparse.csgraph import dijkstra

    db, _ = helsinki_db
    con = store.connect(db)
    graph = network.load_graph(con)
    ref = _nx_graph(db)
    ow = con.execute(
        "SELECT u, v FROM road_edges WHERE oneway AND length_m > 20 ORDER BY u, v"
    ).fetchall()
    checked = 0
    for u_id, v_id in ow[:40]:
        u = int(np.searchsorted(graph.node_ids, u_id))
        v = int(np.searchsorted(graph.node_ids, v_id))
        forward = dijkstra(graph.seconds, indices=u)[v]
        back = dijkstra(graph.seconds, indices=v)[u]
        assert abs(forward - nx.dijkstra_path_length(ref, u_id, v_id, weight="t")) < 1e-6
        if np.isfinite(back):
            assert abs(back - nx.dijkstra_path_length(ref, v_id, u_id, weight="t")) < 1e-6
        assert back > forward  # the street may not be driven against its direction
        checked += 1
    assert checked >= 20


def test_lines_file_oneway_square(tmp_path, tmp_db) -> None:
    """A 1 km square; the north side is one-way westward (Geofabrik 'T' = against drawing order)."""
    e = [0, 1000, 1000, 0]
    n = [0, 0, 1000, 1000]
    lo, la = lonlat(np.array(e, dtype=float), np.array(n, dtype=float))
    corners = list(zip(lo, la, strict=True))
    lines = [shapely.LineString([corners[i], corners[(i + 1) % 4]]) for i in range(4)]
    frame = gpd.GeoDataFrame(
        {
            "fclass": ["primary"] * 4,
            "maxspeed": ["36", "36", "36", "36"],
            "oneway": ["B", "B", "F", "B"],
            "name": ["S", "E", "N", "W"],
        },
        geometry=lines,
        crs=4326,
    )
    path = tmp_path / "roads.gpkg"
    frame.to_file(path)
    network.import_roads(path, tmp_db, SETTINGS)
    graph = network.load_graph(store.connect(tmp_db), SETTINGS)
    snap = graph.snap(lo, la, 5.0)
    assert snap.ok.all()
    a, b, c, d = snap.node
    from scipy.sparse.csgraph import dijkstra

    # the north side is drawn c → d and is one-way in that direction (F); 1000 m at 10 m/s
    assert dijkstra(graph.seconds, indices=c)[d] == pytest.approx(100.0, rel=0.005)
    # d → c must go round the other three sides: 3000 m = 300 s
    assert dijkstra(graph.seconds, indices=d)[c] == pytest.approx(300.0, rel=0.005)


def test_speeds_maxspeed_class_and_links() -> None:
    s = Settings()
    got = network.edge_speeds(
        ["primary", "primary_link", "residential", "weird", "secondary"],
        ["none", None, "20", None, "30 mph"],
        s,
    )
    assert got[0] == s.road_speeds_kmh["primary"]
    assert got[1] == s.road_speeds_kmh["primary"]
    assert got[2] == 20.0
    assert got[3] == s.road_speeds_kmh["default"]
    assert got[4] == pytest.approx(30 * 1.609344)


def test_snap_reports_far_points() -> None:
    from test_coverage_cases import line_graph

    graph = line_graph(5)
    lon, lat = lonlat(np.array([120.0, 100.0]), np.array([10.0, 400.0]))
    snap = graph.snap(lon, lat, 50.0)
    assert snap.ok.tolist() == [True, False]
    assert snap.node[1] == -1
    assert snap.node[0] == 1 and snap.distance_m[0] == pytest.approx(np.hypot(20, 10), rel=0.02)
    assert snap.distance_m[1] == pytest.approx(400.0, rel=0.01)


def test_bad_edges_name_the_row() -> None:
    nodes = pd.DataFrame({"node_id": [1, 2], "lon": [121.0, 121.001], "lat": [LAT0, LAT0]})
    edges = pd.DataFrame(
        {"u": [1, 2], "v": [2, 7], "length_m": [100.0, 100.0], "speed_kmh": [30.0, 30.0]}
    )
    with pytest.raises(NetworkError, match=r"row 1 \(u=2, v=7\)"):
        network.graph_from_tables(nodes, edges)
    edges = pd.DataFrame({"u": [1], "v": [2], "length_m": [100.0], "speed_kmh": [0.0]})
    with pytest.raises(NetworkError, match="speed_kmh=0.0"):
        network.graph_from_tables(nodes, edges)


def test_unknown_road_file(tmp_path) -> None:
    p = tmp_path / "roads.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(ReadError, match="unknown road file type"):
        network.read_roads(p)
    with pytest.raises(ReadError, match="not found"):
        network.read_roads(tmp_path / "missing.pbf")


def test_empty_store_has_no_graph(tmp_db) -> None:
    with store.writer(tmp_db):
        pass
    assert network.load_graph(store.connect(tmp_db)) is None
