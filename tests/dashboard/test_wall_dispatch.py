"""The wall's dispatch picture shows every kind of responder that can reach the incident."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.sparse.csgraph import dijkstra

from dash_pages import page
from dash_pages import shown_text as _text

from geo import store
from geo.coverage_inputs import load_scene
from geo.settings import Settings


@pytest.fixture(scope="module")
def wall(demo_db: Path) -> Any:
    from dashboard.app import create_app

    create_app(Settings(), str(demo_db), warm=False)
    wall = page("wall")

    return wall


def test_every_picture_names_a_fire_station_and_a_micro_station(wall: Any, demo_db: Path) -> None:
    con = store.connect(demo_db)
    try:
        scene = load_scene(con, Settings())
        newest = con.execute(
            "SELECT id, lon, lat FROM incident ORDER BY reported_at DESC, id LIMIT 30"
        ).fetchall()
    finally:
        con.close()
    resp = scene.responders
    # which kinds can reach each incident at all: travel times from every station of a kind
    from_kind = {
        layer: dijkstra(
            scene.graph.seconds,
            indices=resp.loc[(resp["layer"] == layer) & (resp["node"] >= 0), "node"].to_numpy(np.int64),
            min_only=True,
        )
        for layer in ("micro_station", "fire_station")
    }
    names = {layer: set(resp.loc[resp["layer"] == layer, "name"]) for layer in from_kind}
    snap = scene.graph.snap(
        np.array([r[1] for r in newest]), np.array([r[2] for r in newest]), scene.settings.snap_distance_m
    )
    show = getattr(wall.show_dispatch, "__wrapped__", wall.show_dispatch)
    shown_fire = 0
    for (incident_id, _, _), node, ok in zip(newest, snap.node, snap.ok, strict=True):
        routes, panel, _view = show(incident_id, "zh", False, None)
        text = _text(panel)
        for layer, times in from_kind.items():
            if ok and np.isfinite(times[node]):
                assert any(name in text for name in names[layer]), (incident_id, layer, text)
        shown_fire += any(name in text for name in names["fire_station"])
        assert len(routes) >= 2  # at least one route and the incident marker
    assert shown_fire == len(newest)


def test_picture_says_when_no_responder_reaches(wall: Any) -> None:
    import pandas as pd

    from geo import dispatch
    from geo.coverage_inputs import make_scene

    empty = pd.DataFrame({"id": [], "layer": [], "lon": [], "lat": []})
    result = dispatch.dispatch(make_scene(empty, None, settings=Settings()), 121.2, 31.0)
    assert "无出动力量" in _text(wall._dispatch_panel(result, "zh"))
    assert "No responder" in _text(wall._dispatch_panel(result, "en"))


# --------------------------------------------------------------------------- availability, pre-plan, residents
# The hand-made district of tests/dispatch_district.py (stored through the real ingest): the call
# I-NOW at its centre; M1 busy on I-OPEN, M2 out of service, M3 I-NOW's own unit.


@pytest.fixture(scope="module")
def district_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dispatch_district import build_district

    return build_district(tmp_path_factory.mktemp("wall_district"))


@pytest.fixture
def district_wall(wall: Any, district_db: Path, demo_db: Path) -> Any:
    """The wall's page module reading the district (the demo again afterwards)."""
    from dashboard.components import context

    context.configure(Settings(), str(district_db))
    yield wall
    context.configure(Settings(), str(demo_db))


def _panel(wall: Any, incident: str, lang: str) -> Any:
    show = getattr(wall.show_dispatch, "__wrapped__", wall.show_dispatch)
    _routes, panel, _view = show(incident, lang, False, None)
    return panel


def _items(component: Any, kind: type) -> list[Any]:
    """Every component of type ``kind`` inside ``component`` (depth first)."""
    if isinstance(component, kind):
        return [component]
    children = component if isinstance(component, (list, tuple)) else getattr(component, "children", None)
    if isinstance(children, (list, tuple)):
        return [x for c in children for x in _items(c, kind)]
    return _items(children, kind) if children is not None and not isinstance(children, str) else []


