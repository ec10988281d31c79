"""The offline folium map: one HTML file that works in Chromium with the network blocked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dashboard import offline_map
from dashboard.cli import main
from geo import store
from geo.errors import ConfigError, ValidationError
from layers.registry import get_spec

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def exported(demo_db: Path, tmp_path_factory: pytest.TempPathFactory) -> offline_map.OfflineMap:
    out = tmp_path_factory.mktemp("map") / "map.html"
    return offline_map.export_map(out, demo_db)


def _open_offline(path: Path) -> tuple[dict[str, object], list[str]]:
    """Open the file in headless Chromium with every non-local request aborted and recorded."""
    from playwright.sync_api import sync_playwright

    blocked: list[str] = []

    def route(r) -> None:  # noqa: ANN001
        url = r.request.url
        if url.startswith(("file://", "data:", "http://127.0.0.1", "about:")):
            r.continue_()
        else:
            blocked.append(url)
            r.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.route("**/*", route)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(path.as_uri())
            page.wait_for_selector(".leaflet-control-layers-overlays label")
            info = page.evaluate("""() => ({
                paths: document.querySelectorAll('.leaflet-overlay-pane svg path').length,
                labels: [...document.querySelectorAll('.leaflet-control-layers-overlays label')]
                           .map(l => l.textContent.trim()),
                leaflet: typeof L !== 'undefined' ? L.version : null,
                title: document.getElementById('onemap-title').textContent,
            })""")
            info["errors"] = errors
            page.screenshot(path=str(path.with_suffix(".png")))
        finally:
            browser.close()
    return info, blocked


def test_offline_map_shows_its_layers_with_network_blocked(exported: offline_map.OfflineMap, demo_db: Path,
                                                           artifacts_dir: Path) -> None:
    info, blocked = _open_offline(exported.path)
    assert blocked == []
    assert info["errors"] == []
    assert info["leaflet"] == "1.9.4"
    drawn = {name: (mode, n, shown) for name, mode, n, shown in exported.layers}
    # Every layer with rows is listed in the layer control under its Chinese name.
    con = store.connect(demo_db)
    counts = {k: v for k, v in store.table_counts(con).items() if v}
    con.close()
    assert set(drawn) == set(counts)
    labels = info["labels"]
    assert len(labels) == len(counts)
    for name, n in counts.items():
        assert any(label.startswith(get_spec(name).zh) and str(n) in label for label in labels), (name, labels)
    # Hazards are hexagons, not one marker per hazard; every feature is an SVG path.
    assert drawn["hazard"][0] == "hexagons"
    assert drawn["hazard"][1] < counts["hazard"]
    assert drawn["hazard"][2]  # hazards shown; other hexagon layers wait in the layer control
    assert sum(mode == "hexagons" and shown for mode, _, shown in drawn.values()) == 1
    assert info["paths"] >= sum(n for _, n, shown in drawn.values() if shown)
    assert "离线地图" in info["title"]
    shot = exported.path.with_suffix(".png")
    (artifacts_dir / "offline_map.png").write_bytes(shot.read_bytes())


def test_offline_html_has_no_external_asset_and_a_sensible_size(exported: offline_map.OfflineMap) -> None:
    text = exported.path.read_text(encoding="utf-8")
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", text)
    assert "cdn.jsdelivr" not in text and "code.jquery" not in text and "cdnjs" not in text
    assert exported.size_bytes < 8_000_000


def test_points_above_the_limit_become_hexagons(demo_db: Path, tmp_path: Path) -> None:
    small = offline_map.export_map(tmp_path / "m.html", demo_db, layers=["hydrant"], max_points=1, hex_res=8)
    assert small.layers[0][:2] == ("hydrant", "hexagons")
    big = offline_map.export_map(tmp_path / "m2.html", demo_db, layers=["hydrant"], max_points=10**9)
    assert big.layers[0][:2] == ("hydrant", "points")


def test_bad_arguments_are_clear(demo_db: Path, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="unknown layer 'roads'"):
        offline_map.export_map(tmp_path / "m.html", demo_db, layers=["roads"])
    with pytest.raises(ConfigError, match=r"\.html"):
        offline_map.export_map(tmp_path / "m.pdf", demo_db)
    with pytest.raises(ValidationError, match="hex_res 12"):
        offline_map.export_map(tmp_path / "m.html", demo_db, hex_res=12)


def test_cli_export_map(demo_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.html"
    main(["export-map", "--db", str(demo_db), "--out", str(out), "--layers", "admin_area,fire_station"])
    text = capsys.readouterr().out
    assert out.exists() and "fire_station" in text
    html_text = out.read_text(encoding="utf-8")
    assert get_spec("fire_station").zh in html_text and get_spec("hazard").zh + " (" not in html_text


# Names a register might hold, or an attacker might send: Jinja2 syntax (folium renders its output
# as a template again), a payload that would run Python, unbalanced tags, and HTML.
HOSTILE = ("X{{7*7}}X P{{ lipsum.__globals__.os.getpid() }}P "
           "{{ lipsum.__globals__.os.mkdir(lipsum.__globals__.os.environ.ONEMAP_PWNED) }} "
           "{% if 1 %}IF{% endif %} {# note #} {% raw %} {{ {% {# "
           '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"> & ')


@pytest.fixture(scope="module")
def hostile_export(demo_db: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Every text column of every layer starts with ``HOSTILE``; `onemap export-map` draws it.

    Returns the HTML file and the directory the mkdir payload would create if it ran.
    """
    import os
    import shutil

    tmp = tmp_path_factory.mktemp("hostile")
    db = tmp / "hostile.duckdb"
    shutil.copyfile(demo_db, db)
    with store.writer(db) as con:
        # few enough hydrants to be drawn one marker each, so their names reach the map
        con.execute("DELETE FROM hydrant WHERE id NOT IN (SELECT id FROM hydrant ORDER BY id LIMIT 300)")
        for layer in store.table_counts(con):
            cols = [c for c, kind, *_ in con.execute(f"DESCRIBE {layer}").fetchall() if kind == "VARCHAR"]
            con.execute(f"UPDATE {layer} SET " + ", ".join(f'"{c}" = ? || coalesce("{c}", \'\')' for c in cols),
                        [HOSTILE] * len(cols))
    pwned = tmp / "pwned"
    out = tmp / "hostile.html"
    os.environ["ONEMAP_PWNED"] = str(pwned)
    try:
        main(["export-map", "--db", str(db), "--out", str(out), "--max-points", "5000", "--title", HOSTILE])
    finally:
        del os.environ["ONEMAP_PWNED"]
    return out, pwned


