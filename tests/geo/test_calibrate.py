"""Modelled vs measured travel and the slow-down fit, on Helsinki's real road network.

Calls are generated whose travel is the free-flow road time (networkx on the stored edge rows,
independent of onemap's graph) divided by 0.6, with ±3 % noise, plus ten wild calls (five times
too slow); they are ingested for real (CSV → DuckDB file) with rows that must be skipped for
known reasons. The fit must give 0.6 ± 0.02.
"""

from __future__ import annotations

import math
import tomllib
from datetime import date
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pyrosm
import pytest

from geo import calibrate, ingest, network, store
from geo.errors import ConfigError, NetworkError, ValidationError
from geo.settings import Settings

HELSINKI = pyrosm.get_data("helsinki_pbf")
TRUE_FACTOR = 0.6
GOOD_CALLS, WILD_CALLS = 400, 10
STATIONS = pd.DataFrame({"id": ["F1", "F2"], "name": ["一号消防站", "二号消防站"]})
MICROS = pd.DataFrame({"id": ["M1", "M2", "M9"], "name": ["甲微站", "乙微站", "远郊微站"]})
# skipped rows and the reason each must be counted under
SKIPPED = {"no_times": 3, "no_unit": 2, "unit_unmatched": 2, "call_off_road": 1, "unit_off_road": 1}


def free_flow_graph(db: Path) -> nx.DiGraph:
    """Free-flow seconds (length / class speed) per edge from the stored rows; fastest parallel edge."""
    con = store.connect(db)
    rows = con.execute("SELECT u, v, length_m, speed_kmh, highway FROM road_edges").fetchall()
    graph = nx.DiGraph()
    for u, v, length, speed, highway in rows:
        t = length / (speed / 3.6)
        if u != v and (not graph.has_edge(u, v) or graph[u][v]["t"] > t):
            graph.add_edge(u, v, t=t, highway=str(highway).removesuffix("_link"))
    return graph


def _incident(k: int, rolled: pd.Timestamp, travel_s: float | None, units: str, lon: float, lat: float,
              town: str) -> dict:
    return {"id": f"J{k:04d}", "kind": "火灾", "reported_at": rolled - pd.Timedelta(seconds=45),
            "dispatched_at": rolled, "arrived_at": None if travel_s is None else rolled + pd.Timedelta(seconds=travel_s),
            "units": units, "lon": lon, "lat": lat, "town": town}


def build_scene(root: Path) -> tuple[Path, dict[str, float], dict[str, str]]:
    """Roads, 2 stations + 3 micro stations and the calls in a real DuckDB file.

    Returns the file, each used call's free-flow seconds (networkx) and the class of its route's last edge.
    """
    db = root / "calibrate.duckdb"
    network.import_roads(HELSINKI, db)
    graph = free_flow_graph(db)
    nodes = store.connect(db).execute("SELECT node_id, lon, lat FROM road_nodes").df().set_index("node_id")
    rng = np.random.default_rng(15)
    at = rng.choice(np.array(sorted(graph.nodes)), 4, replace=False)
    units = pd.concat([STATIONS, MICROS], ignore_index=True)
    units["lon"] = [*nodes.loc[at, "lon"], 24.90]  # M9 stands 1.5 km west of every road
    units["lat"] = [*nodes.loc[at, "lat"], 60.17]
    units.iloc[:2].to_csv(root / "fire_station.csv", index=False)
    units.iloc[2:].to_csv(root / "micro_station.csv", index=False)
    ingest.ingest_file("fire_station", root / "fire_station.csv", db)
    ingest.ingest_file("micro_station", root / "micro_station.csv", db)
    rows, free, last_class = [], {}, {}
    t0 = pd.Timestamp("2024-03-01")
    for k in range(GOOD_CALLS + WILD_CALLS):
        i = k % 4
        dist, paths = nx.single_source_dijkstra(graph, int(at[i]), weight="t")
        target = rng.choice([n for n, d in dist.items() if d > 20.0])
        travel = dist[target] / TRUE_FACTOR * math.exp(rng.uniform(-0.03, 0.03)) * (5.0 if k >= GOOD_CALLS else 1.0)
        unit = units.loc[i, "id"] if k % 2 else units.loc[i, "name"] + "、F2"  # by id, or by name then a second unit
        rolled = t0 + pd.Timedelta(minutes=int(rng.integers(0, 60 * 24 * 90)))
        rows.append(_incident(k, rolled, round(travel), unit, nodes.loc[target, "lon"], nodes.loc[target, "lat"],
                              "城东街道" if k % 3 else "城西街道"))
        free[f"J{k:04d}"] = dist[target]
        path = paths[target]
        last_class[f"J{k:04d}"] = graph[path[-2]][path[-1]]["highway"]
    lon0, lat0 = nodes.loc[at[0], "lon"], nodes.loc[at[0], "lat"]
    rolled, k = t0 + pd.Timedelta(hours=3), 900
    for reason, n in SKIPPED.items():
        for _ in range(n):
            k += 1
            row = _incident(k, rolled, 300, "F1", lon0, lat0, "城东街道")
            if reason == "no_times":
                row["dispatched_at"] = None
            elif reason == "no_unit":
                row["units"] = ""
            elif reason == "unit_unmatched":
                row["units"] = "不存在的中队；F1"  # the first-due unit is unknown: the second does not stand in
            elif reason == "call_off_road":
                row["lon"] = 24.90
            else:
                row["units"] = "M9"
            rows.append(row)
    pd.DataFrame(rows).to_csv(root / "incident.csv", index=False)
    result = ingest.ingest_file("incident", root / "incident.csv", db)
    assert result.rejected == 0
    return db, free, last_class


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float], dict[str, str]]:
    return build_scene(tmp_path_factory.mktemp("calibrate"))


