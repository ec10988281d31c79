"""`onemap calibrate` as a user runs it, then `onemap coverage` and /plan with the written factor.

A real DuckDB file built with the CLI (`onemap roads` on Helsinki's OSM extract, `onemap ingest`
of stations and of a dispatch export whose travel is the free-flow road time / 0.6, ±3 %).
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

import numpy as np
import pandas as pd
import pyrosm
import pytest
from scipy.sparse.csgraph import dijkstra

from geo import coverage, network, store
from geo.coverage_inputs import load_scene
from geo.settings import Settings

ONEMAP = [sys.executable, "-m", "dashboard.cli"]
TRUE_FACTOR = 0.6
CHROMIUM = "/usr/bin/chromium"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """A real `onemap` process (exit codes, stdout and stderr as the user sees them)."""
    env = {k: v for k, v in os.environ.items() if k not in ("ONEMAP_CONFIG", "ONEMAP_DB")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    return subprocess.run([*ONEMAP, *args], capture_output=True, text=True, timeout=300, env=env, cwd=cwd)


def _calls(db: Path, stations: pd.DataFrame, n: int = 240) -> pd.DataFrame:
    """A dispatch export: travel = free-flow road time (factor 1) / 0.6 with ±3 % noise."""
    con = store.connect(db)
    graph = network.load_graph(con, Settings().with_overrides(urban_slowdown_factor=1.0))
    rng = np.random.default_rng(5)
    at = graph.snap(stations["lon"].to_numpy(), stations["lat"].to_numpy(), 1.0).node
    dist = dijkstra(graph.seconds, indices=at)
    rows, t0 = [], pd.Timestamp("2024-05-01 08:00")
    for k in range(n):
        i = k % len(stations)
        target = rng.choice(np.flatnonzero(np.isfinite(dist[i]) & (dist[i] > 20)))
        travel = round(dist[i, target] / TRUE_FACTOR * math.exp(rng.uniform(-0.03, 0.03)))
        rolled = t0 + pd.Timedelta(minutes=37 * k)
        rows.append({"警情编号": f"J{k}", "警情类型": "火灾", "接警时间": rolled - pd.Timedelta(seconds=50),
                     "出动时间": rolled, "到场时间": rolled + pd.Timedelta(seconds=travel),
                     "出动力量": stations["name"].iloc[i], "lon": graph.lon[target], "lat": graph.lat[target]})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def district(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("cli_calibrate")
    db = root / "onemap.duckdb"
    assert run("roads", pyrosm.get_data("helsinki_pbf"), "--db", str(db)).returncode == 0
    nodes = store.connect(db).execute("SELECT lon, lat FROM road_nodes ORDER BY node_id").df()
    stations = nodes.iloc[[100, 700, 1200]].reset_index(drop=True)
    stations.insert(0, "name", ["一号消防站", "二号消防站", "三号消防站"])
    stations.insert(0, "id", ["F1", "F2", "F3"])
    stations.to_csv(root / "stations.csv", index=False)
    assert run("ingest", "fire_station", str(root / "stations.csv"), "--db", str(db)).returncode == 0
    _calls(db, stations).to_csv(root / "calls.csv", index=False)
    out = run("ingest", "incident", str(root / "calls.csv"), "--db", str(db))
    assert out.returncode == 0, out.stderr
    return {"root": root, "db": db}


def _config(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.write_text(text, encoding="utf-8")
    return path


def test_calibrate_prints_the_fit_and_writes_nothing(district: dict, tmp_path: Path) -> None:
    text = "# brigade settings\n[onemap]\nsnap_distance_m = 250.0  # metres\n"
    cfg = _config(tmp_path, "mine.toml", text)
    out = run("calibrate", "--db", str(district["db"]), "--config", str(cfg), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "240 calls used, 0 skipped" in out.stdout
    fitted = float(out.stdout.split(" fitted")[0].rsplit("→ ", 1)[1])
    assert fitted == pytest.approx(TRUE_FACTOR, abs=0.02)
    assert "p50 " in out.stdout and "nothing written" in out.stdout
    assert cfg.read_text(encoding="utf-8") == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.toml"]  # no ./onemap.toml either


def test_write_then_coverage_uses_the_calibrated_factor(district: dict, tmp_path: Path) -> None:
    cfg = _config(tmp_path, "onemap.toml", "[onemap]\n# keep me\nsnap_distance_m = 250.0\n")
    out = run("calibrate", "--db", str(district["db"]), "--write", "--json", cwd=tmp_path)  # ./onemap.toml
    assert out.returncode == 0, out.stderr
    fit = json.loads(out.stdout)
    assert fit["calls_used"] == 240 and fit["written_to"] == "onemap.toml"
    assert fit["factor"] == pytest.approx(TRUE_FACTOR, abs=0.02)
    assert fit["error_after_s"]["p50_s"] < fit["error_before_s"]["p50_s"]
    settings = Settings.load(cfg)
    assert (settings.urban_slowdown_factor, settings.road_calibration_calls) == (fit["factor"], 240)
    assert "# keep me" in cfg.read_text(encoding="utf-8") and settings.snap_distance_m == 250.0
    calibrated = json.loads(run("coverage", "--db", str(district["db"]), "--json", cwd=tmp_path).stdout)
    default = json.loads(run("coverage", "--db", str(district["db"]), "--json", cwd=district["root"]).stdout)
    con = store.connect(district["db"])
    expected = coverage.summary(coverage.compute_coverage(load_scene(
        con, Settings().with_overrides(urban_slowdown_factor=fit["factor"], snap_distance_m=250.0))))
    assert calibrated["summary"] == json.loads(json.dumps(expected))
    # slower appliances (0.6 < 0.7) reach less within the 5 minutes
    assert calibrated["summary"]["area_share"] < default["summary"]["area_share"]


def test_no_incidents_is_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty.duckdb"
    with store.writer(empty):
        pass
    out = run("calibrate", "--db", str(empty), cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith("onemap: no incident has both 出动时间") and "Traceback" not in out.stderr
    assert out.stdout == ""


@pytest.mark.parametrize(("text", "expected"), [
    ("[onemap\n", "config file"),
    ("[onemap]\nurban_slowdown_factor = \"{{7*7}}\"\n", "urban_slowdown_factor"),
    ("[onemap]\nurban_slowdown_factor = nan\n", "urban_slowdown_factor"),
    ("[onemap]\nurban_slowdown_factor = -1e400\n", "urban_slowdown_factor"),
    ("[onemap]\nroad_calibration_calls = \"<script>alert(1)</script>\"\n", "road_calibration_calls"),
    ("[onemap]\nurban_slowdown_factor = 0.7\n\"; DROP TABLE incident; --\" = 1\n", "unknown setting"),
])
def test_hostile_settings_files_are_refused_untouched(district: dict, tmp_path: Path, text: str,
                                                      expected: str) -> None:
    cfg = _config(tmp_path, "bad.toml", text)
    out = run("calibrate", "--db", str(district["db"]), "--config", str(cfg), "--write", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith("onemap: ") and expected in out.stderr and "Traceback" not in out.stderr
    assert cfg.read_text(encoding="utf-8") == text


def test_a_config_path_that_is_a_directory_or_missing_is_a_usage_error(district: dict, tmp_path: Path) -> None:
    for path in (tmp_path, tmp_path / "missing.toml", "{{7*7}}.toml"):
        out = run("calibrate", "--db", str(district["db"]), "--config", str(path), "--write", cwd=tmp_path)
        assert out.returncode == 2 and "--config" in out.stderr and "Traceback" not in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_plan_label_names_the_model(district: dict) -> None:
    from dashboard.app import create_app
    from dash_pages import page

    create_app(Settings(), str(district["db"]), warm=False)
    label = page("plan").road_model_label
    assert label(Settings(), "zh") == "道路模型：默认系数 0.7（未按警情校准）"
    assert label(Settings(), "en") == "Road model: default factor 0.7 (not calibrated)"
    marked = Settings().with_overrides(urban_slowdown_factor=0.6123, road_calibration_calls=240,
                                       road_calibration_date="2025-03-01")
    assert label(marked, "zh") == "道路模型：按 240 起警情校准（2025-03-01），系数 0.6123"
    hostile = marked.with_overrides(road_calibration_date="<script>alert(1)</script>{{7*7}}")
    assert label(hostile, "en") == "Road model: calibrated on 240 calls (?), factor 0.6123"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.e2e
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (make browser)")
def test_plan_page_shows_the_calibrated_model(district: dict, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    cfg = tmp_path / "onemap.toml"
    out = run("calibrate", "--db", str(district["db"]), "--write", "--json", cwd=tmp_path)
    factor = json.loads(out.stdout)["factor"]
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("ONEMAP_CONFIG", "ONEMAP_DB")}
    server = subprocess.Popen([*ONEMAP, "serve", "--db", str(district["db"]), "--port", str(port),
                               "--config", str(cfg)], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                urlopen(url + "/api/empty.geojson", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            for lang, text in (("zh", "道路模型：按 240 起警情校准"), ("en", "Road model: calibrated on 240 calls")):
                page.goto(f"{url}/plan?lang={lang}")
                page.wait_for_function("(t) => (document.querySelector('#plan-mode')?.textContent || '').includes(t)",
                                       arg=text, timeout=60000)
                shown = page.locator("#plan-mode").text_content()
                assert f"{factor:g}" in shown
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)
