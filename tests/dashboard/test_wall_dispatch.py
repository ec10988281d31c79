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
