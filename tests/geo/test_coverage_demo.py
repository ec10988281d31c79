"""The engine on the demo district (roads, stations, places, hydrants written by the demo generator)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from geo import coverage, dispatch, siting, store, water
from geo.coverage_inputs import load_scene
from geo.settings import Settings


@pytest.fixture(scope="module")
def scene(demo_db):
    con = store.connect(demo_db)
    try:
        return load_scene(con, Settings())
    finally:
        con.close()


def test_demo_coverage_figures(scene) -> None:
    assert scene.mode == "network" and scene.graph.n_edges > 1000
    result = coverage.compute_coverage(scene)
    summ = coverage.summary(result)
    assert 0 < summ["area_share"] < 1 and summ["places"] == len(scene.key_places) > 0
    assert set(result.layers) == {"micro_station", "fire_station"}
    # every place reached in time really has an ETA within its responder's target
    kp = result.key_places
    ok = kp["covered"]
    within = (kp["eta_micro_station"] <= 180.0) | (kp["eta_fire_station"] <= 300.0)
    assert (ok == within).all()
    figs = coverage.figures(result, "town")
    assert figs["area_km2"].sum() == pytest.approx(summ["area_km2"], rel=1e-6)
    due = coverage.first_due_areas(result)
    assert len(due) == (scene.responders["layer"] == "fire_station").sum()
    clusters = coverage.uncovered_clusters(result, 5)
    assert clusters["weight"].is_monotonic_decreasing


def test_demo_dispatch_is_fast_and_consistent(scene) -> None:
    place = scene.key_places.iloc[len(scene.key_places) // 2]
    dispatch.dispatch(scene, place["lon"], place["lat"])  # warm-up
    took = []
    for _ in range(5):
        t0 = time.perf_counter()
        out = dispatch.dispatch(scene, place["lon"], place["lat"])
        took.append(time.perf_counter() - t0)
    assert min(took) < 0.25  # ~tens of ms on an idle machine (see the README, coverage performance)
    assert out.responders["eta_s"].is_monotonic_increasing
    assert out.key_place is not None and out.key_place["id"] == place["id"]
    assert all(s in Settings().hydrant_working_statuses for s in out.hydrants["status"])


def test_demo_water_and_siting(scene) -> None:
    spots = water.hydrant_blind_spots(scene)
    assert spots.cells["blind"].any() or len(scene.hydrants) > 0
    spacing = water.hydrant_spacing(scene)
    assert (spacing["over_limit"] == (spacing["spacing_m"] > 120)).all()
    engine = coverage.CoverageEngine(scene)
    sites = siting.suggest_sites(engine, 3)
    assert len(sites.picks) >= 1 and sites.picks["gain_weight"].is_monotonic_decreasing
    first = sites.picks.iloc[0]
    whatif = engine.add("候选1", first["lon"], first["lat"])
    assert whatif.diff["weight_covered"] == pytest.approx(first["gain_weight"], abs=1e-3)
    assert np.isfinite(whatif.after["area_share"])