@pytest.fixture(scope="module")
def fit(scene) -> calibrate.Calibration:
    con = store.connect(scene[0])
    return calibrate.calibrate_store(con, Settings())


def test_fit_recovers_the_slowdown_factor_despite_wild_calls(fit) -> None:
    assert fit.factor == pytest.approx(TRUE_FACTOR, abs=0.02)
    assert fit.factor_before == 0.7
    assert fit.used == GOOD_CALLS + WILD_CALLS
    assert fit.skipped == SKIPPED
    # the fitted model's errors are smaller: 0.7 misses every call by ~14 %, 0.6 by the ±3 % noise
    assert fit.error_after["p50_s"] < fit.error_before["p50_s"] / 3
    assert fit.error_after["p90_s"] < fit.error_before["p90_s"]


def test_modelled_times_are_the_road_times_networkx_finds(scene, fit) -> None:
    _, free, last_class = scene
    calls = fit.calls.set_index("incident_id")
    got = calls["free_flow_s"].to_dict()
    assert set(got) == set(free)
    assert max(abs(got[k] - free[k]) / free[k] for k in free) < 1e-9
    np.testing.assert_allclose(calls["modelled_s"], calls["free_flow_s"] / 0.7)
    assert calls["road_class"].to_dict() == last_class
    # the first-due unit is the first named: by id, or by name before F2
    assert set(calls["unit_id"]) == {"F1", "F2", "M1", "M2"}


def test_ratios_by_class_town_and_hour_are_nearest_rank_of_the_calls(fit) -> None:
    calls = fit.calls
    for table, key in ((fit.by_class, "road_class"), (fit.by_town, "town"), (fit.by_hour, "hour")):
        assert table["calls"].sum() == fit.used
        for row in table.itertuples(index=False):
            ratios = np.sort(calls.loc[calls[key] == getattr(row, key), "ratio"].to_numpy())
            assert row.p50 == ratios[math.ceil(0.5 * len(ratios)) - 1]
            assert row.p90 == ratios[math.ceil(0.9 * len(ratios)) - 1]
    assert set(fit.by_town["town"]) == {"城东街道", "城西街道"}
    assert set(fit.by_hour["hour"]) <= set(range(24))
    # measured = free-flow / 0.6, the model at 0.7: the typical ratio is 0.7 / 0.6
    assert fit.by_town["p50"].to_numpy() == pytest.approx(0.7 / 0.6, rel=0.02)


def test_nearest_rank_and_mmss_by_hand() -> None:
    assert calibrate.nearest_rank(np.arange(1, 11), 0.9) == 9
    assert calibrate.nearest_rank(np.array([50, 15, 40, 20, 35]), 0.5) == 35
    assert calibrate.nearest_rank(np.array([7.0]), 0.9) == 7.0
    assert math.isnan(calibrate.nearest_rank(np.array([]), 0.5))
    labels = np.array(["b", "a", "c"], dtype=object)  # "c" has no calls: no row
    table = calibrate.grouped_percentiles(np.array([0, 1, 0, 0, 1]), labels, np.array([3, 9, 1, 2, 8]), "k")
    assert table.to_dict("records") == [{"k": "a", "calls": 2, "p50": 8.0, "p90": 9.0},
                                        {"k": "b", "calls": 3, "p50": 2.0, "p90": 3.0}]
    assert [calibrate.mmss(s) for s in (0, 59.6, 125, -61, math.nan)] == ["0:00", "1:00", "2:05", "-1:01", "-"]
    # the fit by hand: log ratios 0, log 0.5, log 0.5 → median log 0.5
    assert calibrate.fit_factor(np.array([10.0, 20.0, 40.0]), np.array([10.0, 10.0, 20.0])) == pytest.approx(0.5)


