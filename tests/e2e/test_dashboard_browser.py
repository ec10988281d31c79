"""The real dashboard in Debian's Chromium: pages load clean, layers render, filters and
what-if edits change the figures, the wall follows the database, nothing leaves 127.0.0.1.

One `onemap serve` subprocess and one browser for the module; screenshots of every page
at 1920x1080 go to test-artifacts/.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import urlopen

import geopandas as gpd
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
REFRESH_S = 2

if not Path(CHROMIUM).exists():  # pragma: no cover - `make test` installs it (make browser)
    if os.environ.get("CI"):  # on CI a missing browser is a broken setup, not a reason to skip
        pytest.fail("Debian chromium not installed: `make browser` must run before the tests", pytrace=False)
    pytest.skip("Debian chromium not installed (run `make browser`)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(demo_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """`onemap serve` on a private copy of the demo database, with a short wall refresh."""
    root = tmp_path_factory.mktemp("e2e")
    db = root / "demo.duckdb"
    shutil.copyfile(demo_db, db)
    cfg = root / "onemap.toml"
    cfg.write_text(f"[onemap]\nwall_refresh_s = {REFRESH_S}\n", encoding="utf-8")
    port = _free_port()
    exe = Path(sys.executable).with_name("onemap")
    env = {**os.environ, "ONEMAP_DB": str(db)}
    log = open(root / "server.log", "w")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen([str(exe), "serve", "--db", str(db), "--port", str(port), "--config", str(cfg)],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    url = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            urlopen(url + "/api/empty.geojson", timeout=1)
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError((root / "server.log").read_text()) from None
            time.sleep(0.2)
    yield {"url": url, "db": db, "log": root / "server.log"}
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


REQUESTS: list[str] = []


@pytest.fixture
def page(browser):
    """A 1920x1080 page that records console errors, page errors and every request."""
    ctx = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="zh-CN")
    pg = ctx.new_page()
    pg.errors = []
    pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.on("request", lambda r: REQUESTS.append(r.url))
    yield pg
    ctx.close()


def _layer_responses(pg, collected: list) -> None:
    """Collect the map data responses (read after the page settles: handlers must not block)."""
    pg.on("response", lambda r: collected.append(r) if ("/api/layer/" in r.url or "/api/polygons/" in r.url) else None)


def _features(responses: list) -> list[tuple[str, int]]:
    out = []
    for r in responses:
        try:
            out.append((r.url, len(r.json().get("features", []))))
        except Exception:  # noqa: BLE001 - a response of a page already navigated away
            pass
    return out


def _wait_idle(pg, seconds: float = 1.0) -> None:
    pg.wait_for_load_state("networkidle")
    time.sleep(seconds)


@pytest.mark.parametrize("path", ["/", "/wall", "/plan", "/review", "/wall?lang=en"])
def test_page_loads_without_console_errors_and_renders_layers(server, page, path, artifacts_dir):
    seen: list = []
    _layer_responses(page, seen)
    page.goto(server["url"] + path)
    page.wait_for_selector(".leaflet-container")
    _wait_idle(page, 2.0)
    assert page.errors == []
    seen = _features(seen)
    # boundaries and grids are drawn from the database (no tiles in offline mode)
    assert any("/api/polygons/grid" in u and n > 0 for u, n in seen)
    assert page.locator(".om-legend").count() == 1
    # the legend's rows come once the map has painted (deferred), and they do come
    page.wait_for_selector(".om-legend .om-legend-row", timeout=10000)
    if path.startswith("/wall") or path == "/":
        assert any("/api/layer/" in u and n > 0 for u, n in seen), seen
    name = {"/": "home", "/wall?lang=en": "wall_en"}.get(path, path.strip("/"))
    page.screenshot(path=str(artifacts_dir / f"dashboard_{name}_1920x1080.png"))
    if path.startswith("/wall"):
        # a wall has no scrollbars
        assert page.evaluate("() => document.documentElement.scrollHeight <= window.innerHeight + 1")
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
    if path == "/wall?lang=en":
        assert "Open hazards" in page.inner_text(".om-wall-kpis")


# When a selector first appears (performance.now()), recorded from the page's first script on.
APPEAR_PROBE = """
window.__omSeen = {};
new MutationObserver(() => {
  for (const sel of window.__omWatch || []) {
    if (window.__omSeen[sel] === undefined && document.querySelector(sel)) { window.__omSeen[sel] = performance.now(); }
  }
}).observe(document, {childList: true, subtree: true});
"""


@pytest.mark.parametrize(("path", "controls"), [("/plan", ["#plan-f-layer", "#plan-k", ".om-legend-row"]),
                                                ("/review", ["#review-dates", "#review-category", ".om-legend-row"])])
def test_side_controls_come_after_the_map_has_painted(server, page, path, controls):
    """The map first: the filter controls and the legend mount once boundaries, grids and roads
    have painted, and they do mount (with their callbacks' first answers)."""
    page.add_init_script(f"window.__omWatch = {controls!r};" + APPEAR_PROBE)
    page.goto(server["url"] + path)
    for sel in controls:
        page.wait_for_selector(sel, timeout=15000)
    painted = page.evaluate("() => Object.entries(window.__omDraw || {}).filter(([k]) => "
                            "k.startsWith('poly-') || k === 'roads').map(([k, d]) => d.firstPaint)")
    assert len(painted) >= 3 and all(p is not None for p in painted)
    seen = page.evaluate("() => window.__omSeen")
    for sel in controls:
        assert seen[sel] >= max(painted), (sel, seen, painted)
    if path == "/plan":
        page.wait_for_function("() => /\\d/.test(document.querySelector('#plan-f-count').textContent)", timeout=15000)
    else:
        page.wait_for_function("() => /\\d/.test(document.querySelector('#review-total').textContent)", timeout=15000)
        page.wait_for_selector("#review-loop-box table, #review-loop-box .dash-table-container", timeout=20000)
    assert page.errors == []


def test_wall_fits_4k_without_scrollbars(server, browser, artifacts_dir):
    ctx = browser.new_context(viewport={"width": 3840, "height": 2160})
    pg = ctx.new_page()
    pg.goto(server["url"] + "/wall")
    pg.wait_for_selector("#wall-kpi-open")
    _wait_idle(pg, 1.5)
    assert pg.evaluate("() => document.documentElement.scrollHeight <= window.innerHeight + 1")
    assert pg.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
    size = pg.evaluate("() => parseFloat(getComputedStyle(document.querySelector('.om-kpi-value')).fontSize)")
    assert size >= 100  # 5.6vh: ~120 px on a 4K wall, readable from 3 m
    pg.screenshot(path=str(artifacts_dir / "dashboard_wall_3840x2160.png"))
    ctx.close()


def test_wall_shows_an_inserted_hazard_within_one_refresh(server, page):
    from geo import store

    page.goto(server["url"] + "/wall")
    page.wait_for_function("() => { const e = document.querySelector('#wall-kpi-open');"
                           " return e && e.textContent.trim() !== '–'; }", timeout=20000)
    before = int(page.inner_text("#wall-kpi-open").replace(",", ""))
    con = store.connect(server["db"])
    grid = con.execute("SELECT id, town, community, lon, lat FROM grid LIMIT 1").fetchone()
    con.close()
    frame = gpd.GeoDataFrame({
        "id": ["E2E-0001"], "category": ["堵塞占用生命通道"], "severity": ["重大"], "status": ["发现"],
        "discovered_at": [datetime.now()], "town": [grid[1]], "community": ["E2E测试社区"], "grid_id": [grid[0]],
    }, geometry=gpd.points_from_xy([grid[3]], [grid[4]]), crs=4326)
    with store.writer(server["db"]) as con:
        store.write_layer(con, "hazard", frame)
    inserted = time.monotonic()
    page.wait_for_function("() => { const e = document.querySelector('#wall-ticker');"
                           " return e && e.textContent.includes('E2E测试社区'); }",
                           timeout=(REFRESH_S + 4) * 1000)
    assert time.monotonic() - inserted <= REFRESH_S + 2.5
    assert int(page.inner_text("#wall-kpi-open").replace(",", "")) == before + 1
    assert page.errors == []


def _pixel(lon: float, lat: float, center: tuple[float, float], zoom: int, box: dict) -> tuple[float, float]:
    """Screen position of lon/lat on a Web-Mercator map showing ``center`` at ``zoom``."""
    def proj(lo: float, la: float) -> tuple[float, float]:
        scale = 256 * 2**zoom
        x = (lo + 180) / 360 * scale
        y = (1 - math.log(math.tan(math.radians(la)) + 1 / math.cos(math.radians(la))) / math.pi) / 2 * scale
        return x, y
    cx, cy = proj(center[1], center[0])
    px, py = proj(lon, lat)
    return box["x"] + box["width"] / 2 + (px - cx), box["y"] + box["height"] / 2 + (py - cy)


def test_adding_a_station_on_plan_changes_the_reach_figure(server, page):
    from dashboard.components.mapview import fit_zoom
    from geo import coverage, mapdata, store
    from geo.coverage_inputs import load_scene

    con = store.connect(server["db"])
    worst = coverage.uncovered_clusters(coverage.compute_coverage(load_scene(con)), top=1).iloc[0]
    w, s, e, n = mapdata.data_bounds(con)
    con.close()
    page.goto(server["url"] + "/plan")
    fig = "#plan-fig-area_share_micro_station"
    page.wait_for_selector(fig, timeout=20000)
    before = page.inner_text(fig)
    page.click("#plan-add-mode")
    page.wait_for_selector("#plan-add-mode.active")
    box = page.locator("#plan-map").bounding_box()
    center = ((s + n) / 2, (w + e) / 2)
    x, y = _pixel(float(worst["lon"]), float(worst["lat"]), center, fit_zoom((w, s, e, n), 1500, 1030), box)
    page.mouse.click(x, y)
    page.wait_for_function(f"(b) => document.querySelector('{fig}').textContent !== b", arg=before, timeout=15000)
    after = page.inner_text(fig)
    assert float(after.rstrip("%")) > float(before.rstrip("%"))
    assert page.locator(".om-station").count() == 1  # the new station is on the map, draggable
    assert page.errors == []


def test_review_filter_changes_map_and_figures(server, page):
    page.goto(server["url"] + "/review")
    page.wait_for_function("() => { const e = document.querySelector('#review-total');"
                           " return e && e.textContent.length > 0; }", timeout=20000)
    _wait_idle(page, 1.0)
    before = page.inner_text("#review-total")
    updates: list[str] = []
    page.on("response", lambda r: updates.append(r.url) if "_dash-update-component" in r.url else None)
    changed = "(b) => document.querySelector('#review-total').textContent !== b"
    for attempt in range(2):  # under heavy load the first keystrokes can reach the dropdown before it opens
        page.click("#review-severity")
        page.keyboard.type("重大")
        page.keyboard.press("Enter")
        try:
            page.wait_for_function(changed, arg=before, timeout=15000)
            break
        except PlaywrightTimeoutError:
            if attempt:
                raise
            page.keyboard.press("Escape")
    after = page.inner_text("#review-total")
    n_before = int(before.split(":")[-1].replace(",", "").strip())
    n_after = int(after.split(":")[-1].replace(",", "").strip())
    assert 0 < n_after < n_before
    # the hotspot layer was recomputed for the filter (a new hexagon collection reached the map)
    _wait_idle(page, 1.0)
    assert updates
    assert page.errors == []


def test_offline_no_request_leaves_localhost(server):
    assert REQUESTS, "the browser tests ran first and recorded requests"
    hosts = {urlparse(u).hostname for u in REQUESTS if urlparse(u).scheme in ("http", "https")}
    assert hosts <= {"127.0.0.1"}, hosts


def test_dragging_a_station_on_plan_changes_the_figures(server, page):
    """Add a station where coverage is worst, then drag it onto an existing micro station:
    the reach figure computed with the move drops back (the new station adds nothing there)."""
    from dashboard.components.mapview import fit_zoom
    from geo import coverage, mapdata, store
    from geo.coverage_inputs import load_scene

    con = store.connect(server["db"])
    worst = coverage.uncovered_clusters(coverage.compute_coverage(load_scene(con)), top=1).iloc[0]
    w, s, e, n = mapdata.data_bounds(con)
    station = con.execute("SELECT lon, lat FROM micro_station ORDER BY id LIMIT 1").fetchone()
    con.close()
    page.goto(server["url"] + "/plan")
    fig = "#plan-fig-area_share_micro_station"
    page.wait_for_selector("#plan-figures [data-edits='0']", timeout=20000)
    base = float(page.inner_text(fig).rstrip("%"))
    box = page.locator("#plan-map").bounding_box()
    center, zoom = ((s + n) / 2, (w + e) / 2), fit_zoom((w, s, e, n), 1500, 1030)
    page.click("#plan-add-mode")
    page.wait_for_selector("#plan-add-mode.active")
    page.mouse.click(*_pixel(float(worst["lon"]), float(worst["lat"]), center, zoom, box))
    page.wait_for_selector("#plan-figures [data-edits='1']", timeout=15000)
    added = float(page.inner_text(fig).rstrip("%"))
    assert added > base
    page.click("#plan-add-mode")  # leave add mode: the drop must not add another station
    page.wait_for_selector("#plan-add-mode:not(.active)")
    marker = page.locator(".om-station").bounding_box()
    x0, y0 = marker["x"] + marker["width"] / 2, marker["y"] + marker["height"] / 2
    x1, y1 = _pixel(float(station[0]), float(station[1]), center, zoom, box)
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x1, y1, steps=12)
    page.mouse.up()
    page.wait_for_selector("#plan-figures [data-edits='2']", timeout=15000)
    moved = float(page.inner_text(fig).rstrip("%"))
    assert base <= moved < added  # next to an existing station the new one covers little that is new
    assert page.locator(".om-station").count() == 1
    assert page.errors == []


