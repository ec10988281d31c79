"""Gi* hotspots: equal to esda on the same weights, ArcGIS bins, BH correction, study areas."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import esda
import h3
import libpysal
import numpy as np
import pandas as pd
import pytest
from analytics_fixture import add_hazards, build_fixture, cluster_rows, random_counts, ring_points

from geo import store
from geo.aggregate import Filter
from geo.errors import ValidationError
from geo.hotspots import (
    bh_adjust,
    confidence_bins,
    gi_star,
    hotspots,
    k_ring_weights,
    study_cells,
    summary,
)
from geo.settings import Settings


def _patch(k_rings: int, res: int = 8) -> np.ndarray:
    centre = h3.latlng_to_cell(31.0, 121.2, res)
    return np.array(sorted(h3.str_to_int(c) for c in h3.grid_disk(centre, k_rings)), dtype=np.uint64)


def _libpysal_w(cells: np.ndarray, k: int) -> libpysal.weights.W:
    """A libpysal W built from h3's own k-ring lists (no diagonal: esda adds it for Gi*)."""
    index = {int(c): i for i, c in enumerate(cells)}
    neighbours = {}
    for i, c in enumerate(cells):
        ring = (h3.str_to_int(x) for x in h3.grid_disk(h3.int_to_str(int(c)), k))
        neighbours[i] = sorted(index[r] for r in ring if r in index and r != int(c))
    return libpysal.weights.W(neighbours, silence_warnings=True)


@pytest.mark.parametrize("k", [1, 2])
def test_z_scores_equal_esda_g_local_star(k: int):
    cells = _patch(20)  # 1,261 cells; the outer ring has fewer neighbours
    y = random_counts(len(cells), seed=k)
    y[:40] += 9  # a cluster so that some cells are significant
    ours = gi_star(cells, y, k=k)
    ref = esda.G_Local(y, _libpysal_w(cells, k), transform="B", star=True, permutations=0)
    assert np.abs(ours["z"].to_numpy() - ref.Zs).max() < 1e-6
    # esda's p_norm is one-sided; ArcGIS's GiPValue (ours) is two-sided
    assert np.abs(ours["p"].to_numpy() - 2 * ref.p_norm).max() < 1e-9
    assert (ours["bin"] > 0).any() and (ours["bin"] < 0).any()


def test_k_ring_weights_drop_cells_outside_the_study_area():
    cells = _patch(3)
    w1 = k_ring_weights(cells, 1)
    counts = np.diff(w1.indptr)
    assert counts.max() == 7 and counts.min() == 4  # interior: self + 6; a corner of the patch: self + 3
    assert (w1.diagonal() == 1).all() and (w1 != w1.T).nnz == 0
    w2 = k_ring_weights(cells, 2, star=False)
    assert np.diff(w2.indptr).max() == 18 and (w2.diagonal() == 0).all()
    with pytest.raises(ValidationError, match="distinct"):
        k_ring_weights(np.concatenate([cells, cells[:1]]), 1)


def test_benjamini_hochberg_by_hand():
    p = np.array([0.01, 0.04, 0.03, 0.20])
    # sorted 0.01, 0.03, 0.04, 0.20 → ×4/rank: 0.04, 0.06, 0.0533, 0.20 → running min from the top
    assert bh_adjust(p) == pytest.approx([0.04, 0.05333333, 0.05333333, 0.20])
    assert bh_adjust(np.array([0.5, 0.9])) == pytest.approx([0.9, 0.9])


def test_bins_follow_arcgis_confidence_levels():
    z = np.array([3.0, -2.2, 1.7, 0.5, -2.7])
    p = 2 * np.array([0.00135, 0.0139, 0.0446, 0.3085, 0.00347])  # two-sided p of those z
    assert confidence_bins(z, p, [0.90, 0.95, 0.99]).tolist() == [3, -2, 1, 0, -3]


def test_gi_star_by_hand_on_three_cells():
    # Three cells in a row a-b-c (b touches both). x = (1, 2, 6), n = 3, x̄ = 3, S = √(41/3 − 9) = √(14/3).
    a = h3.latlng_to_cell(31.0, 121.2, 8)
    b = sorted(h3.grid_ring(a, 1))[0]
    c = next(x for x in sorted(h3.grid_ring(b, 1)) if x != a and h3.grid_distance(a, x) == 2)
    cells = np.array([h3.str_to_int(x) for x in (a, b, c)], dtype=np.uint64)
    out = gi_star(cells, np.array([1.0, 2.0, 6.0]), k=1)
    s = math.sqrt(14 / 3)
    # cell c: neighbours {b, c}: Σw x = 8, Σw = 2 → (8 − 6) / (S √((3·2 − 4)/2))
    assert out["z"].iloc[2] == pytest.approx(2 / (s * 1.0))
    # cell b: all three cells → n·Σw − (Σw)² = 0: undefined, reported as 0
    assert out["z"].iloc[1] == 0.0
    assert out["n_neighbours"].tolist() == [2, 3, 2]