def test_wall_marks_busy_and_out_of_service_units_and_shows_preplan_and_residents(district_wall: Any) -> None:
    from dash import html

    panel = _panel(district_wall, "I-NOW", "zh")
    rows = {_text(li).split()[2]: li for li in _items(panel, html.Li)}  # rank, kind, name ...
    assert "出警中 I-OPEN" in _text(rows["一号微站"]) and rows["一号微站"].className == "om-dp-unavailable"
    assert "暂停执勤" in _text(rows["二号微站"]) and rows["二号微站"].className == "om-dp-unavailable"
    assert "出警中" not in _text(rows["三号微站"]) and rows["三号微站"].className is None  # I-NOW's own unit
    assert {"城中消防救援站", "东区专职队", "西区专职队"} <= set(rows)  # every responder kind
    text = _text(panel)
    assert "大厦东栓 正常 30米" in text  # the working hydrant with its status and road distance
    assert "国际大厦 · 高层建筑 · 3级 · 最近检查 2025-02-15" in text
    assert "层数 28 · 人员数量 1200" in text and "负责人 王** · 联系电话 139****5678" in text
    assert "周边特殊群体（300米内，直线）" in text
    assert "共3人 · 独居老人 2 残疾人 1 · 高风险 2 中风险 1" in text
    assert "100米 独居老人 高 不能行动 中心路*号 张* 138****5678" in text  # the address is personal too
    assert "王小明" not in text and "张三" not in text and "13812345678" not in text  # a kiosk: always masked
    assert "东街4号" not in text  # 315 m away: outside the radius


def test_wall_in_english(district_wall: Any) -> None:
    text = _text(_panel(district_wall, "I-NOW", "en"))
    assert "On a call I-OPEN" in text and "Out of service" in text
    assert "Vulnerable residents within 300 m (straight line)" in text and "3 in all" in text
    assert "risk 高 2" in text and "Storeys 28" in text and "class 3" in text


def test_wall_picture_after_the_open_call_is_closed(district_wall: Any, district_db: Path, tmp_path: Path) -> None:
    import shutil

    from dash import html
    from dispatch_district import close_open_call

    from dashboard.components import context

    db = tmp_path / "closed.duckdb"
    shutil.copyfile(district_db, db)
    close_open_call(db, tmp_path)
    context.configure(Settings(), str(db))
    rows = {_text(li).split()[2]: li for li in _items(_panel(district_wall, "I-NOW", "zh"), html.Li)}
    assert "出警中" not in _text(rows["一号微站"]) and rows["一号微站"].className is None


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.e2e
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (run `make browser`)")
def test_hostile_preplan_text_renders_as_text_on_the_real_wall(district_db: Path, tmp_path: Path) -> None:
    """`onemap serve` on the district and headless Chromium: the wall opens on the newest call (I-NOW),
    the hostile hazmat text shows literally, no element or script comes from it, names stay masked."""
    import os
    import shutil
    import socket
    import subprocess
    import sys
    import time
    from urllib.request import urlopen

    from dispatch_district import HOSTILE_HAZMAT
    from playwright.sync_api import sync_playwright

    db = tmp_path / "wall.duckdb"
    shutil.copyfile(district_db, db)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("onemap")
    with open(tmp_path / "server.log", "w") as log:
        proc = subprocess.Popen([str(exe), "serve", "--db", str(db), "--port", str(port)], stdout=log,
                                stderr=subprocess.STDOUT, env={**os.environ, "ONEMAP_DB": str(db)}, cwd=tmp_path)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(150):
            try:
                urlopen(url + "/api/empty.geojson", timeout=1)
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "server.log").read_text()
                time.sleep(0.2)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("dialog", lambda d: (errors.append("dialog: " + d.message), d.dismiss()))
            page.goto(url + "/wall?lang=zh")
            page.wait_for_selector("#wall-dp-preplan", timeout=30000)
            preplan = page.inner_text("#wall-dp-preplan")
            assert HOSTILE_HAZMAT in preplan and "{{7*7}}" in preplan and "49" not in preplan
            assert page.locator("#wall-dispatch img").count() == 0  # no element made of the text
            assert page.locator("#wall-dispatch [data-availability='busy']").count() == 1  # M1 on I-OPEN
            assert page.locator("#wall-dispatch [data-availability='out_of_service']").count() == 1
            panel = page.inner_text("#wall-dispatch")
            assert "共3人" in panel and "张*" in panel and "张三" not in panel
            fits = "() => { const d = document.querySelector('#wall-dispatch'); return d.scrollHeight <= d.clientHeight; }"
            assert page.evaluate(fits)  # at 1920x1080 the whole picture shows, residents included
            page.goto(url + "/wall?lang=en")
            page.wait_for_selector("#wall-dp-vulnerable-count", timeout=30000)
            assert "3 in all" in page.inner_text("#wall-dp-vulnerable-count")
            assert errors == []
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