def test_removing_a_station_that_lies_under_the_coverage_zones(server, page):
    """A micro station lies inside its own isochrones: a click on it still selects it (points
    draw on their own canvas, above the zones), and "remove" lowers the reach figure."""
    from dashboard.components.mapview import fit_zoom
    from geo import coverage, mapdata, store
    from geo.coverage_inputs import load_scene

    con = store.connect(server["db"])
    w, s, e, n = mapdata.data_bounds(con)
    # the micro station that is first to arrive in the most cells
    cells = coverage.compute_coverage(load_scene(con)).cells
    first = cells.loc[cells["res"] == cells["res"].min(), "first_micro_station"].dropna().astype(str)
    name, lon, lat = con.execute("SELECT name, lon, lat FROM micro_station WHERE id = ?",
                                 [first[first != ""].value_counts().index[0]]).fetchone()
    con.close()
    page.goto(server["url"] + "/plan")
    fig = "#plan-fig-area_share_micro_station"
    page.wait_for_selector("#plan-figures [data-edits='0']", timeout=20000)
    page.wait_for_function("() => ['plan-iso', 'pts-micro_station'].every(k => window.__omDraw && "
                           "window.__omDraw[k] && window.__omDraw[k].paint !== undefined)", timeout=20000)
    base = float(page.inner_text(fig).rstrip("%"))
    box = page.locator("#plan-map").bounding_box()
    x, y = _pixel(lon, lat, ((s + n) / 2, (w + e) / 2), fit_zoom((w, s, e, n), 1500, 1030), box)
    page.mouse.move(x - 30, y - 30)
    page.mouse.click(x, y)
    page.wait_for_function("(t) => document.querySelector('#plan-selected').textContent.includes(t)", arg=name,
                           timeout=10000)
    page.click("#plan-remove")
    page.wait_for_selector("#plan-figures [data-edits='1']", timeout=15000)
    assert float(page.inner_text(fig).rstrip("%")) < base
    assert page.errors == []


