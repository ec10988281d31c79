"""Dispatch assist: responders ranked by travel time, routes, water and the key place."""

from __future__ import annotations

import json
import time

import networkx as nx
import numpy as np
import pandas as pd
import pyrosm
import pytest
from test_coverage_cases import SETTINGS, line_graph, lonlat

from geo import dispatch, network
from geo.coverage_inputs import make_scene


@pytest.fixture(scope="module")
def helsinki():
    nodes, edges = network.read_roads(pyrosm.get_data("helsinki_pbf"))
    graph = network.graph_from_tables(nodes, edges)
    ref = nx.DiGraph()
    factor = network.Settings().urban_slowdown_factor
    for u, v, length, speed in edges[["u", "v", "length_m", "speed_kmh"]].itertuples(index=False):
        t = length / (speed * factor / 3.6)
        if u != v and (not ref.has_edge(u, v) or ref[u][v]["t"] > t):
            ref.add_edge(int(u), int(v), t=t)
    return graph, ref


def test_ranking_equals_independent_travel_times(helsinki) -> None:
    graph, ref = helsinki
    rng = np.random.default_rng(8)
    pick = rng.choice(graph.n_nodes, 12, replace=False)
    resp = pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(12)],
            "layer": ["micro_station"] * 6 + ["fire_station"] * 6,
            "lon": graph.lon[pick],
            "lat": graph.lat[pick],
        }
    )
    scene = make_scene(resp, graph)
    target = int(rng.integers(graph.n_nodes))
    out = dispatch.dispatch(scene, graph.lon[target], graph.lat[target], per_kind=6)
    assert out.mode == "network" and out.node == target
    # independent: networkx from each responder to the incident, plus the layer's turnout
    to_incident = nx.single_source_dijkstra_path_length(
        ref.reverse(copy=False), int(graph.node_ids[target]), weight="t"
    )
    turnout = {
        "micro_station": SETTINGS.micro_station_turnout_s,
        "fire_station": SETTINGS.fire_station_turnout_s,
    }
    expected = {
        r.id: to_incident[int(graph.node_ids[p])] + turnout[r.layer]
        for r, p in zip(resp.itertuples(), pick, strict=True)
        if int(graph.node_ids[p]) in to_incident
    }
    order = sorted(expected, key=lambda k: (round(expected[k], 1), k))
    assert out.responders["id"].tolist() == order
    for row in out.responders.itertuples():
        assert row.eta_s == pytest.approx(expected[row.id], abs=0.05)
        assert row.route[0] == pytest.approx(
            [float(graph.lon[pick[int(row.id[1:])]]), float(graph.lat[pick[int(row.id[1:])]])]
        )
        assert row.route[-1] == pytest.approx([float(graph.lon[target]), float(graph.lat[target])])
    json.dumps(dispatch.to_json(out), ensure_ascii=False)


def test_nearest_hydrant_skips_damaged_and_shows_place_hazards() -> None:
    graph = line_graph(21)
    e = np.array([1000.0, 1040.0, 1100.0, 1300.0])
    lon, lat = lonlat(e)
    hyd = pd.DataFrame(
        {
            "id": ["h-dmg", "h-ok", "h-far", "h-low"],
            "name": ["近-损坏", "中", "远", "低压"],
            "status": ["损坏", "正常", "正常", "水压不足"],
            "lon": lon,
            "lat": lat,
        }
    )
    plon, plat = lonlat(np.array([1005.0]))
    place = pd.DataFrame(
        {
            "id": ["P1"],
            "name": ["幸福小区"],
            "category": ["住宅小区"],
            "inspection_class": [1],
            "lon": plon,
            "lat": plat,
        }
    )
    hz = pd.DataFrame(
        {
            "id": ["z1", "z2", "z3"],
            "category": ["堵塞占用生命通道"] * 3,
            "severity": ["重大", "一般", "一般"],
            "status": ["立案", "结案", "处置"],
            "place_id": ["P1", "P1", None],
            "lon": [plon[0], plon[0], lonlat(1900.0)[0]],
            "lat": [plat[0]] * 3,
        }
    )
    resp = pd.DataFrame(
        {
            "id": ["M", "F"],
            "layer": ["micro_station", "fire_station"],
            "lon": lonlat(np.array([0.0, 2000.0]))[0],
            "lat": [lat[0]] * 2,
        }
    )
    scene = make_scene(resp, graph, key_places=place, hazards=hz, hydrants=hyd, settings=SETTINGS)
    t0 = time.perf_counter()
    out = dispatch.dispatch(scene, *map(float, lonlat(1000.0)))
    took = time.perf_counter() - t0
    assert out.hydrants["id"].tolist() == ["h-ok", "h-far"]  # damaged and low-pressure ones skipped
    assert out.hydrants.loc[0, "road_m"] == pytest.approx(40.0, abs=1.0)
    assert out.key_place["id"] == "P1" and out.key_place["name"] == "幸福小区"
    assert out.hazards["id"].tolist() == [
        "z1"
    ]  # the closed one and the one elsewhere are not shown
    # 10 m/s: M is 1000 m away (60 + 100 s), F 1000 m (60 + 100 s) too; tie broken by id
    assert out.responders["id"].tolist() == ["F", "M"]
    assert out.responders["eta_s"].tolist() == [160.0, 160.0]
    assert out.responders["within_target"].tolist() == [
        True,
        True,
    ]  # fire 160 ≤ 300; micro 160 ≤ 180
    assert took < 0.5


