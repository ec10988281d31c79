"""Maximal covering: greedy against the exact HiGHS optimum, and sites that really add coverage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from test_coverage_cases import SETTINGS, line_graph, lonlat

from geo import coverage, siting
from geo.coverage_inputs import make_scene
from geo.errors import ValidationError


def clustered_instance(seed: int, n_demand: int = 300, n_cand: int = 40, radius: float = 0.08):
    """Demand in a few Gaussian clusters in the unit square; candidates at random; cover by distance."""
    rng = np.random.default_rng(seed)
    centres = rng.random((5, 2))
    which = rng.integers(0, 5, n_demand)
    demand = centres[which] + rng.normal(0, 0.05, (n_demand, 2))
    cand = rng.random((n_cand, 2)) * 0.6 + centres[rng.integers(0, 5, n_cand)] * 0.4
    dist = np.hypot(demand[:, None, 0] - cand[None, :, 0], demand[:, None, 1] - cand[None, :, 1])
    cover = sp.csr_array((dist <= radius).astype(np.float64))
    weights = rng.integers(1, 10, n_demand).astype(np.float64)
    return cover, weights


@pytest.mark.parametrize("seed", range(6))
def test_greedy_within_five_percent_of_exact(seed: int) -> None:
    cover, weights = clustered_instance(seed)
    for k in (2, 4, 6):
        picks, gains = siting.greedy_mclp(cover, weights, k)
        exact_picks, objective, _ = siting.exact_mclp(cover, weights, k, 30)
        assert len(exact_picks) <= k and len(picks) <= k

        # recompute both objectives from the picks themselves
        def covered(p: np.ndarray) -> float:
            return (
                float(weights[np.asarray(cover[:, p].sum(axis=1)).ravel() > 0].sum())
                if len(p)
                else 0.0
            )

        assert covered(picks) == pytest.approx(gains.sum())
        assert covered(exact_picks) == pytest.approx(objective)
        assert gains.sum() <= objective + 1e-9
        assert gains.sum() >= 0.95 * objective


def test_exact_beats_greedy_on_the_textbook_trap() -> None:
    # candidate 0 covers the middle 4 points, 1 and 2 cover 3 each at the sides (overlapping the middle)
    cover = sp.csr_array(
        np.array(
            [
                [0, 1, 0],
                [0, 1, 0],
                [0, 1, 0],
                [1, 1, 0],
                [1, 0, 0],
                [1, 0, 1],
                [1, 0, 1],
                [0, 0, 1],
                [0, 0, 1],
                [0, 0, 1],
            ],
            dtype=float,
        )
    )
    w = np.ones(10)
    picks, gains = siting.greedy_mclp(cover, w, 2)
    exact, obj, _ = siting.exact_mclp(cover, w, 2)
    assert sorted(exact.tolist()) == [1, 2] and obj == 9.0
    assert gains.sum() <= obj


def test_suggest_sites_on_a_road_adds_the_promised_coverage() -> None:
    # 6 km road, micro station at the west end; key places cluster near 4.5 km
    graph = line_graph(61)
    resp = pd.DataFrame(
        {"id": ["M"], "layer": ["micro_station"], "lon": [lonlat(0.0)[0]], "lat": [lonlat(0.0)[1]]}
    )
    east = np.array([4300.0, 4400, 4500, 4600, 4700])
    plon, plat = lonlat(east)
    places = pd.DataFrame(
        {
            "id": [f"p{i}" for i in range(5)],
            "name": "x",
            "category": "住宅小区",
            "inspection_class": 1,
            "lon": plon,
            "lat": plat,
        }
    )
    scene = make_scene(resp, graph, key_places=places, settings=SETTINGS)
    engine = coverage.CoverageEngine(scene)
    result = siting.suggest_sites(engine, 2, exact=True)
    assert result.method == "greedy" and result.mode == "network" and len(result.picks) == 2
    first = result.picks.iloc[0]
    # the first site lands among the key places (within 1200 m of road of all five)
    assert lonlat(3500.0)[0] < first["lon"] < lonlat(5500.0)[0]
    assert (
        result.gap is not None and 0 <= result.gap <= 1 - 1 / np.e
    )  # greedy guarantee (Nemhauser et al. 1978)
    before = coverage.summary(engine.result)
    after = engine.add("S1", first["lon"], first["lat"]).after
    assert after["weight_covered"] - before["weight_covered"] == pytest.approx(
        first["gain_weight"], abs=1e-6
    )
    assert after["places_covered"] == 5


def test_user_candidates_and_radius_mode() -> None:
    resp = pd.DataFrame(
        {"id": ["M"], "layer": ["micro_station"], "lon": [lonlat(0.0)[0]], "lat": [lonlat(0.0)[1]]}
    )
    plon, plat = lonlat(np.array([0.0, 3000.0, 3100.0, 6000.0]))
    places = pd.DataFrame({"id": list("abcd"), "lon": plon, "lat": plat, "inspection_class": 1})
    scene = make_scene(resp, None, key_places=places, settings=SETTINGS)
    cands = pd.DataFrame(
        {"lon": lonlat(np.array([3050.0, 6000.0]))[0], "lat": lonlat(np.array([3050.0, 6000.0]))[1]}
    )
    result = siting.suggest_sites(scene, 1, candidates=cands)
    assert result.mode == "radius" and result.candidates == 2
    assert result.picks.iloc[0]["lon"] == pytest.approx(cands["lon"][0])  # two places beat one


def setback_scene(settings=SETTINGS):
    """6 km road, station at the west end; places at 4.3-4.7 km: a school at 4.4, hazmat at 4.5."""
    resp = pd.DataFrame(
        {"id": ["M"], "layer": ["micro_station"], "lon": [lonlat(0.0)[0]], "lat": [lonlat(0.0)[1]]}
    )
    east = np.array([4300.0, 4400, 4500, 4600, 4700])
    plon, plat = lonlat(east)
    places = pd.DataFrame(
        {
            "id": [f"p{i}" for i in range(5)],
            "name": "x",
            "category": ["住宅小区", "学校", "易燃易爆场所", "住宅小区", "住宅小区"],
            "inspection_class": 1,
            "lon": plon,
            "lat": plat,
        }
    )
    return make_scene(resp, line_graph(61, settings=settings), key_places=places, settings=settings)


def east_of(lon: float) -> float:
    return (lon - lonlat(0.0)[0]) * (lonlat(1000.0)[0] - lonlat(0.0)[0]) ** -1 * 1000.0


def test_siting_keeps_the_gb51080_setbacks_from_crowded_and_hazmat_places() -> None:
    free = SETTINGS.with_overrides(
        station_min_distance_hazmat_m=0.0, station_min_distance_crowded_m=0.0
    )
    loose = siting.suggest_sites(setback_scene(free), 3)
    result = siting.suggest_sites(setback_scene(), 3, exact=True)
    # the candidates dropped are exactly those within 200 m of the hazmat site or 50 m of the school
    every = siting.build_problem(setback_scene(free)).candidates
    east = np.array([east_of(lon) for lon in every["lon"]])
    inside = int(((np.abs(east - 4500.0) < 199.0) | (np.abs(east - 4400.0) < 49.0)).sum())
    assert inside >= 1 and loose.excluded_candidates == 0
    assert result.excluded_candidates == inside == loose.candidates - result.candidates
    for picks in (result.picks, result.exact_picks):
        east = np.array([east_of(lon) for lon in picks["lon"]])
        assert len(east) and (np.abs(east - 4500.0) >= 200.0 - 1.0).all()  # hazmat: 200 m
        assert (np.abs(east - 4400.0) >= 50.0 - 1.0).all()  # school: 50 m


def test_user_candidates_inside_a_setback_are_dropped_and_named() -> None:
    scene = setback_scene()
    lon, lat = lonlat(np.array([4550.0, 3000.0]))
    result = siting.suggest_sites(scene, 1, candidates=pd.DataFrame({"lon": lon, "lat": lat}))
    assert result.candidates == 1 and result.excluded_candidates == 1
    assert east_of(result.picks.iloc[0]["lon"]) == pytest.approx(3000.0, abs=1.0)
    lon, lat = lonlat(np.array([4550.0]))
    with pytest.raises(ValidationError, match="station_min_distance_hazmat_m"):
        siting.suggest_sites(scene, 1, candidates=pd.DataFrame({"lon": lon, "lat": lat}))