def test_wall_dispatch_picture_for_the_newest_incident(server, page):
    """The wall opens with the newest incident's dispatch picture (responders ranked by ETA);
    an incident inserted into the database takes over the picture within one refresh."""
    from geo import store

    page.goto(server["url"] + "/wall")
    page.wait_for_selector("#wall-dispatch .om-dp-list li", timeout=20000)

    def etas() -> list[float]:
        return [float(x.split()[0]) for x in page.locator("#wall-dispatch .om-dp-eta").all_inner_texts()]

    first = etas()
    assert first and first == sorted(first)
    first_text = "|".join(page.locator("#wall-dispatch .om-dp-eta").all_inner_texts())
    con = store.connect(server["db"])
    newest = con.execute("SELECT kind, town FROM incident ORDER BY reported_at DESC LIMIT 1").fetchone()
    station = con.execute("SELECT lon, lat, town FROM fire_station ORDER BY id LIMIT 1").fetchone()
    con.close()
    label = page.inner_text("#wall-incident")
    assert newest[0] in label and (newest[1] or "") in label
    frame = gpd.GeoDataFrame({
        "id": ["E2E-ALARM-1"], "kind": ["火灾"], "source": ["119接警"], "reported_at": [datetime.now()],
        "status": ["待处置"], "town": [station[2]], "community": ["E2E调度社区"],
    }, geometry=gpd.points_from_xy([station[0] + 0.001], [station[1] + 0.001]), crs=4326)
    with store.writer(server["db"]) as con:
        store.write_layer(con, "incident", frame)
    page.wait_for_function("() => document.querySelector('#wall-incident').textContent.includes('火灾') && "
                           "document.querySelector('#wall-ticker').textContent.includes('E2E调度社区')",
                           timeout=(REFRESH_S + 6) * 1000)
    page.wait_for_function("(b) => { const l = [...document.querySelectorAll('#wall-dispatch .om-dp-eta')]"
                           ".map(e => e.textContent).join('|'); return l.length > 0 && l !== b; }",
                           arg=first_text,
                           timeout=(REFRESH_S + 8) * 1000)
    now = etas()
    assert now == sorted(now)
    assert now[0] <= 5.0  # next to a fire station: the first responder is minutes away
    assert page.errors == []


