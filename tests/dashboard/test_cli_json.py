"""Every `--json` output of every command is strict JSON, and dispatch says what it cannot reach.

A small real district: a 1.2 km street grid, a one-way spur that leads only *into* the grid
(no responder can drive out to its end), and a street with no road link to the rest (a
working hydrant and a water source stand on it). The committee figures run on the session's
demo database, where rate warnings have an infinite ratio (a grid with no baseline).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
import shapely
from click.testing import CliRunner

from dashboard.cli import cli
from geo import store

LAT0, LON0 = 31.0, 121.2
M_LON = 111_320.0 * 0.8571673007021123  # cos(31°)
M_LAT = 110_574.0


def ll(east: float, north: float) -> tuple[float, float]:
    return LON0 + east / M_LON, LAT0 + north / M_LAT


def strict_loads(text: str) -> Any:
    """``json.loads`` that fails on NaN/Infinity (what JSON.parse and jq do)."""

    def refuse(token: str) -> Any:
        raise AssertionError(f"not strict JSON: {token} in output")

    return json.loads(text, parse_constant=refuse)


def invoke(*args: str) -> subprocess.CompletedProcess[str]:
    """`onemap ARGS` in-process; an unexpected exception fails the test with its traceback."""
    res = CliRunner().invoke(cli, list(args))
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return subprocess.CompletedProcess(list(args), res.exit_code, res.stdout, res.stderr)


def points(rows: list[dict[str, Any]]) -> gpd.GeoDataFrame:
    geom = [shapely.Point(*ll(r.pop("e"), r.pop("n"))) for r in rows]
    return gpd.GeoDataFrame(rows, geometry=geom, crs=4326)


@pytest.fixture(scope="module")
def small_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("cli_json")
    lines, oneway = [], []
    for k in range(5):
        lines.append(shapely.LineString([ll(k * 300, j * 300) for j in range(5)]))
        lines.append(shapely.LineString([ll(j * 300, k * 300) for j in range(5)]))
        oneway += ["no", "no"]
    lines.append(shapely.LineString([ll(1800, 0), ll(1500, 0), ll(1200, 0)]))  # into the grid only
    oneway.append("yes")
    lines.append(shapely.LineString([ll(3000, 600), ll(3150, 600), ll(3300, 600)]))  # no link
    oneway.append("no")
    roads = gpd.GeoDataFrame({"highway": "residential", "oneway": oneway}, geometry=lines, crs=4326)
    roads.to_file(tmp / "roads.gpkg")
    db = tmp / "onemap.duckdb"
    out = invoke("roads", str(tmp / "roads.gpkg"), "--db", str(db), "--json")
    assert out.returncode == 0, out.stdout
    strict_loads(out.stdout)
    with store.writer(db) as con:
        store.write_layer(con, "micro_station", points([
            {"id": "M1", "name": "一号微站", "kind": "社区", "status": "在用", "e": 300, "n": 300}]))
        store.write_layer(con, "fire_station", points([
            {"id": "F1", "name": "救援站", "kind": "消防救援站", "status": "在役", "e": 900, "n": 900},
            {"id": "F2", "name": "专职队", "kind": "政府专职消防队", "status": "在役", "e": 1200, "n": 1200}]))
        store.write_layer(con, "hydrant", points([
            {"id": "H1", "status": "损坏", "e": 600, "n": 610},
            {"id": "H2", "status": "正常", "e": 600, "n": 750},
            {"id": "H3", "status": "正常", "e": 3000, "n": 610}]))  # on the street with no link
        store.write_layer(con, "water_source", points([
            {"id": "W1", "name": "孤岛水池", "kind": "消防水池", "status": "正常", "e": 3300, "n": 600}]))
        store.write_layer(con, "key_place", points([
            {"id": "K1", "name": "{{7*7}} <script>x</script>", "category": "住宅小区",
             "inspection_class": 1, "e": 600, "n": 600}]))
        store.write_layer(con, "hazard", points([
            {"id": "Z1", "category": "堵塞占用生命通道", "severity": "重大", "status": "立案",
             "place_id": "K1", "discovered_at": "2024-05-01 10:00:00", "e": 600, "n": 600}]))
    return db


def dispatch_json(db: Path, east: float, north: float) -> dict[str, Any]:
    lon, lat = ll(east, north)
    out = invoke("dispatch", f"{lon}", f"{lat}", "--db", str(db), "--json")
    assert out.returncode == 0, out.stdout
    return strict_loads(out.stdout)


def test_dispatch_lists_only_water_reachable_by_road(small_db: Path) -> None:
    data = dispatch_json(small_db, 600, 600)
    assert data["mode"] == "network"
    assert [h["id"] for h in data["hydrants"]] == ["H2"]  # H1 damaged, H3 has no road path
    assert data["water_sources"] == []  # W1 has no road path either
    assert data["key_place"]["name"] == "{{7*7}} <script>x</script>"  # text is kept literally
    assert {r["id"] for r in data["responders"]} == {"M1", "F1", "F2"}


def test_point_no_responder_reaches_says_so(small_db: Path) -> None:
    data = dispatch_json(small_db, 1800, 0)  # end of the spur that only leads into the grid
    assert data["mode"] == "network" and data["responders"] == []
    assert "no responder" in data["note"]
    lon, lat = ll(1800, 0)
    text = invoke("dispatch", f"{lon}", f"{lat}", "--db", str(small_db))
    assert text.returncode == 0
    assert "Empty DataFrame" not in text.stdout
    assert "no responder reaches this point" in text.stdout


def test_dispatch_refuses_coordinates_that_are_not_numbers(small_db: Path) -> None:
    for lon, lat in (("nan", "31.0"), ("121.2", "inf")):
        out = invoke("dispatch", lon, lat, "--db", str(small_db), "--json")
        assert out.returncode == 2
        assert "finite" in out.stdout + out.stderr


def test_every_command_prints_strict_json(small_db: Path, tmp_path: Path) -> None:
    db = str(small_db)
    hostile = tmp_path / "hydrants.csv"
    hostile.write_text(
        "编号,名称,状态,经度,纬度\n"
        "a1,{{7*7}},正常,121.2,31.0\n"
        "a2,x,正常,inf,31.0\n"
        "a3,y,正常,nan,nan\n"
        "a4,'; DROP TABLE hydrant; --,正常,1e400,-1e400\n",
        encoding="utf-8",
    )
    runs = [
        ("info", "--db", db),
        ("layers",),
        ("settings",),
        ("ingest", "hydrant", str(hostile), "--db", str(tmp_path / "in.duckdb"), "--quiet"),
        ("coverage", "--db", db),
        ("site", "1", "--db", db),
        ("export", "hydrant", "--db", db, "--out", str(tmp_path / "h.csv")),
        ("export", "nearest_water", "--db", db, "--out", str(tmp_path / "w.csv")),
        ("export-map", "--db", db, "--out", str(tmp_path / "m.html")),
        ("report", "--db", db, "--out", str(tmp_path / "r.html")),
        ("hotspots", "--db", db, "--warnings", "--trends", "--all"),
        ("figures", "--db", db),
    ]
    for args in runs:
        out = invoke(*args, "--json")
        assert out.returncode == 0, (args, out.stdout)
        assert isinstance(strict_loads(out.stdout), dict), args


def test_committee_figures_on_the_demo_are_strict_json(demo_db: Path) -> None:
    for args in (
        ("hotspots", "--warnings", "--trends"),  # rate warnings: a grid with no baseline
        ("hotspots", "--layer", "incident", "--warnings", "--all"),
        ("figures", "--as-of", "latest"),
    ):
        out = invoke(*args, "--db", str(demo_db), "--json")
        assert out.returncode == 0, (args, out.stdout)
        data = strict_loads(out.stdout)
        if "warnings" in data:
            assert all(w["ratio"] is None or w["ratio"] >= 0 for w in data["warnings"])
