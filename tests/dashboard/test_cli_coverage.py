"""`onemap roads / coverage / site / dispatch` as a user runs them, on a real database file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from click.testing import CliRunner

from dashboard.cli import cli
from geo import store

ONEMAP = [sys.executable, "-m", "dashboard.cli"]
LAT0, LON0 = 31.0, 121.2
M_LON = 111_320.0 * np.cos(np.radians(LAT0))
M_LAT = 110_574.0


def ll(east: float, north: float) -> tuple[float, float]:
    return LON0 + east / M_LON, LAT0 + north / M_LAT


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """A real `onemap` process (for exit codes and error lines)."""
    return subprocess.run(
        [*ONEMAP, *args], capture_output=True, text=True, timeout=120, env={**os.environ}
    )


def invoke(*args: str) -> subprocess.CompletedProcess[str]:
    """The same command in-process (fast); same result shape as ``run``."""
    res = CliRunner().invoke(cli, list(args))
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return subprocess.CompletedProcess(list(args), res.exit_code, res.stdout, "")


def points(rows: list[dict]) -> gpd.GeoDataFrame:
    geom = [shapely.Point(*ll(r.pop("e"), r.pop("n", 0.0))) for r in rows]
    return gpd.GeoDataFrame(rows, geometry=geom, crs=4326)


@pytest.fixture(scope="module")
def district(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3 km × 3 km street grid (300 m blocks), two stations, places, hydrants, a hazard."""
    tmp = tmp_path_factory.mktemp("cli_cov")
    lines = []
    for k in range(11):  # every street has a vertex at each crossing, so the streets join there
        lines.append(shapely.LineString([ll(k * 300, j * 300) for j in range(11)]))
        lines.append(shapely.LineString([ll(j * 300, k * 300) for j in range(11)]))
    roads = gpd.GeoDataFrame(
        {"highway": "residential", "oneway": "no", "name": [f"路{i}" for i in range(len(lines))]},
        geometry=lines,
        crs=4326,
    )
    roads_path = tmp / "roads.gpkg"
    roads.to_file(roads_path)
    db = tmp / "onemap.duckdb"
    out = invoke("roads", str(roads_path), "--db", str(db), "--json")
    assert out.returncode == 0, out.stderr
    with store.writer(db) as con:
        store.write_layer(
            con,
            "micro_station",
            points(
                [
                    {"id": "M1", "name": "一号微站", "status": "在用", "e": 300, "n": 300},
                    {"id": "M9", "name": "规划微站", "status": "规划", "e": 2700, "n": 2700},
                ]
            ),
        )
        store.write_layer(
            con,
            "fire_station",
            points(
                [
                    {
                        "id": "F1",
                        "name": "消防站",
                        "station_class": "二级",
                        "status": "在役",
                        "e": 1500,
                        "n": 1500,
                    }
                ]
            ),
        )
        store.write_layer(
            con,
            "key_place",
            points(
                [
                    {
                        "id": "K1",
                        "name": "幸福小区",
                        "category": "住宅小区",
                        "inspection_class": 1,
                        "e": 600,
                        "n": 600,
                    },
                    {
                        "id": "K2",
                        "name": "远郊仓库",
                        "category": "厂房仓库",
                        "inspection_class": 3,
                        "e": 3000,
                        "n": 3000,
                    },
                ]
            ),
        )
        store.write_layer(
            con,
            "hydrant",
            points(
                [
                    {"id": "H1", "status": "损坏", "e": 600, "n": 610},
                    {"id": "H2", "status": "正常", "e": 600, "n": 750},
                ]
            ),
        )
        store.write_layer(
            con,
            "hazard",
            points(
                [
                    {
                        "id": "Z1",
                        "category": "堵塞占用生命通道",
                        "severity": "重大",
                        "status": "立案",
                        "place_id": "K1",
                        "discovered_at": "2024-05-01 10:00:00",
                        "e": 600,
                        "n": 600,
                    }
                ]
            ),
        )
    return db


def test_roads_import_reports_counts(district: Path) -> None:
    con = store.connect(district)
    nodes = con.execute("SELECT count(*) FROM road_nodes").fetchone()[0]
    edges = con.execute("SELECT count(*) FROM road_edges").fetchone()[0]
    assert nodes == 121 and edges == 2 * 2 * 11 * 10  # every block side both ways


def test_coverage_json(district: Path) -> None:
    out = invoke("coverage", "--db", str(district), "--json", "--minutes", "3,5")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["mode"] == "network"
    assert data["minutes"] == {"micro_station": 3.0, "fire_station": 5.0}
    assert {r["id"] for r in data["responders"]} == {
        "M1",
        "F1",
    }  # the planned micro station does not count
    assert data["summary"]["places"] == 2
    assert set(data["isochrones"]) == {"3.0", "5.0"}
    assert data["first_due"][0]["id"] == "F1" and data["first_due"][0]["limit_km2"] == 4.0
    assert isinstance(data["uncovered"], list) and isinstance(data["areas"], list)
    # radius mode on the same data says so
    radius = json.loads(
        invoke("coverage", "--db", str(district), "--json", "--mode", "radius").stdout
    )
    assert radius["mode"] == "radius"


def test_dispatch_json(district: Path) -> None:
    lon, lat = ll(600, 600)
    out = invoke("dispatch", f"{lon}", f"{lat}", "--db", str(district), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["mode"] == "network"
    # M1 is 600 m of road away (60 s + 600 m at 25 × 0.7 km/h), F1 1800 m
    assert [r["id"] for r in data["responders"]] == ["M1", "F1"]
    speed = 25 * 0.7 / 3.6
    assert data["responders"][0]["eta_s"] == pytest.approx(60 + 600 / speed, rel=0.01)
    assert data["hydrants"][0]["id"] == "H2"  # H1 is nearer but damaged
    assert data["key_place"]["id"] == "K1"
    assert [h["id"] for h in data["hazards"]] == ["Z1"]
    route = data["responders"][0]["route"]
    assert route[0] == pytest.approx(list(ll(300, 300)), abs=1e-6) and route[-1] == pytest.approx(
        [lon, lat]
    )


def test_site_json_and_text(district: Path, tmp_path: Path) -> None:
    out = invoke("site", "2", "--db", str(district), "--json", "--exact")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["method"] == "greedy" and data["mode"] == "network" and 1 <= len(data["sites"]) <= 2
    assert data["gap"] is not None and data["exact_objective"] >= data["objective"]
    cands = tmp_path / "cands.csv"
    lon, lat = ll(2700, 2700)
    cands.write_text(f"经度,纬度\n{lon},{lat}\n", encoding="utf-8")
    text = invoke("site", "1", "--db", str(district), "--candidates", str(cands))
    assert text.returncode == 0, text.stderr
    assert "candidate sites" in text.stdout


def test_errors_are_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "roads.txt"
    bad.write_text("x")
    out = run("roads", str(bad), "--db", str(tmp_path / "x.duckdb"))
    assert out.returncode == 2 and "unknown road file type" in out.stderr
    out = run("coverage", "--db", str(tmp_path / "missing.duckdb"))
    assert out.returncode == 2 and "not found" in out.stderr
