"""Mann-Kendall, emerging hot spot categories and monthly rate warnings."""

from __future__ import annotations

import math
from pathlib import Path

import h3
import numpy as np
import pytest
from analytics_fixture import AS_OF, add_hazards, build_fixture, cluster_rows, ring_points
from scipy import stats

from geo import store
from geo.aggregate import Filter
from geo.errors import ValidationError
from geo.settings import Settings
from geo.trends import (
    classify_emerging,
    emerging_hotspots,
    mann_kendall,
    monthly_cell_counts,
    rate_warnings,
)


def test_mann_kendall_by_hand():
    out = mann_kendall(np.array([[1, 2, 3, 4, 5], [5, 4, 3, 2, 1], [1, 1, 2, 2, 2], [3, 3, 3, 3, 3]]))
    # rising: S = 10, Var = 5·4·15/18 = 16.667, z = (10 − 1)/√16.667 = 2.2045, p = 0.0275
    assert out.loc[0, "s"] == 10 and out.loc[0, "var_s"] == pytest.approx(50 / 3)
    assert out.loc[0, "z"] == pytest.approx(9 / math.sqrt(50 / 3))
    assert out.loc[0, "p"] == pytest.approx(0.02749, abs=1e-5)
    assert out.loc[0, "tau"] == 1.0
    assert out.loc[1, "z"] == pytest.approx(-out.loc[0, "z"])
    # ties 1,1 | 2,2,2: S = 6 (the 2·3 pairs across groups); Var = (300 − 2·1·9 − 3·2·11)/18 = 12
    assert out.loc[2, "s"] == 6 and out.loc[2, "var_s"] == pytest.approx(12.0)
    assert out.loc[2, "z"] == pytest.approx(5 / math.sqrt(12))
    # constant: no variance, no trend
    assert out.loc[3, "z"] == 0 and out.loc[3, "p"] == 1


def test_mann_kendall_tau_and_s_agree_with_kendall_tau_on_random_series():
    x = np.random.default_rng(3).poisson(4, size=(50, 24)).astype(float)
    out = mann_kendall(x)
    t = np.arange(24)
    for i in range(0, 50, 7):
        res = stats.kendalltau(t, x[i])  # tau-b; with ties in x only: S / √(n0 (n0 − n2))
        _, counts = np.unique(x[i], return_counts=True)
        n0, n2 = 24 * 23 / 2, (counts * (counts - 1) / 2).sum()
        assert out.loc[i, "s"] == pytest.approx(res.statistic * math.sqrt(n0 * (n0 - n2)))


def test_categories_by_hand():
    hot = np.array([
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 1],  # new
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],  # intensifying (trend up)
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],  # persistent (no trend)
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],  # diminishing (trend down)
        [1, 0, 0, 1, 0, 0, 0, 0, 0, 1],  # sporadic
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 0],  # historical
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # nothing
        [1, 1, 1, 1, 1, 1, 1, 1, 0, 1],  # 9 of 10 months = the 90 % share: persistent
    ], dtype=bool)
    z = np.array([0, 3, 0, -3, 0, 0, 0, 0.5])
    p = np.array([1, 0.001, 0.5, 0.001, 1, 1, 1, 0.6])
    got = classify_emerging(hot, z, p, share=0.9, alpha=0.05).tolist()
    assert got == ["new", "intensifying", "persistent", "diminishing", "sporadic", "historical", "", "persistent"]


A_SPOT, B_SPOT, C_SPOT = (121.195, 31.005), (121.245, 31.005), (121.22, 31.005)