@pytest.mark.parametrize("path", ["/", "/wall", "/plan", "/review"])
def test_opening_data_is_preloaded_and_fetched_once(server, page, path):
    """Every data layer the page opens with is requested once, by the HTML's preload (while the
    scripts load), and the map's layers take it from there; toggling a layer off and on again
    recomputes the URLs in the browser (layerUrls) and fetches nothing new: the URLs the server
    put in the page are the ones the browser builds."""
    data: list[tuple[str, str]] = []
    page.on("request", lambda r: data.append((r.url, r.resource_type)) if "/api/" in r.url else None)
    page.goto(server["url"] + path)
    page.wait_for_selector(".leaflet-container")
    _wait_idle(page, 1.0)
    urls = [u for u, _ in data]
    assert urls and len(urls) == len(set(urls)), sorted(urls)
    preloaded = set(page.evaluate(
        "() => Array.from(document.querySelectorAll('link[rel=preload][as=fetch]')).map(l => l.href)"))
    assert set(urls) == preloaded
    drawn = page.evaluate("() => Object.keys(window.__omDraw || {})")
    assert {"poly-grid", "poly-admin_area", "roads"} <= set(drawn)
    before = len(data)
    page.evaluate("""() => { const box = document.querySelector('.leaflet-control-layers-overlays');
        const input = box.querySelector('input:checked'); input.click(); input.click(); }""")
    _wait_idle(page, 1.0)
    assert [u for u, _ in data[before:]] == []
    assert page.errors == []


