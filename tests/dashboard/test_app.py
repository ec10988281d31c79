"""The Dash app in-process: pages registered, map data routes answer, labels translated, no CDN."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dashboard import i18n
from geo.settings import Settings
from layers.registry import LAYERS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def client(demo_db: Path):
    from dashboard.app import create_app

    app = create_app(Settings(), str(demo_db))
    return app.server.test_client()


def test_pages_answer_and_assets_are_local(client):
    for path in ("/", "/wall", "/plan", "/review"):
        resp = client.get(path)
        assert resp.status_code == 200
        html = resp.get_data(as_text=True)
        # every script and stylesheet is served by the app itself
        for url in re.findall(r'(?:src|href)="([^"]+)"', html):
            assert not url.startswith(("http://", "https://", "//")), url


def test_layer_route_serves_hexagons_then_points(client):
    bbox = "120.9,30.8,121.5,31.2"
    hexes = client.get(f"/api/layer/hazard/hex.geojson?bbox={bbox}&zoom=10").get_json(force=True)
    assert hexes["features"]  # merged by colour class: one polygon count per part
    for f in hexes["features"]:
        assert len(f["properties"]["counts"]) == len(f["geometry"]["coordinates"]) > 0
    pts = client.get(f"/api/layer/hazard/points.geojson?bbox={bbox}&zoom=10").get_json(force=True)
    assert pts["features"] == []  # at low zoom the hazards are hexagons only
    f = json.dumps({"severity": ["重大"]})
    near = "121.20,31.00,121.23,31.03"
    major = client.get(f"/api/layer/hazard/points.geojson?bbox={near}&zoom=16&f={f}").get_json(force=True)
    assert all(x["properties"]["severity"] == "重大" for x in major["features"])


def test_routes_reject_bad_input_with_a_message(client):
    resp = client.get("/api/layer/hazard/points.geojson?bbox=1,2,3&zoom=12")
    assert resp.status_code == 400 and "bbox" in resp.get_json()["error"]
    resp = client.get('/api/layer/hazard/hex.geojson?zoom=12&f={"nope":["x"]}')
    assert resp.status_code == 400 and "nope" in resp.get_json()["error"]
    assert client.get("/api/layer/nolayer/hex.geojson").status_code == 400
    assert client.get("/api/feature/hazard/does-not-exist").status_code == 404


def test_popup_details_keep_user_text_as_data(client, demo_db):
    from geo import store

    con = store.connect(demo_db)
    hid = con.execute("SELECT id FROM hazard LIMIT 1").fetchone()[0]
    con.close()
    body = client.get(f"/api/feature/hazard/{hid}?lang=en").get_json()
    assert body["title"] == LAYERS["hazard"].en
    assert ["ID", hid] in body["rows"]


def test_polygons_and_roads_routes(client):
    grid = client.get("/api/polygons/grid.geojson").get_json(force=True)
    assert grid["features"] and grid["features"][0]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    roads = client.get("/api/roads.geojson?bbox=120.9,30.8,121.5,31.2&zoom=11").get_json(force=True)
    assert roads["features"]


def test_every_label_used_by_the_dashboard_is_translated():
    used = set()
    for path in (ROOT / "dashboard").rglob("*.py"):
        used |= set(re.findall(r"\bt\(\s*\"([a-z0-9_]+)\"", path.read_text(encoding="utf-8")))
    missing = sorted(used - set(i18n.TEXT))
    assert missing == []
    latin_ok = {"lang_switch", "export_geojson", "export_csv", "hot_99", "hot_95", "hot_90", "cold_90", "cold_95",
                "cold_99"}
    for key, (zh, en) in i18n.TEXT.items():
        assert zh and en, key
        assert re.search(r"[\u4e00-\u9fff]", zh) or key in latin_ok, f"{key}: Chinese label expected, got {zh!r}"
    with pytest.raises(KeyError, match="add it to dashboard/i18n.py"):
        i18n.t("no_such_label")


def test_bad_url_parameters_are_400_not_500(demo_db):
    """A hand-typed or truncated map URL gets a clear 400 with the reason, never a server error."""
    from dashboard.app import create_app
    from geo.settings import Settings

    client = create_app(Settings(), str(demo_db), warm=False).server.test_client()
    for query in ("zoom=nan", "zoom=inf", "zoom=abc", "start=abc", "end=2026-13-45", "bbox=1,2,3"):
        resp = client.get(f"/api/layer/hazard/hex.geojson?{query}")
        assert resp.status_code == 400, (query, resp.status_code)
        assert resp.get_json()["error"]


def _geojson_urls(component) -> list[str]:
    """URLs of the GeoJSON layers a layout opens with (checked overlays and page overlays)."""
    out: list[str] = []

    def walk(node, checked: bool = True) -> None:
        if isinstance(node, (list, tuple)):
            for n in node:
                walk(n, checked)
            return
        if not hasattr(node, "to_plotly_json"):
            return
        props = node.to_plotly_json()["props"]
        kind = type(node).__name__
        if kind == "Overlay":
            checked = bool(props.get("checked"))
        if kind == "GeoJSON" and checked and props.get("url"):
            out.append(props["url"])
        walk(props.get("children"), checked)

    walk(component)
    return out


@pytest.mark.parametrize("path", ["/", "/wall", "/plan", "/review"])
def test_page_html_preloads_exactly_the_data_its_map_opens_with(client, path):
    """The HTML names the map's opening data (fetched while the scripts load); the layout's
    GeoJSON layers carry the same URLs, and every one of them answers with GeoJSON."""
    import dash

    html = client.get(path).get_data(as_text=True)
    preloaded = [u.replace("&amp;", "&") for u in
                 re.findall(r'<link rel="preload" as="fetch" crossorigin="anonymous" href="([^"]+)">', html)]
    assert any(u.startswith("/api/polygons/grid.geojson") for u in preloaded)
    assert any(u.startswith("/api/roads.geojson?bbox=") for u in preloaded)
    page = next(p for p in dash.page_registry.values() if p["path"] == path)
    layout_urls = _geojson_urls(page["layout"]())
    assert sorted(set(preloaded)) == sorted(set(layout_urls))
    for url in preloaded:
        resp = client.get(url)
        assert resp.status_code == 200, url
        assert resp.get_json(force=True)["type"] == "FeatureCollection"
    if path in ("/", "/wall"):  # the densest event layer opens as hexagons
        assert any(u.startswith("/api/layer/hazard/hex.geojson") for u in preloaded)
    if path == "/wall":  # the wall's layers carry its filter (open hazards) in the URL
        assert all("&f=" in u for u in preloaded if "/api/layer/hazard/" in u)
    if path == "/plan":
        assert any(u.startswith("/api/overlay/plan-iso.geojson") for u in preloaded)
    if path == "/review":
        assert any(u.startswith("/api/overlay/review-hot.geojson") for u in preloaded)


def test_map_outlines_view_of_the_polygons_route(client):
    full = client.get("/api/polygons/grid.geojson").get_json(force=True)
    slim = client.get("/api/polygons/grid.geojson?fields=map").get_json(force=True)
    assert len(slim["features"]) == len(full["features"]) > 0
    assert set(slim["features"][0]["properties"]) == {"id", "name"}
    assert "phone" in full["features"][0]["properties"]
    outlines = client.get("/api/polygons/grid.geojson?fields=outlines").get_json(force=True)
    assert [len(f["properties"]["name"]) for f in outlines["features"]] == [len(full["features"])]
    resp = client.get("/api/polygons/grid.geojson?fields=everything")
    assert resp.status_code == 400 and "fields" in resp.get_json()["error"]


def test_review_hotspot_route_answers_per_filter(client):
    html = client.get("/review").get_data(as_text=True)
    url = re.search(r'href="(/api/overlay/review-hot\.geojson[^"]+)"', html).group(1).replace("&amp;", "&")
    opening = client.get(url).get_json(force=True)
    assert opening["features"] and {f["properties"]["bin"] for f in opening["features"]} <= {
        "-3", "-2", "-1", "1", "2", "3"}
    major = client.get(url + "&severity=" + json.dumps(["重大"])).get_json(force=True)
    assert major["type"] == "FeatureCollection" and major != opening
    assert client.get(url + "&severity=notjson").status_code == 400
    assert client.get("/api/overlay/review-hot.geojson?start=abc").status_code == 400


def test_an_empty_layer_does_not_hold_back_the_side_panels(copy_demo_db):
    """Side panels open once the map's outlines and roads have painted; a layer with nothing to
    draw never paints, so it is left out of what they wait for (else they would wait 4 s)."""
    from dashboard.components import mapview
    from geo import store

    con = store.connect(copy_demo_db)
    counts = mapview.layer_counts(con)
    con.close()
    polygons = [n for n, s in LAYERS.items() if s.geometry == "polygon"]
    assert counts["road_edges"] > 0 and all(counts[n] > 0 for n in polygons)
    assert mapview.opening_probes(polygons, counts) == [*(f"poly-{n}" for n in polygons), "roads"]

    with store.writer(copy_demo_db) as w:
        w.execute("DELETE FROM road_edges")
        w.execute("DELETE FROM grid")
    con = store.connect(copy_demo_db)
    counts = mapview.layer_counts(con)
    con.close()
    assert counts["road_edges"] == 0 and counts["grid"] == 0
    probes = mapview.opening_probes(polygons, counts)
    assert "roads" not in probes and "poly-grid" not in probes and "poly-admin_area" in probes
