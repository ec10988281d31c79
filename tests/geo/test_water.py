"""Hydrant blind spots, spacing along roads and nearest water on hand-built cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_coverage_cases import SETTINGS, line_graph, lonlat

from geo import water
from geo.coverage_inputs import make_scene
from geo.network import graph_from_tables

NOBODY = pd.DataFrame(
    {"id": ["M"], "layer": ["micro_station"], "lon": [lonlat(0)[0]], "lat": [lonlat(0)[1]]}
)


def points(prefix: str, easts: list[float], statuses: list[str], **extra) -> pd.DataFrame:
    lon, lat = lonlat(np.array(easts, dtype=float))
    return pd.DataFrame(
        {
            "id": [f"{prefix}{i}" for i in range(len(easts))],
            "name": [f"{prefix}{i}" for i in range(len(easts))],
            "status": statuses,
            "lon": lon,
            "lat": lat,
            **extra,
        }
    )


def test_blind_spots_ignore_damaged_hydrants() -> None:
    place = points("p", [200.0], ["-"]).drop(columns="status")
    # working hydrant 200 m away, a damaged one 10 m away: the place is blind (> 150 m)
    hyd = points("h", [0.0, 190.0], ["正常", "损坏"])
    spots = water.hydrant_blind_spots(
        make_scene(NOBODY, None, key_places=place, hydrants=hyd, settings=SETTINGS)
    )
    row = spots.key_places.iloc[0]
    assert (
        row["blind"]
        and row["hydrant_id"] == "h0"
        and row["hydrant_m"] == pytest.approx(200, rel=0.01)
    )
    # a working hydrant 100 m beyond the place removes the blind spot
    hyd = points("h", [0.0, 190.0, 300.0], ["正常", "损坏", "正常"])
    spots = water.hydrant_blind_spots(
        make_scene(NOBODY, None, key_places=place, hydrants=hyd, settings=SETTINGS)
    )
    row = spots.key_places.iloc[0]
    assert (
        not row["blind"]
        and row["hydrant_id"] == "h2"
        and row["hydrant_m"] == pytest.approx(100, rel=0.01)
    )
    # cells: blind exactly where the centre is > 150 m from the working hydrants
    cells = spots.cells
    assert (
        (cells["blind"] == (cells["hydrant_m"] > 150)).all()
        and cells["blind"].any()
        and (~cells["blind"]).any()
    )


def test_spacing_along_roads_between_neighbouring_hydrants() -> None:
    # a 400 m road with nodes every 10 m; working hydrants at 0, 100, 250 m, a damaged one at 180 m
    graph = line_graph(41, step_m=10.0)
    hyd = points("h", [0.0, 100.0, 250.0, 180.0], ["正常", "正常", "正常", "损坏"])
    scene = make_scene(NOBODY, graph, hydrants=hyd, settings=SETTINGS)
    spacing = water.hydrant_spacing(scene)
    pairs = {
        tuple(sorted((a, b))): (m, o)
        for a, b, m, o in spacing[["a_id", "b_id", "spacing_m", "over_limit"]].itertuples(
            index=False
        )
    }
    assert set(pairs) == {("h0", "h1"), ("h1", "h2")}  # h0-h2 are not neighbours; h3 is damaged
    assert pairs[("h0", "h1")] == (pytest.approx(100.0), False)
    assert pairs[("h1", "h2")] == (pytest.approx(150.0), True)
    assert spacing.iloc[0]["a_id"] in ("h1", "h2") and spacing["mode"].eq("network").all()


def test_nearest_water_skips_damaged_source_and_gives_capacity() -> None:
    graph = line_graph(21)
    place = points("p", [1000.0], ["-"]).drop(columns="status")
    ws = points(
        "w",
        [900.0, 1500.0, 0.0],
        ["损坏", "正常", None],
        kind=["消防水池", "消防水池", "天然水源取水点"],
        capacity_m3=[800.0, 600.0, None],
    )
    out = water.nearest_water(
        make_scene(NOBODY, graph, key_places=place, water_sources=ws, settings=SETTINGS)
    )
    row = out.iloc[0]
    assert row["source_id"] == "w1" and row["capacity_m3"] == 600.0 and row["kind"] == "消防水池"
    assert row["road_m"] == pytest.approx(500.0, abs=1.0)


def street_graph():
    """A straight 1 km street (nodes at 0, 200 and 1000 m east) and a 100 m side street north at 200 m."""
    xy = np.array([[0.0, 0.0], [200.0, 0.0], [1000.0, 0.0], [200.0, 100.0]])
    lon, lat = lonlat(xy[:, 0], xy[:, 1])
    nodes = pd.DataFrame({"node_id": np.arange(4, dtype=np.int64), "lon": lon, "lat": lat})
    u, v, m = np.array([0, 1, 1]), np.array([1, 2, 3]), np.array([200.0, 800.0, 100.0])
    edges = pd.DataFrame(
        {"u": np.r_[u, v], "v": np.r_[v, u], "length_m": np.r_[m, m], "speed_kmh": 36.0}
    )
    return graph_from_tables(nodes, edges, SETTINGS)


def spacing_pairs(spacing: pd.DataFrame) -> dict[tuple[str, str], float]:
    return {
        tuple(sorted((a, b))): m
        for a, b, m in spacing[["a_id", "b_id", "spacing_m"]].itertuples(index=False)
    }


def test_spacing_measures_positions_on_edges_not_nodes() -> None:
    # hydrants at 0, 100, 250 and 300 m along the street (250 and 300 share the node-less
    # 200-1000 m edge), one 80 m up the side street, one 500 m off any road
    east = np.array([0.0, 100.0, 250.0, 300.0, 200.0, 600.0])
    north = np.array([0.0, 0.0, 0.0, 0.0, 80.0, 500.0])
    lon, lat = lonlat(east, north)
    ids = ["h0", "h100", "h250", "h300", "side", "far"]
    hyd = pd.DataFrame({"id": ids, "name": ids, "status": "正常", "lon": lon, "lat": lat})
    scene = make_scene(NOBODY, street_graph(), hydrants=hyd, settings=SETTINGS)
    spacing = water.hydrant_spacing(scene)
    pairs = spacing_pairs(spacing)
    assert set(pairs) == {("h0", "h100"), ("h100", "h250"), ("h250", "h300"), ("h250", "side")}
    assert pairs[("h0", "h100")] == pytest.approx(100.0, abs=0.5)
    assert pairs[("h100", "h250")] == pytest.approx(150.0, abs=0.5)
    assert pairs[("h250", "h300")] == pytest.approx(50.0, abs=0.5)
    assert pairs[("h250", "side")] == pytest.approx(130.0, abs=0.5)  # 50 m along, 80 m up
    over = spacing[spacing["over_limit"]]
    assert set(spacing_pairs(over)) == {("h100", "h250"), ("h250", "side")}


def test_spacing_of_many_hydrants_on_one_street_equals_their_sorted_gaps() -> None:
    # 60 hydrants at random places along a 2 km street with a node every 250 m: the spacing
    # pairs are the neighbours in order along the street and their gaps (no two collapse)
    rng = np.random.default_rng(11)
    east = np.sort(rng.uniform(0.0, 2000.0, 60))
    hyd = points("h", list(east), ["正常"] * 60)
    scene = make_scene(NOBODY, line_graph(9, step_m=250.0), hydrants=hyd, settings=SETTINGS)
    pairs = spacing_pairs(water.hydrant_spacing(scene))
    expected = {(f"h{i}", f"h{i + 1}"): g for i, g in enumerate(np.diff(east))}
    assert {tuple(sorted(k)) for k in expected} == set(pairs)
    for (a, b), gap in expected.items():
        assert pairs[tuple(sorted((a, b)))] == pytest.approx(gap, abs=0.5)


def test_hydrant_below_the_minimum_pressure_does_not_count_and_is_listed() -> None:
    place = points("p", [200.0], ["-"]).drop(columns="status")
    # all three say 正常; the one 10 m away has 0.10 MPa (< 0.14, GB 50974 §7.2.8)
    hyd = points("h", [0.0, 190.0, 260.0], ["正常"] * 3, pressure_mpa=[0.3, 0.10, np.nan])
    scene = make_scene(NOBODY, None, key_places=place, hydrants=hyd, settings=SETTINGS)
    row = water.hydrant_blind_spots(scene).key_places.iloc[0]
    assert row["hydrant_id"] == "h2" and row["hydrant_m"] == pytest.approx(60, rel=0.01)
    check = water.water_check(scene)
    assert check[["layer", "id"]].values.tolist() == [["hydrant", "h1"]]
    assert check.iloc[0]["value"] == 0.10 and check.iloc[0]["limit"] == 0.14
    assert "0.14" in check.iloc[0]["problem"]


def test_fire_pool_below_the_minimum_capacity_is_flagged() -> None:
    graph = line_graph(21)
    place = points("p", [1000.0], ["-"]).drop(columns="status")
    ws = points(
        "w",
        [1100.0, 1500.0, 0.0, 300.0],
        ["正常", "正常", None, "正常"],
        kind=["消防水池", "消防水池", "天然水源取水点", "消防水池"],
        capacity_m3=[300.0, 600.0, None, None],
    )
    scene = make_scene(NOBODY, graph, key_places=place, water_sources=ws, settings=SETTINGS)
    row = water.nearest_water(scene).iloc[0]
    assert row["source_id"] == "w0" and bool(row["below_min"])  # 300 m³ < 500 m³ (seed 003)
    check = water.water_check(scene)
    assert check[["layer", "id", "value", "limit"]].values.tolist() == [
        ["water_source", "w0", 300.0, 500.0]
    ]


def test_spacing_agrees_with_along_road_distance_on_a_street_grid() -> None:
    # 6 × 6 street grid, 100 m blocks; 40 hydrants at random places along random streets,
    # 3 m off the centre line. Truth (independent of the code under test): the distance
    # between two hydrants is the offset difference on one street, else the least of
    # offset + node-to-node shortest path + offset over the four street-end pairs. Each
    # hydrant's nearest neighbour along the roads must be one of its pairs at that distance.
    from scipy.sparse import csr_array
    from scipy.sparse.csgraph import dijkstra

    rng = np.random.default_rng(5)
    n = 6
    gx, gy = np.meshgrid(np.arange(n) * 100.0, np.arange(n) * 100.0)
    gx, gy = gx.ravel(), gy.ravel()
    node = np.arange(n * n).reshape(n, n)
    u = np.r_[node[:, :-1].ravel(), node[:-1, :].ravel()]
    v = np.r_[node[:, 1:].ravel(), node[1:, :].ravel()]
    lon, lat = lonlat(gx, gy)
    nodes = pd.DataFrame({"node_id": np.arange(n * n, dtype=np.int64), "lon": lon, "lat": lat})
    edges = pd.DataFrame(
        {"u": np.r_[u, v], "v": np.r_[v, u], "length_m": 100.0, "speed_kmh": 36.0}
    )
    graph = graph_from_tables(nodes, edges, SETTINGS)
    k = 40
    e = rng.integers(0, len(u), k)
    t = rng.uniform(0.05, 0.95, k)  # ≥ 5 m from a corner: the nearest street is its own
    dx, dy = gx[v[e]] - gx[u[e]], gy[v[e]] - gy[u[e]]
    hx = gx[u[e]] + t * dx - dy / 100.0 * 3.0
    hy = gy[u[e]] + t * dy + dx / 100.0 * 3.0
    hlon, hlat = lonlat(hx, hy)
    ids = [f"h{i}" for i in range(k)]
    hyd = pd.DataFrame({"id": ids, "name": ids, "status": "正常", "lon": hlon, "lat": hlat})
    spacing = water.hydrant_spacing(make_scene(NOBODY, graph, hydrants=hyd, settings=SETTINGS))

    adj = csr_array((np.full(2 * len(u), 100.0), (np.r_[u, v], np.r_[v, u])), shape=(n * n,) * 2)
    node_d = dijkstra(adj)
    off = t * 100.0
    ends = [(u[e], off), (v[e], 100.0 - off)]
    truth = np.full((k, k), np.inf)
    for end_a, off_a in ends:
        for end_b, off_b in ends:
            truth = np.minimum(truth, off_a[:, None] + node_d[end_a][:, end_b] + off_b[None, :])
    same = e[:, None] == e[None, :]
    truth = np.where(same, np.abs(off[:, None] - off[None, :]), truth)
    np.fill_diagonal(truth, np.inf)

    index = {h: i for i, h in enumerate(ids)}
    a = spacing["a_id"].map(index).to_numpy()
    b = spacing["b_id"].map(index).to_numpy()
    got = spacing["spacing_m"].to_numpy()
    assert (got >= truth[a, b] - 0.5).all(), spacing[got < truth[a, b] - 0.5]
    for i in range(k):
        mine = got[(a == i) | (b == i)]
        assert mine.min() == pytest.approx(truth[i].min(), abs=0.5)