def test_hostile_names_on_every_layer_come_out_literally(hostile_export: tuple[Path, Path]) -> None:
    """Template syntax in a name is text: nothing evaluates it, nothing runs, nothing crashes."""
    import os

    out, pwned = hostile_export
    text = out.read_text(encoding="utf-8")
    assert "X{{7*7}}X" in text and "X49X" not in text
    assert "P{{ lipsum.__globals__.os.getpid() }}P" in text and f"P{os.getpid()}P" not in text
    assert not pwned.exists()
    assert "{% if 1 %}IF{% endif %} {# note #} {% raw %} {{ {% {#" in text
    # HTML in a name never becomes markup: no tag of it anywhere in the file
    assert "<script>window.__pwned" not in text and "<img src=x" not in text
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", text)


def test_hostile_names_show_as_text_in_the_browser(hostile_export: tuple[Path, Path]) -> None:
    """Hovering a feature of each drawn layer shows the name exactly as stored; no script of it runs."""
    from playwright.sync_api import sync_playwright

    out, _ = hostile_export
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(out.as_uri())
            page.wait_for_selector(".leaflet-control-layers-overlays label")
            assert page.title() == HOSTILE.strip()
            assert page.text_content("#onemap-title") == HOSTILE
            # hexagons off (they cover the areas and carry counts only), then one pixel inside
            # a feature of each layer with named features
            targets = page.evaluate("""() => {
                const map = Object.keys(window).filter(k => k.startsWith('map_')).map(k => window[k])[0];
                const layers = Object.values(window).filter(g => g instanceof L.GeoJSON);
                layers.filter(g => g.getLayers().some(f => 'count' in f.feature.properties))
                      .forEach(g => map.removeLayer(g));
                return layers.filter(g => map.hasLayer(g) && g.getLayers().length)
                    .map(g => { const f = g.getLayers()[0];
                                const ll = f.getLatLng ? f.getLatLng() : f.getCenter();
                                const pt = map.latLngToContainerPoint(ll);
                                return [pt.x, pt.y, f.getLatLng ? 'point' : 'polygon', f.feature.properties]; });
            }""")
            named = [t for t in targets if any(HOSTILE in str(v) for v in t[3].values())]
            assert {kind for *_, kind, _ in named} == {"point", "polygon"}
            assert len(named) >= 7  # admin areas, grids, hydrants, water, micro and fire stations, key places
            box = page.locator("#" + page.evaluate(
                "() => Object.keys(window).find(k => k.startsWith('map_'))")).bounding_box()
            for x, y, _, _ in named:
                page.mouse.move(box["x"] + x, box["y"] + y)
                tip = page.wait_for_selector(".leaflet-tooltip")
                assert HOSTILE in tip.text_content()
                page.mouse.move(1, 1)
            assert page.evaluate("() => window.__pwned") is None
            assert page.evaluate("() => document.querySelectorAll('img[src=x], .leaflet-tooltip script').length") == 0
            assert errors == []
        finally:
            browser.close()
