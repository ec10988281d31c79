"""The wall shows a POSTed alarm within 2 s (issue 12), in a real browser on a real server.

The wall's snapshot refresh stays at its 10 s default here: what makes the 2 s is the 1 s
check of the journal head (``wall_live_poll_s``), not a faster refresh."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "live"))
from feedkit import CENTRE, Served, post, serve, token  # noqa: E402

pytestmark = pytest.mark.e2e
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
if not Path(CHROMIUM).exists():  # pragma: no cover - `make test` installs it (make browser)
    pytest.skip("Debian chromium not installed (run `make browser`)", allow_module_level=True)


@pytest.fixture(scope="module")
def served(demo_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("wall-live")
    db = root / "demo.duckdb"
    shutil.copyfile(demo_db, db)
    with serve(db) as running:
        yield running


@pytest.fixture(scope="module")
def tok(served: Served) -> str:
    return token(served.db, "iot-platform", "alarm,device,incident")


@pytest.fixture
def page(served: Served):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        ctx = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="zh-CN")
        pg = ctx.new_page()
        pg.errors = []
        pg.on("pageerror", lambda e: pg.errors.append(str(e)))
        pg.goto(served.url + "/wall")
        pg.wait_for_function("() => { const e = document.querySelector('#wall-kpi-open');"
                             " return e && e.textContent.trim() !== '–'; }", timeout=60000)
        yield pg
        browser.close()


def alarm(aid: str, kind: str = "电动自行车充电桩", level: str = "火警", lonlat=CENTRE) -> dict:
    """An alarm as an IoT platform sends it (Chinese headers, a spelling variant of the kind)."""
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(lonlat)},
            "properties": {"报警编号": aid, "设备编号": f"DEV-{aid}", "设备类型": kind, "报警级别": level,
                           "报警时间": datetime.now().strftime("%Y-%m-%d %H:%M:%S"), "状态": "未确认"}}


def test_a_posted_alarm_is_on_the_wall_within_2_s(served: Served, tok: str, page) -> None:
    page.wait_for_timeout(1500)  # the wall has checked the head at least once
    markers_before = page.locator(".om-live-marker").count()
    lags = []
    for n in range(3):
        aid = f"WALL-{n}-{time.monotonic_ns()}"
        started = time.monotonic()
        status, body = post(served.url, "alarm", alarm(aid, kind="充电桩"), tok)
        assert status == 201, body
        page.wait_for_selector(f'#wall-live-ticker li[data-id="{aid}"]', timeout=5000)
        lags.append(time.monotonic() - started)
        line = page.inner_text(f'#wall-live-ticker li[data-id="{aid}"]')
        assert "电动自行车充电桩" in line and "火警" in line  # the spelling 充电桩 was read as its kind
        assert page.locator(f'#wall-live-ticker li[data-id="{aid}"].om-live-flash').count() == 1
    print(f"POST -> on the wall: {', '.join(f'{x:.2f}' for x in lags)} s")
    assert max(lags) <= 2.0, lags
    assert page.locator(".om-live-marker").count() >= markers_before + 3
    first = page.locator("#wall-live-ticker li").first.get_attribute("data-id")
    assert first.startswith("WALL-2-")  # the newest on top
    assert page.errors == []


def test_hostile_alarm_text_is_shown_as_text(served: Served, tok: str, page) -> None:
    evil = alarm(f"<img src=x onerror=alert(1)>{time.monotonic_ns()}")
    evil["properties"]["备注"] = "{{7*7}} ' OR 1=1 --"
    status, body = post(served.url, "alarm", evil, tok)
    assert status == 201, body
    page.wait_for_selector("#wall-live-ticker li[data-layer='alarm']", timeout=5000)
    assert page.locator("#wall-live-ticker img").count() == 0
    assert page.errors == []


def test_the_device_tile_counts_a_silent_device_offline(served: Served, tok: str, page) -> None:
    now = datetime.now()
    beats = [("WD-1", now), ("WD-2", now - timedelta(hours=2))]  # WD-2 is silent past 900 s
    for did, seen in beats:
        feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(CENTRE)},
                   "properties": {"设备编号": did, "设备类型": "烟感", "心跳时间": seen.strftime("%Y-%m-%d %H:%M:%S")}}
        assert post(served.url, "device", feature, tok)[0] == 201
    page.wait_for_function("() => document.querySelector('#wall-kpi-devices').textContent.includes('烟感')",
                           timeout=15000)  # the tile follows the 10 s refresh
    assert "烟感 50%" in page.inner_text("#wall-kpi-devices")


def test_a_town_wall_shows_live_alarms_of_its_towns_only(demo_db: Path, tmp_path_factory: pytest.TempPathFactory):
    """A wall signed in with a town scope: an alarm in its town comes up, one in another town never does."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "access"))
    import duckdb
    from helpers import sign_in_page, signin_app
    from playwright.sync_api import sync_playwright

    with duckdb.connect(str(demo_db), read_only=True) as con:
        spots = con.execute("SELECT town, any_value(lon), any_value(lat) FROM hazard WHERE town IS NOT NULL "
                            "GROUP BY town ORDER BY count(*) DESC LIMIT 2").fetchall()
    (mine, *here), (other, *there) = spots
    users = {"admin": ("admin", ()), "townwall": ("wall", (mine,))}
    with signin_app(demo_db, tmp_path_factory.mktemp("wall-scope"), users) as app, sync_playwright() as p:
        tok = token(app.db, "iot-platform", "alarm")
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_context(viewport={"width": 1920, "height": 1080}).new_page()
        sign_in_page(pg, app.url, "townwall", next_url="/wall")
        pg.wait_for_function("() => { const e = document.querySelector('#wall-kpi-open');"
                             " return e && e.textContent.trim() !== '–'; }", timeout=60000)
        pg.wait_for_timeout(1000)
        stamp = time.monotonic_ns()
        assert post(app.url, "alarm", alarm(f"OUT-{stamp}", lonlat=tuple(there)), tok)[0] == 201
        assert post(app.url, "alarm", alarm(f"IN-{stamp}", lonlat=tuple(here)), tok)[0] == 201
        pg.wait_for_selector(f'#wall-live-ticker li[data-id="IN-{stamp}"]', timeout=5000)
        assert mine in pg.inner_text(f'#wall-live-ticker li[data-id="IN-{stamp}"]')
        pg.wait_for_timeout(1500)  # a further check or two: the other town's alarm stays away
        assert pg.locator(f'#wall-live-ticker li[data-id="OUT-{stamp}"]').count() == 0
        assert other not in pg.inner_text("#wall-live-ticker")
        browser.close()
