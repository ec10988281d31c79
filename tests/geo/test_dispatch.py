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
from geo.errors import ValidationError
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


# --------------------------------------------------------------------------- availability, pre-plan, residents
# The hand-made district of tests/dispatch_district.py, stored through the real ingest.


@pytest.fixture(scope="module")
def district(tmp_path_factory: pytest.TempPathFactory):
    from dispatch_district import build_district

    return build_district(tmp_path_factory.mktemp("dispatch_district"))


def _picture(db, **kwargs):
    from dispatch_district import near_centre

    from geo import store
    from geo.coverage_inputs import load_scene
    from geo.settings import Settings

    con = store.connect(db)
    try:
        scene = load_scene(con, Settings())
        context = dispatch.load_context(con)
    finally:
        con.close()
    return dispatch.dispatch(scene, *near_centre(0, 0), context=context, **kwargs)


def _listed(result) -> list[tuple[str, str, int, object]]:
    r = result.responders
    calls = [None if pd.isna(c) else c for c in r["busy_incident"]]
    return list(zip(r["id"], r["availability"], r["group_rank"], calls, strict=True))


def test_picture_marks_busy_and_out_of_service_units_and_lists_the_next_available(district) -> None:
    from geo.settings import Settings

    out = _picture(district)  # a new call at C: I-NOW's unit M3 is busy with I-NOW
    micro = [row for row in _listed(out) if row[0].startswith("M")]
    assert micro == [
        ("M1", "busy", 0, "I-OPEN"),  # 300 m, out on I-OPEN (named by id)
        ("M2", "out_of_service", 0, None),  # 600 m, 暂停执勤
        ("M3", "busy", 0, "I-NOW"),  # 900 m, named by its name in the open call I-NOW
        ("M4", "on_duty", 1, None),  # 1200 m; the closed call I-OLD does not make it busy
        ("M5", "on_duty", 2, None),  # 1500 m
    ]
    fire = [row[:3] for row in _listed(out) if row[0].startswith("F")]
    assert fire == [("F1", "on_duty", 1), ("F2", "on_duty", 1), ("F3", "on_duty", 2)]
    assert set(out.responders["group"]) == {"micro_station", "fire_station:消防救援站", "fire_station:政府专职消防队"}
    assert out.responders["eta_s"].is_monotonic_increasing
    busy = out.responders.set_index("id")
    assert str(busy.loc["M1", "busy_since"]).startswith("2025-03-10 08:01")  # rolling time of I-OPEN
    assert not busy.loc[["M1", "M2", "M3"], "available"].any() and busy.loc[["M4", "M5"], "available"].all()
    # ETA by hand: residential speed × urban slowdown, Manhattan metres along the grid
    s = Settings()
    v = s.road_speeds_kmh["residential"] * s.urban_slowdown_factor / 3.6
    for unit, metres in {"M1": 300, "M4": 1200, "F1": 1500, "F2": 1800}.items():
        turnout = s.micro_station_turnout_s if unit.startswith("M") else s.fire_station_turnout_s
        assert busy.loc[unit, "eta_s"] == pytest.approx(turnout + metres / v, rel=0.01)
    data = json.loads(json.dumps(dispatch.to_json(out), allow_nan=False))
    first = next(r for r in data["responders"] if r["id"] == "M1")
    assert (first["availability"], first["busy_incident"], first["available"]) == ("busy", "I-OPEN", False)
    assert data["availability_known"] is True


def test_the_call_being_dispatched_does_not_make_its_own_unit_busy(district) -> None:
    out = _picture(district, incident_id="I-NOW")
    micro = [row[:3] for row in _listed(out) if row[0].startswith("M")]
    assert micro == [("M1", "busy", 0), ("M2", "out_of_service", 0), ("M3", "on_duty", 1), ("M4", "on_duty", 2)]
    route = out.responders.set_index("id").loc["M3", "route"]
    assert len(route) >= 2  # the unit to send has its route


def test_a_unit_is_available_again_once_its_call_is_closed(district, tmp_path) -> None:
    import shutil

    from dispatch_district import close_open_call

    db = tmp_path / "closed.duckdb"
    shutil.copyfile(district, db)
    close_open_call(db, tmp_path)
    out = _picture(db, incident_id="I-NOW")
    micro = [row[:3] for row in _listed(out) if row[0].startswith("M")]
    # M1 sent first; M2 (out of service) is nearer than the second available one, so it is shown
    assert micro == [("M1", "on_duty", 1), ("M2", "out_of_service", 0), ("M3", "on_duty", 2)]


def test_out_of_service_unit_is_skipped_even_when_it_is_the_only_one_near(district) -> None:
    out = _picture(district, incident_id="I-NOW", per_kind=1)
    micro = [row[:3] for row in _listed(out) if row[0].startswith("M")]
    assert micro == [("M1", "busy", 0), ("M2", "out_of_service", 0), ("M3", "on_duty", 1)]
    assert "no available" not in out.note


def test_kind_with_no_available_unit_says_so() -> None:
    graph = line_graph(21)
    resp = pd.DataFrame({"id": ["M", "F"], "layer": ["micro_station", "fire_station"],
                         "lon": lonlat(np.array([0.0, 2000.0]))[0], "lat": [lonlat(0.0)[1]] * 2})
    scene = make_scene(resp, graph, settings=SETTINGS)
    context = dispatch.CallContext(
        pd.Timestamp("2025-01-01").to_pydatetime(),
        pd.DataFrame({"layer": ["micro_station", "fire_station"], "id": ["M", "F"], "duty_status": ["暂停执勤", None]}),
        pd.DataFrame({"layer": [], "unit_id": [], "incident_id": [], "since": []}),
        pd.DataFrame({"id": []}), pd.DataFrame({c: [] for c in dispatch.VULNERABLE_FIELDS}),
    )
    out = dispatch.dispatch(scene, *map(float, lonlat(1000.0)), context=context)
    assert out.responders.set_index("id")["availability"].to_dict() == {"F": "on_duty", "M": "out_of_service"}
    assert "no available 微型消防站 (busy or out of service)" in out.note