def test_point_far_from_roads_falls_back_to_straight_line() -> None:
    graph = line_graph(11)
    resp = pd.DataFrame(
        {"id": ["M"], "layer": ["micro_station"], "lon": [lonlat(0.0)[0]], "lat": [lonlat(0.0)[1]]}
    )
    out = dispatch.dispatch(
        make_scene(resp, graph, settings=SETTINGS), *map(float, lonlat(0.0, 1000.0))
    )
    assert out.mode == "radius" and "straight-line" in out.note
    assert out.responders.loc[0, "distance_m"] == pytest.approx(1000.0, rel=0.01)


def test_each_kind_is_listed_even_when_micro_stations_are_all_nearer() -> None:
    """Joint dispatch: twelve micro stations close by must not push every fire station out."""
    graph = line_graph(61)  # 6 km of road, 10 m/s
    east = np.array([*(100.0 * np.arange(1, 13)), 4000.0, 4500.0, 5000.0, 5500.0, 6000.0])
    lon, lat = lonlat(east)
    resp = pd.DataFrame(
        {
            "id": [f"m{i:02d}" for i in range(12)] + ["f-nat", "f-gov", "f-gov2", "f-gov3", "f-none"],
            "layer": ["micro_station"] * 12 + ["fire_station"] * 5,
            "kind": ["社区"] * 6 + ["重点单位"] * 6
            + ["消防救援站", "政府专职消防队", "政府专职消防队", "政府专职消防队", None],
            "lon": lon,
            "lat": lat,
        }
    )
    scene = make_scene(resp, graph, settings=SETTINGS)
    out = dispatch.dispatch(scene, *map(float, lonlat(0.0)))
    per_kind = SETTINGS.dispatch_per_kind
    groups = out.responders.groupby("group")["id"].apply(list).to_dict()
    assert groups == {
        "micro_station": [f"m{i:02d}" for i in range(per_kind)],  # micro kinds are one group
        "fire_station:消防救援站": ["f-nat"],
        "fire_station:政府专职消防队": ["f-gov", "f-gov2", "f-gov3"][:per_kind],
        "fire_station": ["f-none"],  # a fire station with no stored kind still counts
    }
    assert out.responders["eta_s"].is_monotonic_increasing  # one picture ordered by ETA
    assert out.responders["rank"].tolist() == list(range(1, len(out.responders) + 1))
    assert (out.responders.groupby("group")["group_rank"].min() == 1).all()
    assert out.note == ""
    three = dispatch.dispatch(scene, *map(float, lonlat(0.0)), per_kind=3)
    assert (three.responders["group"] == "micro_station").sum() == 3


def test_demo_dispatch_always_shows_a_reachable_fire_station(demo_db) -> None:
    """On the demo, every newest incident's picture has a fire station whenever one is reachable."""
    from scipy.sparse.csgraph import dijkstra

    from geo import store
    from geo.coverage_inputs import load_scene
    from geo.settings import Settings

    con = store.connect(demo_db)
    try:
        scene = load_scene(con, Settings())
        incidents = con.execute(
            "SELECT lon, lat FROM incident ORDER BY reported_at DESC, id LIMIT 60"
        ).fetchall()
    finally:
        con.close()
    assert scene.mode == "network" and len(incidents) == 60
    fire = scene.responders[scene.responders["layer"] == "fire_station"]
    fire_nodes = fire["node"].to_numpy(np.int64)
    fire_nodes = fire_nodes[fire_nodes >= 0]
    snap = scene.graph.snap(
        np.array([r[0] for r in incidents]), np.array([r[1] for r in incidents]),
        scene.settings.snap_distance_m,
    )
    # independent reachability: travel times from every fire station, forward along the roads
    from_fire = dijkstra(scene.graph.seconds, indices=fire_nodes, min_only=True)
    missing = 0
    for (lon, lat), node, ok in zip(incidents, snap.node, snap.ok, strict=True):
        out = dispatch.dispatch(scene, lon, lat)
        reachable = (not ok) or np.isfinite(from_fire[node])
        listed = (out.responders["layer"] == "fire_station").any()
        missing += int(reachable and not listed)
        json.dumps(dispatch.to_json(out), allow_nan=False)
    assert missing == 0