@pytest.fixture(scope="module")
def cluster_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = build_fixture(tmp_path_factory.mktemp("hot") / "fx.duckdb")
    pts = ring_points(121.215, 31.005, 8, per_cell=6)  # 42 hazards on a res-8 cell and its 6 neighbours
    add_hazards(path, cluster_rows("C", "G2", ["2025-03-15 10:00"] * len(pts)), pts)
    return path


def test_hotspots_over_the_district_find_the_cluster(cluster_db: Path):
    con = store.connect(cluster_db)
    result = hotspots(con, res=8, k=1)
    assert result.study_area == "admin_area"
    table = result.table
    district_cells, _ = study_cells(con, 8)
    assert set(district_cells.tolist()) <= set(table["cell"].tolist())  # zero cells take part
    assert (table["count"] == 0).sum() > len(table) / 2
    assert result.total == 11 + 42 == table["count"].sum()
    centre = h3.latlng_to_cell(31.005, 121.215, 8)
    row = table.set_index("h3").loc[centre]
    assert row["bin_fdr"] == 3 and row["significant"] and row["z"] > 3
    assert summary(table)["hot_99"] >= 1 and sum(summary(table).values()) == len(table)
    # the same counts through gi_star give the same z
    again = gi_star(table["cell"].to_numpy(), table["count"].to_numpy(), k=1)
    assert np.allclose(again["z"], table["z"])
    assert table[["lon", "lat"]].notna().all().all()


def test_hotspot_filters_and_study_area_of_a_town(cluster_db: Path):
    con = store.connect(cluster_db)
    major = hotspots(con, Filter(severity=("重大",)), res=9, k=1)
    assert major.total == 3  # H3, H6, H9
    town = hotspots(con, Filter(towns=("乙镇",)), res=9, k=1)
    assert town.study_area == "grid"
    g4_cells = {h3.str_to_int(c) for c in h3.h3shape_to_cells(h3.LatLngPoly(
        [(31.0, 121.23), (31.0, 121.24), (31.01, 121.24), (31.01, 121.23)]), 9)}
    assert set(town.table["cell"].tolist()) == g4_cells  # G4's cover (its hazards lie inside it)
    assert town.total == 4


def test_without_polygons_the_study_area_is_the_k_ring_hull(tmp_path: Path, cluster_db: Path):
    path = tmp_path / "bare.duckdb"
    shutil.copyfile(cluster_db, path)
    with store.writer(path) as con:
        for table in ("admin_area", "admin_area_h3cover", "grid", "grid_h3cover"):
            con.execute(f"DELETE FROM {table}")
    con = store.connect(path)
    result = hotspots(con, res=8, k=1, settings=Settings(hotspot_fdr_alpha=0.01))
    assert result.study_area == "k_ring_hull"
    counted = set(store.query(con, "SELECT DISTINCT h3_r8 FROM hazard")["h3_r8"].tolist())
    hull = {h3.str_to_int(n) for c in counted for n in h3.grid_disk(h3.int_to_str(c), 1)}
    assert set(result.table["cell"].tolist()) == hull


def test_study_area_kept_per_snapshot_counts_taken_anew(tmp_path: Path, cluster_db: Path):
    """The study area and its weights are reused on one snapshot; counts never are."""
    path = tmp_path / "fx.duckdb"
    shutil.copyfile(cluster_db, path)
    con = store.connect(path)
    first = hotspots(con, res=8, k=1)
    with store.writer(path) as w:  # a writer's connection is no snapshot: everything is built for the call
        pd.testing.assert_frame_equal(hotspots(w, res=8, k=1).table, first.table)
        assert hotspots(w, Filter(towns=("乙镇",)), res=9, k=1).total == 4
    # a hazard outside the district joins the study area of that call only
    add_hazards(path, cluster_rows("X", "G1", ["2025-03-16 10:00"]), [(121.5, 31.3)])
    con2 = store.connect(path)
    outside = hotspots(con2, res=8, k=1)
    assert outside.n_cells == first.n_cells + 1 and outside.total == first.total + 1
    pd.testing.assert_frame_equal(hotspots(con2, res=8, k=1).table, outside.table)
    # the old snapshot still reads its own hazards
    pd.testing.assert_frame_equal(hotspots(con, res=8, k=1).table, first.table)
    # a filter counts anew on the cached area: only the cluster's day
    day = hotspots(con2, Filter(start="2025-03-15", end="2025-03-16"), res=8, k=1)
    assert day.total == 42 and day.n_cells == first.n_cells
