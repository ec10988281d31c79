"""Travel-time coverage on hand-built roads: ETA, targets, radius mode, first-due areas, clusters, what-if."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyrosm
import pytest
import shapely.geometry
from test_coverage_cases import SETTINGS, line_graph, lonlat

from geo import coverage, h3index, network
from geo.coverage_inputs import make_scene


def responders(
    rows: list[tuple[str, str, float, float]], station_class: list[str | None] | None = None
) -> pd.DataFrame:
    lon, lat = lonlat(np.array([r[2] for r in rows]), np.array([r[3] for r in rows]))
    out = pd.DataFrame(
        {"id": [r[0] for r in rows], "layer": [r[1] for r in rows], "lon": lon, "lat": lat}
    )
    out["station_class"] = station_class or [None] * len(rows)
    out["name"] = out["id"]
    return out


def places(easts: list[float], classes: list[int] | None = None) -> pd.DataFrame:
    lon, lat = lonlat(np.array(easts, dtype=float))
    return pd.DataFrame(
        {
            "id": [f"p{int(e)}" for e in easts],
            "name": [f"场所{int(e)}" for e in easts],
            "category": "住宅小区",
            "inspection_class": classes or [1] * len(easts),
            "lon": lon,
            "lat": lat,
        }
    )


def test_micro_station_eta_is_turnout_plus_travel_and_three_minutes() -> None:
    # 10 m/s: ETA = 60 s turnout + metres / 10; on scene within 180 s ⇔ within 1200 m of road
    graph = line_graph(31)
    scene = make_scene(
        responders([("M", "micro_station", 0, 0)]),
        graph,
        key_places=places([500, 1200, 1300, 3000]),
        settings=SETTINGS,
    )
    result = coverage.compute_coverage(scene)
    assert result.mode == "network"
    kp = result.key_places.set_index("id")
    assert kp["eta_s"].round(6).tolist() == [110.0, 180.0, 190.0, 360.0]
    assert kp["covered"].tolist() == [True, True, False, False]
    assert kp.loc["p500", "responder_id"] == "M"


def test_fire_station_five_minutes_and_combined_cover() -> None:
    graph = line_graph(31)
    scene = make_scene(
        responders([("M", "micro_station", 0, 0), ("F", "fire_station", 3000, 0)], [None, "一级"]),
        graph,
        key_places=places([500, 1300, 2000, 2600]),
        settings=SETTINGS,
    )
    kp = coverage.compute_coverage(scene).key_places.set_index("id")
    # fire: 60 + (3000 - east) / 10 → 230, 160, 100; micro: 60 + east / 10 → 110, 190, 260, 320
    assert kp["eta_fire_station"].round(6).tolist() == [310.0, 230.0, 160.0, 100.0]
    assert kp["eta_micro_station"].round(6).tolist() == [110.0, 190.0, 260.0, 320.0]
    assert kp["covered"].tolist() == [
        True,
        True,
        True,
        True,
    ]  # 1300 m: micro late (190 > 180), fire in 230 ≤ 300
    assert kp["responder_id"].tolist() == ["M", "M", "F", "F"]
    assert kp["eta_s"].round(6).tolist() == [110.0, 190.0, 160.0, 100.0]


def test_radius_mode_without_roads() -> None:
    scene = make_scene(
        responders([("M", "micro_station", 0, 0)]),
        None,
        key_places=places([900, 1300]),
        settings=SETTINGS,
    )
    result = coverage.compute_coverage(scene)
    assert result.mode == "radius" and coverage.summary(result)["mode"] == "radius"
    kp = result.key_places.set_index("id")
    # straight line at radius_mode_speed_kmh = 30 km/h: 900 m → 60 + 108 = 168 s; 1300 m → 216 s
    assert kp.loc["p900", "eta_s"] == pytest.approx(168.0, abs=0.5)
    assert kp.loc["p1300", "eta_s"] == pytest.approx(216.0, abs=0.5)
    assert kp["covered"].tolist() == [True, False]


def test_radius_mode_forced_even_with_roads() -> None:
    scene = make_scene(
        responders([("M", "micro_station", 0, 0)]),
        line_graph(5),
        key_places=places([100]),
        settings=SETTINGS,
        mode="radius",
    )
    assert coverage.compute_coverage(scene).mode == "radius"


def test_far_responder_is_reported_not_snapped() -> None:
    scene = make_scene(
        responders([("M", "micro_station", 0, 0), ("X", "micro_station", 500, 900)]),
        line_graph(11),
        settings=SETTINGS,
    )
    assert scene.unsnapped["id"].tolist() == ["X"]
    assert scene.unsnapped["snap_m"].iloc[0] == pytest.approx(900, rel=0.01)
    assert coverage.compute_coverage(scene).responders["id"].tolist() == ["M"]


def test_first_due_areas_split_at_the_middle_and_limits() -> None:
    graph = line_graph(31)
    settings = SETTINGS.with_overrides(station_area_limits_km2={"一级": 7.0, "小型": 0.01})
    scene = make_scene(
        responders([("A", "fire_station", 0, 0), ("B", "fire_station", 3000, 0)], ["一级", "小型"]),
        graph,
        settings=settings,
    )
    result = coverage.compute_coverage(scene)
    cells = result.cells[(result.cells["res"] == 10) & (result.cells["node"] != 15)]
    expected = np.where(cells["node"] < 15, "A", "B")
    assert (cells["first_fire_station"].to_numpy() == expected).all()
    due = coverage.first_due_areas(result).set_index("id")
    total = result.cells.loc[result.cells["res"] == 10, "area_km2"].sum()
    assert due["area_km2"].sum() == pytest.approx(total, rel=1e-3)
    assert due.loc["A", "limit_km2"] == 7.0 and not due.loc["A", "over_limit"]
    assert due.loc["B", "limit_km2"] == 0.01 and due.loc["B", "over_limit"]


def test_uncovered_clusters_ranked_by_weight_and_isochrones() -> None:
    # 6 km road, micro station in the middle: both ends are uncovered; the east end holds key places
    graph = line_graph(61)
    scene = make_scene(
        responders([("M", "micro_station", 3000, 0)]),
        graph,
        key_places=places([5600, 5700, 5800, 5900]),
        settings=SETTINGS,
    )
    result = coverage.compute_coverage(scene)
    clusters = coverage.uncovered_clusters(result)
    assert len(clusters) == 2
    assert clusters["rank"].tolist() == [1, 2]
    assert clusters.loc[0, "lon"] > lonlat(3000)[0] > clusters.loc[1, "lon"]
    assert clusters.loc[0, "places"] == 4 and clusters.loc[1, "places"] == 0
    assert clusters.loc[0, "weight"] > clusters.loc[1, "weight"]
    iso = coverage.isochrones(result, [1, 3])
    # 1 min is the turnout: only the station's own spot is reached
    one = shapely.geometry.shape(iso[1.0])
    assert one.contains(shapely.geometry.Point(*lonlat(3000))) and not one.contains(
        shapely.geometry.Point(*lonlat(3300))
    )
    shape = shapely.geometry.shape(iso[3.0])
    inside = shapely.geometry.Point(*lonlat(3500))
    outside = shapely.geometry.Point(*lonlat(5000))
    assert shape.contains(inside) and not shape.contains(outside)


def test_figures_per_town() -> None:
    graph = line_graph(31)
    cells = pd.DataFrame({"cell": h3index.cells_at(graph.lon, graph.lat, 10), "res": 10})
    cells = cells.drop_duplicates("cell")
    east = (np.asarray(h3index.cell_centres(cells["cell"].to_numpy())[0]) - lonlat(0)[0]) * 1
    cells["town"] = np.where(east < lonlat(1000)[0] - lonlat(0)[0], "西镇", "东镇")
    scene = make_scene(
        responders([("M", "micro_station", 0, 0)]),
        graph,
        cells=cells,
        key_places=places([100, 2900], [1, 2]).assign(town=["西镇", "东镇"]),
        settings=SETTINGS,
    )
    fig = coverage.figures(coverage.compute_coverage(scene), "town").set_index("name")
    assert fig.loc["西镇", "area_share"] == 1.0
    assert 0 < fig.loc["东镇", "area_share"] < 1.0
    assert fig.loc["西镇", "places_share"] == 1.0 and fig.loc["东镇", "places_share"] == 0.0
    assert fig.loc["西镇", "class1_share"] == 1.0 and fig.loc["东镇", "class2_share"] == 0.0


@pytest.fixture(scope="module")
def helsinki_scene():
    nodes, edges = network.read_roads(pyrosm.get_data("helsinki_pbf"))
    graph = network.graph_from_tables(nodes, edges)
    rng = np.random.default_rng(11)
    pick = rng.choice(graph.n_nodes, 8, replace=False)
    resp = pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(8)],
            "layer": ["micro_station"] * 5 + ["fire_station"] * 3,
            "lon": graph.lon[pick],
            "lat": graph.lat[pick],
            "station_class": [None] * 5 + ["一级"] * 3,
        }
    )
    return make_scene(resp, graph)


def test_whatif_edits_equal_a_full_recompute(helsinki_scene) -> None:
    scene = helsinki_scene
    g = scene.graph
    engine = coverage.CoverageEngine(scene)
    rng = np.random.default_rng(5)
    edits = [
        ("add", "n1", "micro_station"),
        ("remove", "r1", None),
        ("move", "r2", None),
        ("add", "n2", "fire_station"),
        ("remove", "r6", None),
        ("move", "n1", None),
        ("remove", "r0", None),
        ("add", "n3", "micro_station"),
    ]
    for action, rid, layer in edits:
        i = int(rng.integers(g.n_nodes))
        if action == "add":
            engine.add(rid, g.lon[i], g.lat[i], layer)
        elif action == "move":
            engine.move(rid, g.lon[i], g.lat[i])
        else:
            engine.remove(rid)
    active = engine.responders[engine.responders["active"]]
    full = coverage.compute_coverage(scene, active.drop(columns="active"))
    for layer in full.layers:
        a, b = engine.node_eta[layer], full.node_eta[layer]
        assert np.array_equal(np.isfinite(a), np.isfinite(b))
        assert np.allclose(a[np.isfinite(a)], b[np.isfinite(b)], atol=1e-9)
    assert (engine.result.cells["covered"].to_numpy() == full.cells["covered"].to_numpy()).all()
    assert engine.summary() == coverage.summary(full)  # the incrementally carried figures agree
    # every node's named responder really reaches it in that time
    from scipy.sparse.csgraph import dijkstra

    for layer in full.layers:
        first = engine.node_first[layer]
        for row in np.unique(first[first >= 0]):
            r = engine.responders.loc[row]
            assert r["active"] and r["layer"] == layer
            d = dijkstra(g.seconds, indices=int(r["node"]))
            mine = first == row
            assert np.allclose(engine.node_eta[layer][mine], r["turnout_s"] + d[mine])


def test_whatif_add_then_remove_restores_figures(helsinki_scene) -> None:
    engine = coverage.CoverageEngine(helsinki_scene)
    before = coverage.summary(engine.result)
    uncovered = engine.result.cells[
        (engine.result.cells["res"] == 10) & ~engine.result.cells["covered"]
    ]
    target = uncovered.iloc[0]
    added = engine.add("new", target["lon"], target["lat"])
    assert added.diff["covered_km2"] > 0 and added.after["area_share"] > added.before["area_share"]
    assert added.changed_nodes > 0
    removed = engine.remove("new")
    assert removed.after == before


def test_summary_of_one_town_counts_only_its_cells_and_places() -> None:
    from dataclasses import replace

    graph = line_graph(31)  # 3 km of road, east 0 … 3000 m; micro station at east 0 reaches east ≤ 1200 m
    scene = make_scene(responders([("M", "micro_station", 0, 0)]), graph,
                       key_places=places([500, 1300, 2000, 2600]), settings=SETTINGS)
    result = coverage.compute_coverage(scene)
    west_x = scene.key_places["x"].iloc[1] + 200  # between the places at 1300 m and 2000 m (x = east − 1500)
    towns = replace(result,
                    cells=result.cells.assign(town=np.where(result.cells["x"] < west_x, "西镇", "东镇")),
                    key_places=result.key_places.assign(
                        town=np.where(result.key_places["x"] < west_x, "西镇", "东镇")))
    whole, west, east = (coverage.summary(towns, town) for town in (None, "西镇", "东镇"))
    assert (west["places"], west["places_covered"]) == (2, 1)  # 500 m in 110 s; 1300 m in 190 s > 180 s
    assert (east["places"], east["places_covered"]) == (2, 0)
    assert east["area_share_micro_station"] == 0.0 and west["area_share_micro_station"] > 0.5
    assert west["area_km2"] + east["area_km2"] == pytest.approx(whole["area_km2"], abs=1e-3)
    assert west["covered_km2"] == pytest.approx(whole["covered_km2"], abs=1e-3)
    assert coverage.summary(towns, "无此镇")["area_share"] is None


def test_blind_spot_summary_is_a_share_of_built_up_fine_cells() -> None:
    from geo.water import WaterBlindSpots

    cells = pd.DataFrame({  # res-9 rows must not count: the figure is over res-10 cells, like summary's
        "res": [10, 10, 10, 10, 9], "area_km2": [0.01, 0.01, 0.02, 0.04, 0.10],
        "town": ["甲", "甲", "乙", "乙", "甲"], "blind": [True, False, True, False, True],
    })
    places_ = pd.DataFrame({"town": ["甲", "乙", "乙"], "blind": [False, True, True]})
    spots = WaterBlindSpots(150.0, cells, places_)
    whole = coverage.blind_spot_summary(spots)
    assert whole["blind_share"] == pytest.approx(0.03 / 0.08) and whole["blind_cells"] == 2
    assert (whole["places"], whole["blind_places"], whole["radius_m"]) == (3, 2, 150.0)
    town = coverage.blind_spot_summary(spots, "甲")
    assert (town["blind_share"], town["blind_km2"], town["blind_places"]) == (0.5, 0.01, 0)
    assert coverage.blind_spot_summary(spots, "丙")["blind_share"] is None