def test_a_station_shows_its_name_on_hover_and_its_details_on_click(server, page):
    """Tooltips and popups are bound on the first hover/click; the popup fetches the details once."""
    from dashboard.components.mapview import fit_zoom
    from geo import mapdata, store

    con = store.connect(server["db"])
    w, s, e, n = mapdata.data_bounds(con)
    name, lon, lat = con.execute("SELECT name, lon, lat FROM fire_station ORDER BY id LIMIT 1").fetchone()
    con.close()
    details: list[str] = []
    page.on("request", lambda r: details.append(r.url) if "/api/feature/" in r.url else None)
    page.goto(server["url"] + "/")
    page.wait_for_function("() => window.__omDraw && window.__omDraw['pts-fire_station'] && "
                           "window.__omDraw['pts-fire_station'].paint !== undefined", timeout=30000)
    box = page.locator("#home-map").bounding_box()
    x, y = _pixel(lon, lat, ((s + n) / 2, (w + e) / 2), fit_zoom((w, s, e, n), 1900, 960), box)
    page.mouse.move(x - 40, y - 40)
    page.mouse.move(x, y, steps=4)
    page.mouse.move(x + 1, y + 1)
    page.wait_for_function("(t) => Array.from(document.querySelectorAll('.leaflet-tooltip'))"
                           ".some(e => e.textContent === t)", arg=name, timeout=5000)
    page.mouse.click(x + 1, y + 1)
    page.wait_for_function("(t) => { const p = document.querySelector('.leaflet-popup-content');"
                           " return p && p.textContent.includes(t) && p.querySelector('table'); }", arg=name,
                           timeout=10000)
    _wait_idle(page, 1.0)
    assert len(details) == 1, details
    assert page.errors == []


def _geojson(server: dict, url: str) -> dict:
    import json

    with urlopen(server["url"] + url, timeout=30) as r:
        return json.loads(r.read())


