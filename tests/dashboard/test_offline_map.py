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


def test_user_text_cannot_inject_html(copy_demo_db: Path, tmp_path: Path) -> None:
    """A station or grid named like HTML shows as text: folium's tooltip uses innerHTML."""
    evil = '<img src=x onerror="alert(1)">'
    with store.writer(copy_demo_db) as con:
        con.execute("UPDATE fire_station SET name = ?", [evil])
        con.execute("UPDATE grid SET name = ?", [evil])
    out = offline_map.export_map(tmp_path / "m.html", copy_demo_db, layers=["grid", "fire_station"])
    text = out.path.read_text(encoding="utf-8")
    # folium writes the GeoJSON as a JS literal (& < > as \\u0026 \\u003c \\u003e): the value the
    # tooltip puts into innerHTML must be the escaped text, not a tag
    assert "<img src=x" not in text and "\\u003cimg src=x" not in text
    assert "\\u0026lt;img src=x" in text or "&lt;img src=x" in text
