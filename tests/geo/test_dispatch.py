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
    out = dispatch.dispatch(scene, graph.lon[target], graph.lat[target], n_responders=12)
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