def test_clear_errors_without_incident_times_units_or_roads(tmp_path: Path, scene) -> None:
    empty = tmp_path / "empty.duckdb"
    with store.writer(empty):
        pass
    with pytest.raises(ValidationError, match="no incident has both 出动时间"):
        calibrate.calibrate_store(store.connect(empty), Settings())
    with store.writer(empty) as con:
        ingest.ingest_frame(con, "incident", pd.DataFrame([_incident(1, pd.Timestamp("2024-01-01"), 60, "F1",
                                                                      24.94, 60.17, "城东街道")]), "x.csv")
    with pytest.raises(ValidationError, match="no stations or micro stations"):
        calibrate.calibrate_store(store.connect(empty), Settings())
    with store.writer(empty) as con:
        ingest.ingest_frame(con, "fire_station", pd.DataFrame({"id": ["F1"], "lon": [24.94], "lat": [60.17]}), "f.csv")
    with pytest.raises(NetworkError, match="no roads"):
        calibrate.calibrate_store(store.connect(empty), Settings())


def test_every_call_skipped_is_a_clear_error_counting_reasons(scene) -> None:
    con = store.connect(scene[0])
    skipped_only = con.execute("SELECT id, dispatched_at, arrived_at, units, lon, lat, town FROM incident "
                               "WHERE id > 'J0900'").df()
    graph = network.load_graph(con)
    from geo.units import load_responders

    with pytest.raises(ValidationError, match=r"no call can calibrate the road model: 3 no rolling .*; 2 no unit .*; "
                                              r"2 first unit not found .*; 1 first unit's station .*; 1 call farther"):
        calibrate.calibrate(skipped_only, load_responders(con), graph, None, Settings())


# --------------------------------------------------------------------------- the settings file

FIT = calibrate.Calibration(pd.DataFrame({"x": range(412)}), {}, 0.7, 0.61234, {}, {}, None, None, None)
DAY = date(2025, 3, 1)


def test_write_keeps_other_settings_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "onemap.toml"
    path.write_text("# district settings\n[onemap]\n# guess from 2023\nurban_slowdown_factor = 0.7  # assumed\n"
                    "snap_distance_m = 250.0 # metres\n\n[notes]\nwho = \"brigade\"\n", encoding="utf-8")
    calibrate.write_calibration(path, FIT, DAY)
    assert path.read_text(encoding="utf-8") == (
        "# district settings\n[onemap]\n# guess from 2023\n"
        "# onemap calibrate 2025-03-01: urban_slowdown_factor fitted to 412 measured calls (was 0.7)\n"
        "urban_slowdown_factor = 0.6123\nroad_calibration_calls = 412\nroad_calibration_date = \"2025-03-01\"\n"
        "snap_distance_m = 250.0 # metres\n\n[notes]\nwho = \"brigade\"\n")
    settings = Settings.load(path)
    assert (settings.urban_slowdown_factor, settings.road_calibration_calls, settings.snap_distance_m) == (0.6123, 412, 250.0)
    calibrate.write_calibration(path, FIT, date(2025, 4, 1))  # a second run replaces its lines and comment
    text = path.read_text(encoding="utf-8")
    assert text.count("# onemap calibrate") == 1 and text.count("urban_slowdown_factor =") == 1
    assert "2025-04-01" in text and "2025-03-01" not in text


def test_write_to_a_file_without_table_or_a_missing_file(tmp_path: Path) -> None:
    top = tmp_path / "top.toml"
    top.write_text("snap_distance_m = 200.0\n", encoding="utf-8")
    calibrate.write_calibration(top, FIT, DAY)
    assert tomllib.loads(top.read_text(encoding="utf-8")) == {
        "snap_distance_m": 200.0, "urban_slowdown_factor": 0.6123, "road_calibration_calls": 412,
        "road_calibration_date": "2025-03-01"}
    new = tmp_path / "new.toml"
    calibrate.write_calibration(new, FIT, DAY)
    assert Settings.load(new).urban_slowdown_factor == 0.6123


@pytest.mark.parametrize("text", [
    "[onemap\nurban_slowdown_factor = 0.7\n",  # not TOML
    "[onemap]\nsnap_distance_m = nan\n",  # a bad value elsewhere: the result would not load
    "[onemap]\nsnap_distance_m = \"{{7*7}}\"\n",
    "onemap.urban_slowdown_factor = 0.7\n",  # dotted key: cannot be edited line by line
    "[onemap]\nurban_slowdown_factor = 0.7\n[onemap.extra]\nx = 1\n",
])
def test_hostile_settings_files_are_refused_and_left_untouched(tmp_path: Path, text: str) -> None:
    path = tmp_path / "onemap.toml"
    path.write_bytes(text.encode("utf-8"))
    with pytest.raises(ConfigError, match="nothing written|expected|unknown setting"):
        calibrate.write_calibration(path, FIT, DAY)
    assert path.read_bytes() == text.encode("utf-8")
    assert [p.name for p in tmp_path.iterdir()] == ["onemap.toml"]


def test_a_directory_or_binary_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a file"):
        calibrate.write_calibration(tmp_path, FIT, DAY)
    binary = tmp_path / "b.toml"
    binary.write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(ConfigError, match="cannot read it as TOML"):
        calibrate.write_calibration(binary, FIT, DAY)
    assert binary.read_bytes() == b"\xff\xfe\x00junk"
