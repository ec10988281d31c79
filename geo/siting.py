"""Where one more responder helps most: greedy and exact maximal covering.

The Maximal Covering Location Problem (MCLP; Church & ReVelle 1974, "The maximal
covering location problem", Papers of the Regional Science Association 32:101-118):
choose k sites among candidates to maximise the demand weight within the response
standard. Greedy adds, k times, the candidate with the largest uncovered weight it
reaches (a (1 - 1/e) approximation, Nemhauser, Wolsey & Fisher 1978); the exact model is
solved as a mixed-integer programme with ``scipy.optimize.milp`` (HiGHS).

Like spopt's ``from_cost_matrix``, the solvers work on a coverage matrix alone
(``greedy_mclp``, ``exact_mclp``); ``suggest_sites`` builds the matrix from a coverage
result: demand = built-up res-10 cells no responder covers (weights from
``Settings.siting_weight_*``), candidates = road nodes in those cells or user-given points.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from geo import h3index
from geo.coverage import AREA_RES, CoverageEngine, CoverageResult, compute_coverage
from geo.coverage_inputs import Scene, layer_timing
from geo.errors import NetworkError, ValidationError

BATCH = 32  # candidates per bounded Dijkstra call (BATCH × nodes floats in memory)


def greedy_mclp(cover: sp.csr_array, weights: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Greedy maximal covering: k picks (candidate positions) and the weight each adds.

    ``cover`` is demand × candidates (non-zero = the candidate reaches the demand point).
    Stops early when no candidate adds weight. One sparse mat-vec per pick.
    """
    by_dem = sp.csr_array(cover, dtype=np.float64)
    by_cand = sp.csr_array(by_dem.T)
    w = np.asarray(weights, dtype=np.float64)
    gain = by_cand @ w
    done = np.zeros(len(w), dtype=bool)
    cp, ci = by_cand.indptr, by_cand.indices
    dp, di = by_dem.indptr, by_dem.indices
    picks, gains = [], []
    for _ in range(int(k)):
        j = int(np.argmax(gain)) if len(gain) else -1
        if j < 0 or gain[j] <= 0:
            break
        picks.append(j)
        gains.append(float(gain[j]))
        new = ci[cp[j] : cp[j + 1]]
        new = new[~done[new]]
        done[new] = True
        # every candidate reaching a newly covered demand point loses its weight (lazy update)
        n = dp[new + 1] - dp[new]
        if n.sum():
            idx = np.repeat(dp[new] - (np.cumsum(n) - n), n) + np.arange(int(n.sum()))
            np.subtract.at(gain, di[idx], np.repeat(w[new], n))
        gain[j] = -np.inf
    return np.asarray(picks, dtype=np.int64), np.asarray(gains, dtype=np.float64)