def test_hover_shows_a_hexagons_count_and_a_grids_name(server, page):
    """The mouse reaches grids and hexagons under the point layers' canvas: a hexagon (merged by
    colour class) shows its own count, a grid away from hexagons and points shows its name."""
    import shapely
    from shapely.geometry import shape

    from dashboard.components.mapview import fit_zoom
    from dashboard.i18n import t
    from geo import mapdata, store
    from layers.registry import get_spec

    con = store.connect(server["db"])
    w, s, e, n = mapdata.data_bounds(con)
    con.close()
    page.goto(server["url"] + "/")
    page.wait_for_function("(ks) => ks.every(k => window.__omDraw && window.__omDraw[k] && "
                           "window.__omDraw[k].paint !== undefined)", arg=["hex-hazard", "poly-grid"], timeout=30000)
    _wait_idle(page, 0.5)
    links = page.evaluate("() => Array.from(document.querySelectorAll('link[rel=preload][as=fetch]'))"
                          ".map(l => l.getAttribute('href'))")
    merged = _geojson(server, next(u for u in links if "/api/layer/hazard/hex" in u))["features"]
    # hexagons come merged by colour class: one polygon and one count per hexagon
    hexes = [{"geometry": {"type": "Polygon", "coordinates": poly}, "properties": {"count": n}}
             for f in merged for poly, n in zip(f["geometry"]["coordinates"], f["properties"]["counts"], strict=True)]
    points = [f["geometry"]["coordinates"] for u in links if "/points.geojson" in u
              for f in _geojson(server, u)["features"]]
    outlines = _geojson(server, next(u for u in links if "/api/polygons/grid" in u))["features"]
    grids = [{"geometry": {"type": "Polygon", "coordinates": poly}, "properties": {"name": name}}
             for f in outlines for poly, name in zip(f["geometry"]["coordinates"], f["properties"]["name"], strict=True)]
    assert hexes and grids
    box = page.locator("#home-map").bounding_box()
    zoom = fit_zoom((w, s, e, n), 1900, 960)
    px = lambda lon, lat: _pixel(lon, lat, ((s + n) / 2, (w + e) / 2), zoom, box)  # noqa: E731
    pts_px = [px(*c) for c in points]

    def clear(x: float, y: float) -> bool:  # no point marker within 15 px
        return all((x - a) ** 2 + (y - b) ** 2 > 15 ** 2 for a, b in pts_px)

    def hover_shows(x: float, y: float, text: str) -> None:
        page.mouse.move(x - 30, y - 30)
        page.mouse.move(x, y, steps=4)
        page.mouse.move(x + 1, y + 1)
        try:  # a tooltip passed on the way may still be fading out: look for the one expected
            page.wait_for_function("(t) => Array.from(document.querySelectorAll('.leaflet-tooltip'))"
                                   ".some(e => e.textContent === t)", arg=text, timeout=5000)
        except PlaywrightTimeoutError:
            shown = page.evaluate("() => Array.from(document.querySelectorAll('.leaflet-tooltip')).map(e => e.textContent)")
            pytest.fail(f"hovering ({x:.0f}, {y:.0f}) shows {shown!r}, not {text!r}")

    # the hexagon with the most rows and no point marker near its centre
    hexes.sort(key=lambda f: -f["properties"]["count"])
    cell = next(f for f in hexes if clear(*px(*shape(f["geometry"]).centroid.coords[0])))
    label = get_spec("hazard").label("zh") + " · " + t("hex_tooltip", "zh").replace("{n}", str(cell["properties"]["count"]))
    hover_shows(*px(*shape(cell["geometry"]).centroid.coords[0]), label)
    # a grid whose inside point lies in no hexagon and near no point marker
    covered = shapely.union_all([shape(f["geometry"]).buffer(0.002) for f in hexes])
    page.mouse.move(box["x"] + 2, box["y"] + box["height"] - 2)
    for g in grids:
        x, y = px(*shape(g["geometry"]).representative_point().coords[0])
        inside = box["x"] + 60 < x < box["x"] + box["width"] - 260 and box["y"] + 60 < y < box["y"] + box["height"] - 60
        if inside and clear(x, y) and not covered.contains(shape(g["geometry"]).representative_point()):
            break
    else:
        pytest.fail("no grid clear of hexagons and points in the demo")
    hover_shows(x, y, g["properties"]["name"])
    assert page.errors == []