def test_key_place_carries_the_pre_plan_with_personal_fields_masked(district) -> None:
    from dispatch_district import HOSTILE_HAZMAT

    out = _picture(district)
    kp = out.key_place
    assert (kp["id"], kp["category"], kp["inspection_class"]) == ("P1", "高层建筑", 3)
    assert (kp["storeys"], kp["occupants"], kp["hazmat"]) == (28, 1200, HOSTILE_HAZMAT)
    assert kp["last_inspection"].startswith("2025-02-15")
    assert (kp["contact"], kp["phone"]) == ("王**", "139****5678")
    assert out.hazards["id"].tolist() == ["Z1"]
    assert out.hydrants["id"].tolist() == ["H1"] and out.hydrants.loc[0, "status"] == "正常"
    shown = _picture(district, show_personal=True).key_place
    with pytest.raises(ValidationError, match="show_personal must be True or False, got 'false'"):
        _picture(district, show_personal="false")  # a truthy string must not unmask
    assert (shown["contact"], shown["phone"]) == ("王小明", "13912345678")


def test_vulnerable_residents_inside_the_radius_counted_and_listed_nearest_first(district) -> None:
    out = _picture(district)
    people = out.vulnerable
    assert out.vulnerable_radius_m == 300.0
    assert people["id"].tolist() == ["V1", "V2", "V3"]  # V4 at 315 m is outside
    assert people["distance_m"].to_numpy() == pytest.approx([100.0, 200.0, 290.0], abs=2.0)
    assert people["category"].tolist() == ["独居老人", "残疾人", "独居老人"]
    assert people["risk_level"].tolist() == ["高", "中", "高"]
    assert people["mobility"].tolist() == ["不能行动", "需协助", "自理"]
    assert people["address"].tolist() == ["中心路*号", "中心路*号", "南街*号"]  # masked: a home address is personal
    assert people["name"].tolist() == ["张*", "李*", "王*"]
    assert people["phone"].tolist()[:2] == ["138****5678", "137****1234"]
    assert people["carer"].tolist()[0] == "张** 139****1111"
    data = dispatch.to_json(out)["vulnerable"]
    assert (data["total"], data["radius_m"], data["distance"]) == (3, 300.0, "straight_line")
    assert data["by_category"] == [{"category": "独居老人", "count": 2}, {"category": "残疾人", "count": 1}]
    assert data["by_risk"] == [{"risk_level": "高", "count": 2}, {"risk_level": "中", "count": 1}]
    assert "张三" not in json.dumps(dispatch.to_json(out), ensure_ascii=False)
    shown = _picture(district, show_personal=True).vulnerable
    assert shown["name"].tolist() == ["张三", "李四", "王五"] and shown["phone"].tolist()[0] == "13812345678"


def test_radius_is_the_setting(district) -> None:
    from dispatch_district import near_centre

    from geo import store
    from geo.coverage_inputs import load_scene
    from geo.settings import Settings

    con = store.connect(district)
    try:
        scene = load_scene(con, Settings(dispatch_vulnerable_radius_m=320.0))
        context = dispatch.load_context(con)
    finally:
        con.close()
    out = dispatch.dispatch(scene, *near_centre(0, 0), context=context)
    assert out.vulnerable["id"].tolist() == ["V1", "V2", "V3", "V4"]


def test_cli_prints_availability_times_as_m_ss_residents_and_masks_by_default(district) -> None:
    from click.testing import CliRunner
    from dispatch_district import near_centre

    from dashboard.cli import cli

    lon, lat = (f"{v:.7f}" for v in near_centre(0, 0))
    out = CliRunner().invoke(cli, ["dispatch", lon, lat, "--db", str(district)])
    assert out.exit_code == 0, out.output
    lines = {line.split()[3]: line for line in out.output.splitlines() if line.split()[1:2] and line.split()[0].isdigit()}
    assert "busy: I-OPEN since 03-10 08:01" in lines["M1"] and "out of service" in lines["M2"]
    assert "busy: I-NOW" in lines["M3"] and "on duty" in lines["M4"]
    assert " 1:00 " in lines["M1"]  # the micro station's turnout, m:ss
    assert "vulnerable residents within 300 m (straight line): 3  [独居老人 2, 残疾人 1; risk: 高 2, 中 1]" in out.output
    assert "张*" in out.output and "张三" not in out.output and "13812345678" not in out.output
    assert "contact: 王**; phone: 139****5678" in out.output and "storeys: 28; occupants: 1200" in out.output
    own = CliRunner().invoke(cli, ["dispatch", lon, lat, "--db", str(district), "--incident", "I-NOW",
                                   "--show-personal", "--json"])
    data = json.loads(own.output)
    assert {r["id"]: r["availability"] for r in data["responders"]}["M3"] == "on_duty"
    assert data["personal"] == "shown" and data["vulnerable"]["people"][0]["name"] == "张三"
    assert data["key_place"]["phone"] == "13912345678"
    missing = CliRunner().invoke(cli, ["dispatch", lon, lat, "--db", str(district), "--incident", "{{7*7}}"])
    assert missing.exit_code == 2 and "no incident with id '{{7*7}}'" in missing.output