def exact_mclp(
    cover: sp.csr_array, weights: np.ndarray, k: int, time_limit_s: float = 60.0
) -> tuple[np.ndarray, float, str]:
    """Exact MCLP with HiGHS: (picks, objective, solver message).

    max Σ w_i y_i  s.t.  y_i ≤ Σ_{j covers i} x_j,  Σ x_j ≤ k,  x binary, 0 ≤ y ≤ 1
    (y is integral at the optimum once x is). Demand no candidate reaches is left out.
    """
    cover = sp.csr_array(cover, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    reach = np.asarray((cover != 0).sum(axis=1)).ravel() > 0
    a = cover[reach]
    w = w[reach]
    n, m = a.shape
    if n == 0 or m == 0:
        return np.array([], dtype=np.int64), 0.0, "nothing to cover"
    c = np.concatenate([np.zeros(m), -w])
    link = sp.hstack([-(a != 0).astype(np.float64), sp.eye_array(n)], format="csr")
    budget = sp.csr_array(np.concatenate([np.ones(m), np.zeros(n)])[None, :])
    cons = [LinearConstraint(link, -np.inf, 0.0), LinearConstraint(budget, 0.0, float(k))]
    integrality = np.concatenate([np.ones(m), np.zeros(n)])
    res = milp(
        c,
        constraints=cons,
        integrality=integrality,
        bounds=Bounds(0.0, 1.0),
        options={"time_limit": float(time_limit_s)},
    )
    if res.x is None:
        raise ValidationError(f"exact maximal covering found no solution: {res.message}")
    picks = np.nonzero(res.x[:m] > 0.5)[0]
    return picks.astype(np.int64), float(-res.fun), str(res.message)


@dataclass(frozen=True, eq=False)
class SitingResult:
    """Suggested sites with the gain of each pick.

    ``picks``: rank, node, lon, lat, gain_weight, gain_cells, gain_km2, cumulative_weight,
    cumulative_share (of the uncovered demand weight). ``gap`` = (exact − greedy) / exact.
    """

    method: str
    mode: str
    layer: str
    k: int
    picks: pd.DataFrame
    objective: float
    demand_weight: float
    demand_cells: int
    candidates: int
    seconds: float
    exact_objective: float | None = None
    exact_picks: pd.DataFrame | None = None
    gap: float | None = None
    excluded_candidates: int = 0


@dataclass(frozen=True, eq=False)
class SitingProblem:
    """A maximal-covering instance built from a coverage result."""

    demand: pd.DataFrame  # cells: cell, lon, lat, weight, area_km2, node
    candidates: pd.DataFrame  # lon, lat, node (−1 in radius mode), x, y
    cover: sp.csr_array  # demand × candidates
    mode: str
    layer: str
    excluded: int = 0  # candidates dropped by the GB 51080 setbacks


def within_setbacks(scene: Scene, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """True where a site is too close to a crowded venue or a hazmat site (GB 51080-2015 §4.1.5).

    A station must keep ``station_min_distance_crowded_m`` (50 m) from key places whose
    category is in ``crowded_venue_categories`` and ``station_min_distance_hazmat_m``
    (200 m) from those in ``hazmat_categories``; straight-line metres, as the standard
    measures them. ``x, y`` are metres in the scene's projection.
    """
    s = scene.settings
    places = scene.key_places
    near = np.zeros(len(x), dtype=bool)
    if len(places) == 0 or len(x) == 0:
        return near
    sites = np.column_stack([np.asarray(x, np.float64), np.asarray(y, np.float64)])
    for categories, metres in (
        (s.crowded_venue_categories, s.station_min_distance_crowded_m),
        (s.hazmat_categories, s.station_min_distance_hazmat_m),
    ):
        pick = places["category"].isin(categories).to_numpy() & np.isfinite(places["x"].to_numpy())
        if metres <= 0 or not pick.any():
            continue
        tree = cKDTree(places.loc[pick, ["x", "y"]].to_numpy(np.float64))
        dist, _ = tree.query(sites, distance_upper_bound=metres)
        near |= dist < metres
    return near


def _setback_error(scene: Scene, n: int) -> ValidationError:
    s = scene.settings
    msg = (
        f"all {n} candidate site(s) break the GB 51080-2015 §4.1.5 setbacks: "
        f"station_min_distance_crowded_m = {s.station_min_distance_crowded_m:g} m from "
        f"{s.crowded_venue_categories} and station_min_distance_hazmat_m = "
        f"{s.station_min_distance_hazmat_m:g} m from {s.hazmat_categories}; "
        "choose sites farther away"
    )
    return ValidationError(msg)


def _coverage_of(source: CoverageEngine | CoverageResult | Scene) -> CoverageResult:
    if isinstance(source, CoverageEngine):
        return source.result
    if isinstance(source, Scene):
        return compute_coverage(source)
    return source


def build_problem(
    source: CoverageEngine | CoverageResult | Scene,
    candidates: pd.DataFrame | None = None,
    layer: str = "micro_station",
    max_candidates: int = 500,
    towns: Sequence[str] | None = None,
) -> SitingProblem:
    """Demand cells (uncovered built-up res-10 cells; of ``towns`` only when given), candidates and
    the coverage matrix.

    Default candidates: the road node nearest to each demand cell's centre; when there are
    more than ``max_candidates``, the one of highest demand per res-8 parent cell first,
    then by weight. Given ``candidates`` (lon, lat) are snapped; those too far from the
    roads are dropped (an error when none is left). Candidates within the GB 51080
    setbacks (``within_setbacks``) are dropped too; given candidates that all are raise.
    """
    result = _coverage_of(source)
    scene = result.scene
    if scene is None:
        raise ValidationError(
            "the coverage result has no scene; compute it with compute_coverage(scene)"
        )
    turnout, target = layer_timing(layer, scene.settings)
    reach_s = target - turnout
    cells = result.cells
    wanted = (cells["res"] == AREA_RES) & cells["built_up"] & ~cells["covered"]
    if towns is not None:  # a town user's scope: demand (and so default candidates) in their towns
        wanted &= cells["town"].isin(list(towns)) if "town" in cells else False
    demand = cells[wanted].reset_index(drop=True)
    if candidates is None:
        cand = demand[demand["node"] >= 0] if scene.mode == "network" else demand
        cand = cand.assign(parent=h3index.parent_cells(cand["cell"].to_numpy(np.uint64), 8))
        cand = cand.sort_values("weight", ascending=False)
        key = "node" if scene.mode == "network" else "cell"
        cand = cand.drop_duplicates(key)
        if len(cand) > max_candidates:
            top = cand.drop_duplicates("parent")
            rest = cand.drop(top.index)
            cand = pd.concat([top, rest]).head(max_candidates)
        cand = cand[["lon", "lat", "node", "x", "y"]].reset_index(drop=True)
        if scene.mode == "network":
            g = scene.graph
            nodes = cand["node"].to_numpy(np.int64)
            cand["lon"], cand["lat"], cand["x"], cand["y"] = (
                g.lon[nodes],
                g.lat[nodes],
                g.x[nodes],
                g.y[nodes],
            )
    else:
        cand = candidates.reset_index(drop=True)[["lon", "lat"]].copy()
        cand["x"], cand["y"] = scene.project(cand["lon"].to_numpy(), cand["lat"].to_numpy())
        cand["node"] = -1
        if scene.mode == "network":
            snap = scene.graph.snap(
                cand["lon"].to_numpy(), cand["lat"].to_numpy(), scene.settings.snap_distance_m
            )
            cand["node"] = snap.node
            cand = cand[snap.ok].reset_index(drop=True)
            if len(cand) == 0:
                raise NetworkError(
                    f"none of the {len(snap.ok)} candidate sites is within "
                    f"{scene.settings.snap_distance_m:.0f} m of a road"
                )
    near = within_setbacks(scene, cand["x"].to_numpy(), cand["y"].to_numpy())
    if candidates is not None and len(cand) and near.all():
        raise _setback_error(scene, len(cand))
    cand = cand[~near].reset_index(drop=True)
    excluded = int(near.sum())
    m = len(cand)
    rows, cols = [], []
    if scene.mode == "network" and m and len(demand):
        cover = cover_matrix(
            scene.graph.seconds,
            cand["node"].to_numpy(np.int64),
            demand["node"].to_numpy(np.int64),
            reach_s,
        )
        return SitingProblem(demand, cand, cover, scene.mode, layer, excluded)
    if m and len(demand):
        tree = cKDTree(np.column_stack([demand["x"].to_numpy(), demand["y"].to_numpy()]))
        radius = reach_s * scene.settings.radius_mode_speed_kmh / 3.6
        lists = tree.query_ball_point(
            np.column_stack([cand["x"].to_numpy(), cand["y"].to_numpy()]), r=radius
        )
        lengths = np.fromiter((len(x) for x in lists), dtype=np.int64, count=m)
        rows.append(
            np.concatenate([np.asarray(x, dtype=np.int64) for x in lists])
            if lengths.sum()
            else np.zeros(0, np.int64)
        )
        cols.append(np.repeat(np.arange(m), lengths))
    r = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    cover = sp.csr_array((np.ones(len(r), dtype=np.float64), (r, c)), shape=(len(demand), m))
    return SitingProblem(demand, cand, cover, scene.mode, layer, excluded)


def cover_matrix(
    seconds: sp.csr_array, cand_nodes: np.ndarray, demand_nodes: np.ndarray, reach_s: float
) -> sp.csr_array:
    """Demand × candidates matrix: 1 where a candidate reaches the demand node within ``reach_s``.

    Bounded Dijkstra (``limit=reach_s``) from candidates in batches; demand node −1 is never reached.
    """
    dn = np.asarray(demand_nodes, dtype=np.int64)
    cn = np.asarray(cand_nodes, dtype=np.int64)
    ok = dn >= 0
    dpos = np.nonzero(ok)[0]
    rows, cols = [], []
    for a in range(0, len(cn), BATCH):
        dist = np.atleast_2d(dijkstra(seconds, indices=cn[a : a + BATCH], limit=reach_s))
        cj, di = np.nonzero(dist[:, dn[ok]] <= reach_s)
        rows.append(dpos[di])
        cols.append(cj + a)
    r = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    return sp.csr_array((np.ones(len(r)), (r, c)), shape=(len(dn), len(cn)))


def _picks_frame(problem: SitingProblem, picks: np.ndarray) -> pd.DataFrame:
    """Rank, place and marginal gain of each pick in order."""
    w = problem.demand["weight"].to_numpy(np.float64)
    area = problem.demand["area_km2"].to_numpy(np.float64)
    total = float(w.sum())
    by_cand = sp.csr_array(problem.cover.T)
    done = np.zeros(len(w), dtype=bool)
    rows = []
    cum = 0.0
    for rank, j in enumerate(picks, start=1):
        hit = by_cand[[int(j)]].indices
        new = hit[~done[hit]]
        done[new] = True
        gain = float(w[new].sum())
        cum += gain
        rows.append(
            {
                "rank": rank,
                "node": int(problem.candidates.at[int(j), "node"]),
                "lon": float(problem.candidates.at[int(j), "lon"]),
                "lat": float(problem.candidates.at[int(j), "lat"]),
                "gain_weight": round(gain, 3),
                "gain_cells": int(len(new)),
                "gain_km2": round(float(area[new].sum()), 4),
                "cumulative_weight": round(cum, 3),
                "cumulative_share": round(cum / total, 4) if total else None,
            }
        )
    cols = [
        "rank",
        "node",
        "lon",
        "lat",
        "gain_weight",
        "gain_cells",
        "gain_km2",
        "cumulative_weight",
        "cumulative_share",
    ]
    return pd.DataFrame(rows, columns=cols)


def suggest_sites(
    source: CoverageEngine | CoverageResult | Scene,
    k: int,
    candidates: pd.DataFrame | None = None,
    layer: str = "micro_station",
    exact: bool = False,
    max_candidates: int = 500,
    time_limit_s: float | None = None,
    towns: Sequence[str] | None = None,
) -> SitingResult:
    """Greedy maximal covering (Church & ReVelle 1974): k new sites and the gain of each.

    With ``exact`` the exact MCLP (HiGHS) is solved too and ``gap`` says how far greedy is
    from the optimum. ``towns``: the demand of those towns only (``build_problem``).
    """
    if k < 1:
        raise ValidationError(f"k must be at least 1, got {k}")
    problem = build_problem(source, candidates, layer, max_candidates, towns=towns)
    w = problem.demand["weight"].to_numpy(np.float64)
    t0 = time.perf_counter()
    picks, gains = greedy_mclp(problem.cover, w, k)
    took = time.perf_counter() - t0
    frame = _picks_frame(problem, picks)
    out: dict[str, Any] = {}
    if exact:
        limit = (
            time_limit_s
            if time_limit_s is not None
            else _coverage_of(source).settings.siting_exact_time_limit_s
        )
        xp, obj, _ = exact_mclp(problem.cover, w, k, limit)
        out = {
            "exact_objective": round(obj, 6),
            "exact_picks": _picks_frame(problem, xp),
            "gap": round((obj - float(gains.sum())) / obj, 6) if obj > 0 else 0.0,
        }
    return SitingResult(
        "greedy",
        problem.mode,
        layer,
        int(k),
        frame,
        float(gains.sum()),
        float(w.sum()),
        len(w),
        len(problem.candidates),
        took,
        **out,
        excluded_candidates=problem.excluded,
    )


def exact_sites(
    source: CoverageEngine | CoverageResult | Scene,
    k: int,
    candidates: pd.DataFrame | None = None,
    layer: str = "micro_station",
    max_candidates: int = 500,
    time_limit_s: float | None = None,
) -> SitingResult:
    """Exact maximal covering with ``scipy.optimize.milp`` (HiGHS), with the greedy gap."""
    problem = build_problem(source, candidates, layer, max_candidates)
    w = problem.demand["weight"].to_numpy(np.float64)
    limit = (
        time_limit_s
        if time_limit_s is not None
        else _coverage_of(source).settings.siting_exact_time_limit_s
    )
    t0 = time.perf_counter()
    xp, obj, _ = exact_mclp(problem.cover, w, k, limit)
    took = time.perf_counter() - t0
    _, gains = greedy_mclp(problem.cover, w, k)
    gap = (obj - float(gains.sum())) / obj if obj > 0 else 0.0
    return SitingResult(
        "exact",
        problem.mode,
        layer,
        int(k),
        _picks_frame(problem, xp),
        obj,
        float(w.sum()),
        len(w),
        len(problem.candidates),
        took,
        exact_objective=obj,
        gap=round(gap, 6),
        excluded_candidates=problem.excluded,
    )