@pytest.fixture(scope="module")
def emerging_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Cluster A every month of 2024; cluster C January-November; cluster B December only.

    A's monthly z-score is then the same every month but November (H10 joins the map),
    so A is persistent; B is new; C is historical.
    """
    path = build_fixture(tmp_path_factory.mktemp("trend") / "fx.duckdb")
    a, b, c = (ring_points(lon, lat, 8, per_cell=3) for lon, lat in (A_SPOT, B_SPOT, C_SPOT))
    rows, pts = [], []
    for month in range(1, 13):
        rows += cluster_rows(f"A{month:02d}-", "G1", [f"2024-{month:02d}-10"] * len(a))
        pts += a
        other, name = (b, "B") if month == 12 else (c, "C")
        rows += cluster_rows(f"{name}{month:02d}-", "G3", [f"2024-{month:02d}-20"] * len(other))
        pts += other
    add_hazards(path, rows, pts)
    return path


def test_monthly_cell_counts_fill_empty_months(emerging_db: Path):
    con = store.connect(emerging_db)
    cells, months, counts = monthly_cell_counts(con, 8, Filter(start="2024-06-01", end="2025-03-01"))
    assert len(months) == 9 and str(months[0]) == "2024-06-01" and str(months[-1]) == "2025-02-01"
    assert counts.shape == (len(cells), 9)
    assert counts[:, 7:].sum() == 1 + 1  # H1 (Jan 2025) and H2 (Feb 2025)
    assert counts[:, 6].sum() == 21 + 21  # December: A and B
    assert counts[:, 5].sum() == 21 + 21 + 1  # November: A, C and H10
    assert counts[:, 0].sum() == 21 + 21


def test_emerging_hotspots_new_and_persistent(emerging_db: Path):
    con = store.connect(emerging_db)
    table = emerging_hotspots(con, Filter(start="2024-01-01", end="2025-01-01"), res=8, k=1).set_index("h3")
    a, b, c = (h3.latlng_to_cell(lat, lon, 8) for lon, lat in (A_SPOT, B_SPOT, C_SPOT))
    assert min(h3.grid_distance(a, c), h3.grid_distance(b, c)) >= 3  # the clusters' rings do not touch
    assert table.loc[a, "category"] == "persistent" and table.loc[a, "months_hot"] == 12
    assert table.loc[a, "category_zh"] == "持续热点"
    assert table.loc[b, "category"] == "new" and table.loc[b, "months_hot"] == 1
    assert table.loc[c, "category"] == "historical" and table.loc[c, "months_hot"] == 11
    assert table.loc[b, "total"] == 3 and table.loc[a, "total"] == 36
    far = h3.latlng_to_cell(31.018, 121.22, 8)  # no hazards nearby
    assert table.loc[far, "category"] == ""
    assert (table["months"] == 12).all()


def _binomial_tail(c: int, n: int, p0: float) -> float:
    return sum(math.comb(n, x) * p0**x * (1 - p0) ** (n - x) for x in range(c, n + 1))


def test_rate_warnings_by_hand(tmp_path: Path):
    path = build_fixture(tmp_path / "fx.duckdb")
    con = store.connect(path)
    p0 = 30 / 395  # 30-day period against the 365 days before it
    # current [05-31, 06-30): G2 H4; G4 H8, H9. Baseline [2024-05-31, 05-31): G1 H1 H2; G2 H3; G3 H5 H6; G4 H7 H10
    out = rate_warnings(con, as_of=AS_OF).set_index("area")
    assert out.loc["G4", ["current", "baseline"]].tolist() == [2, 2]
    assert out.loc["G4", "p"] == pytest.approx(_binomial_tail(2, 4, p0))
    assert out.loc["G4", "q"] == pytest.approx(_binomial_tail(2, 4, p0) * 4)  # smallest of 4 p-values
    assert out.loc["G4", "expected"] == pytest.approx(2 * 30 / 365)
    assert not out["warn"].any()
    con.close()
    # six more hazards in G2 inside the current period: 7 against 1 → warned
    add_hazards(path, cluster_rows("W", "G2", [f"2025-06-{d:02d}" for d in range(10, 16)]))
    con = store.connect(path)
    out = rate_warnings(con, as_of=AS_OF)
    assert out["area"].iloc[0] == "G2" and out["warn"].tolist() == [True, False, False, False]
    assert out["p"].iloc[0] == pytest.approx(_binomial_tail(7, 8, p0))
    assert out[["town", "community"]].iloc[0].tolist() == ["甲镇", "一村"]
    weekly = rate_warnings(con, as_of=AS_OF, settings=Settings(warning_period_days=7))
    assert not weekly["warn"].any()  # the six were 15-20 days ago: not this week
    by_town = rate_warnings(con, as_of=AS_OF, by="town").set_index("area")
    assert by_town.loc["甲镇", "current"] == 7 and by_town.loc["甲镇", "warn"]
    with pytest.raises(ValidationError, match="warning level"):
        rate_warnings(con, as_of=AS_OF, by="street")
