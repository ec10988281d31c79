"""Hydrant blind spots, spacing along roads and nearest water on hand-built cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_coverage_cases import SETTINGS, line_graph, lonlat

from geo import water
from geo.coverage_inputs import make_scene

NOBODY = pd.DataFrame(
    {"id": ["M"], "layer": ["micro_station"], "lon": [lonlat(0)[0]], "lat": [lonlat(0)[1]]}
)


def points(prefix: str, easts: list[float], statuses: list[str], **extra) -> pd.DataFrame:
    lon, lat = lonlat(np.array(easts, dtype=float))
    return pd.DataFrame(
        {
            "id": [f"{prefix}{i}" for i in range(len(easts))],
            "name": [f"{prefix}{i}" for i in range(len(easts))],
            "status": statuses,
            "lon": lon,
            "lat": lat,
            **extra,
        }
    )


def test_blind_spots_ignore_damaged_hydrants() -> None:
    place = points("p", [200.0], ["-"]).drop(columns="status")
    # working hydrant 200 m away, a damaged one 10 m away: the place is blind (> 150 m)
    hyd = points("h", [0.0, 190.0], ["正常", "损坏"])
    spots = water.hydrant_blind_spots(
        make_scene(NOBODY, None, key_places=place, hydrants=hyd, settings=SETTINGS)
    )
    row = spots.key_places.iloc[0]
    assert (
        row["blind"]
        and row["hydrant_id"] == "h0"
        and row["hydrant_m"] == pytest.approx(200, rel=0.01)
    )
    # a working hydrant 100 m beyond the place removes the blind spot
    hyd = points("h", [0.0, 190.0, 300.0], ["正常", "损坏", "正常"])
    spots = water.hydrant_blind_spots(
        make_scene(NOBODY, None, key_places=place, hydrants=hyd, settings=SETTINGS)
    )
    row = spots.key_places.iloc[0]
    assert (
        not row["blind"]
        and row["hydrant_id"] == "h2"
        and row["hydrant_m"] == pytest.approx(100, rel=0.01)
    )
    # cells: blind exactly where the centre is > 150 m from the working hydrants
    cells = spots.cells
    assert (
        (cells["blind"] == (cells["hydrant_m"] > 150)).all()
        and cells["blind"].any()
        and (~cells["blind"]).any()
    )


def test_spacing_along_roads_between_neighbouring_hydrants() -> None:
    # a 400 m road with nodes every 10 m; working hydrants at 0, 100, 250 m, a damaged one at 180 m
    graph = line_graph(41, step_m=10.0)
    hyd = points("h", [0.0, 100.0, 250.0, 180.0], ["正常", "正常", "正常", "损坏"])
    scene = make_scene(NOBODY, graph, hydrants=hyd, settings=SETTINGS)
    spacing = water.hydrant_spacing(scene)
    pairs = {
        tuple(sorted((a, b))): (m, o)
        for a, b, m, o in spacing[["a_id", "b_id", "spacing_m", "over_limit"]].itertuples(
            index=False
        )
    }
    assert set(pairs) == {("h0", "h1"), ("h1", "h2")}  # h0-h2 are not neighbours; h3 is damaged
    assert pairs[("h0", "h1")] == (pytest.approx(100.0), False)
    assert pairs[("h1", "h2")] == (pytest.approx(150.0), True)
    assert spacing.iloc[0]["a_id"] in ("h1", "h2") and spacing["mode"].eq("network").all()


def test_nearest_water_skips_damaged_source_and_gives_capacity() -> None:
    graph = line_graph(21)
    place = points("p", [1000.0], ["-"]).drop(columns="status")
    ws = points(
        "w",
        [900.0, 1500.0, 0.0],
        ["损坏", "正常", None],
        kind=["消防水池", "消防水池", "天然水源取水点"],
        capacity_m3=[800.0, 600.0, None],
    )
    out = water.nearest_water(
        make_scene(NOBODY, graph, key_places=place, water_sources=ws, settings=SETTINGS)
    )
    row = out.iloc[0]
    assert row["source_id"] == "w1" and row["capacity_m3"] == 600.0 and row["kind"] == "消防水池"
    assert row["road_m"] == pytest.approx(500.0, abs=1.0)
