"""Trends per cell and rate warnings per grid.

- ``mann_kendall``: the Mann-Kendall trend test (Mann 1945; Kendall 1975), vectorised over
  many series, with the tie-corrected variance and the continuity correction.
- ``emerging_hotspots``: in the spirit of ArcGIS Emerging Hot Spot Analysis: one Gi* map per
  month over the study area, then Mann-Kendall on each cell's series of Gi* z-scores.
- ``rate_warnings``: grids whose hazard rate in the current period rose significantly
  above their baseline (conditional binomial test of two Poisson rates, Przyborowski &
  Wilenski 1940), with the Benjamini-Hochberg correction over the grids.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
from scipy import stats

from geo import h3index, store
from geo.aggregate import AREA_COLUMNS, Filter, TimeLike, cells_to_hex, time_field, to_timestamp
from geo.errors import ValidationError
from geo.hotspots import bh_adjust, gi_star_z, k_ring_weights, study_cells
from geo.settings import Settings

CATEGORY_ZH: dict[str, str] = {
    "new": "新增热点",
    "intensifying": "加剧热点",
    "persistent": "持续热点",
    "diminishing": "减弱热点",
    "sporadic": "零星热点",
    "historical": "历史热点",
    "": "",
}


def mann_kendall(x: np.ndarray) -> pd.DataFrame:
    """Mann-Kendall trend test of each row of ``x`` (series × time steps).

    S = Σ_{i<j} sign(x_j − x_i); Var(S) = [n(n−1)(2n+5) − Σ_t t(t−1)(2t+5)]/18 over the
    groups of tied values; z = (S − sign S)/√Var(S); p two-sided; tau = S / (n(n−1)/2).

    Returns
    -------
    DataFrame ``s, var_s, z, p, tau``, one row per series (z = 0, p = 1 when Var(S) = 0).
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    m, n = x.shape
    s = np.zeros(m)
    for lag in range(1, n):  # loop over time lags (n ≤ a few dozen), vectorised over series
        s += np.sign(x[:, lag:] - x[:, :-lag]).sum(axis=1)
    ties = np.zeros(m)
    if m and n:
        srt = np.sort(x, axis=1)
        start = np.ones((m, n), dtype=bool)
        start[:, 1:] = srt[:, 1:] != srt[:, :-1]
        run = np.cumsum(start.ravel()) - 1
        sizes = np.bincount(run).astype(np.float64)
        run_row = np.repeat(np.arange(m), n)[start.ravel()]
        ties = np.bincount(run_row, weights=sizes * (sizes - 1) * (2 * sizes + 5), minlength=m)
    var_s = (n * (n - 1) * (2 * n + 5) - ties) / 18.0
    z = np.zeros(m)
    ok = var_s > 0
    z[ok] = (s[ok] - np.sign(s[ok])) / np.sqrt(var_s[ok])
    p = 2.0 * stats.norm.sf(np.abs(z))
    pairs = n * (n - 1) / 2.0
    tau = s / pairs if pairs else np.zeros(m)
    return pd.DataFrame({"s": s, "var_s": var_s, "z": z, "p": p, "tau": tau})


def _month_range(first: datetime, last: datetime) -> np.ndarray:
    """First days of every month from ``first``'s month to ``last``'s month (datetime64[D])."""
    a = np.datetime64(first, "M")
    b = np.datetime64(last, "M")
    return np.arange(a, b + 1).astype("datetime64[D]")


def monthly_cell_counts(
    con: duckdb.DuckDBPyConnection,
    res: int,
    flt: Filter | None = None,
    layer: str = "hazard",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts per H3 cell and month as a dense matrix.

    Returns
    -------
    (cells uint64 sorted, months datetime64[D] first days, counts int64 ``len(cells) × len(months)``).
    Months span the filter window (else the data's first to last month), empty months included.
    """
    flt = flt or Filter()
    if res not in store.POINT_RESOLUTIONS:
        raise ValidationError(f"H3 resolution {res} is not stored; use one of {store.POINT_RESOLUTIONS}")
    col = h3index.cell_column(res)
    tcol = time_field(layer)
    where, params = flt.sql(layer)
    df = con.execute(
        f'SELECT "{col}" AS cell, CAST(date_trunc(\'month\', "{tcol}") AS DATE) AS month, count(*) AS n '
        f'FROM {layer} WHERE {where} AND "{col}" IS NOT NULL GROUP BY ALL',
        params,
    ).df()
    if flt.start is not None and flt.end is not None:
        months = _month_range(flt.start, flt.end - timedelta(microseconds=1))
    elif len(df):
        lo = flt.start or pd.Timestamp(df["month"].min()).to_pydatetime()
        hi = (flt.end - timedelta(microseconds=1)) if flt.end else pd.Timestamp(df["month"].max()).to_pydatetime()
        months = _month_range(lo, hi)
    else:
        months = np.array([], dtype="datetime64[D]")
    cells = np.unique(df["cell"].to_numpy(dtype=np.uint64))
    counts = np.zeros((len(cells), len(months)), dtype=np.int64)
    if len(df):
        r = np.searchsorted(cells, df["cell"].to_numpy(dtype=np.uint64))
        c = np.searchsorted(months, df["month"].to_numpy().astype("datetime64[D]"))
        np.add.at(counts, (r, c), df["n"].to_numpy(dtype=np.int64))
    return cells, months, counts


def classify_emerging(
    hot: np.ndarray, trend_z: np.ndarray, trend_p: np.ndarray, share: float, alpha: float
) -> np.ndarray:
    """Emerging hot spot category per cell from its monthly hot flags (cells × months) and trend.

    new: hot in the last month only; intensifying / persistent / diminishing: hot in at
    least ``share`` of the months including the last, with a significant rise / no
    significant trend / a significant fall of the Gi* z-scores; sporadic: hot in the last
    month and in some earlier months; historical: not hot in the last month, hot in at
    least ``share`` of the earlier months; "" otherwise.
    """
    m, t = hot.shape
    out = np.full(m, "", dtype=object)
    if t == 0:
        return out
    last = hot[:, -1]
    earlier = hot[:, :-1].sum(axis=1)
    n_hot = earlier + last
    mostly = n_hot >= share * t
    rising = (trend_p < alpha) & (trend_z > 0)
    falling = (trend_p < alpha) & (trend_z < 0)
    out[last & (earlier > 0)] = "sporadic"
    out[last & mostly] = "persistent"
    out[last & mostly & rising] = "intensifying"
    out[last & mostly & falling] = "diminishing"
    out[last & (earlier == 0)] = "new"
    if t > 1:
        out[~last & (earlier >= share * (t - 1))] = "historical"
    return out


def emerging_hotspots(
    con: duckdb.DuckDBPyConnection,
    flt: Filter | None = None,
    res: int | None = None,
    k: int | None = None,
    settings: Settings | None = None,
    layer: str = "hazard",
) -> pd.DataFrame:
    """Emerging hot spot category of each cell of the study area from monthly counts.

    Each month gets a Gi* map (same study area and k-ring weights as ``hotspots``); a cell
    is hot in a month when its z > 0 and the month's BH-adjusted p < 1 − ``trend_hot_confidence``.
    Mann-Kendall on the cell's monthly z-scores gives the trend (``trend_alpha``). See
    ``classify_emerging`` for the categories.

    Returns
    -------
    DataFrame ``cell, h3, total, months, months_hot, hot_last, z_last, trend_z, trend_p,
    category, category_zh`` for every study cell, categorised cells first.
    """
    settings = settings or Settings()
    flt = flt or Filter()
    res = settings.hotspot_resolution if res is None else res
    k = settings.hotspot_k_ring if k is None else k
    counted, months, counts = monthly_cell_counts(con, res, flt, layer)
    area, _ = study_cells(con, res, flt, layer, k)
    cells = np.union1d(area, counted)
    matrix = np.zeros((len(cells), len(months)))
    matrix[np.searchsorted(cells, counted)] = counts
    weights = k_ring_weights(cells, k, star=True)
    z = gi_star_z(matrix, weights)
    p = 2.0 * stats.norm.sf(np.abs(z))
    q = np.column_stack([bh_adjust(p[:, j]) for j in range(p.shape[1])]) if p.shape[1] else p
    hot = (z > 0) & (q < 1.0 - settings.trend_hot_confidence)
    mk = mann_kendall(z) if len(months) else pd.DataFrame({"z": np.zeros(len(cells)), "p": np.ones(len(cells))})
    trend_z, trend_p = mk["z"].to_numpy(), mk["p"].to_numpy()
    category = classify_emerging(hot, trend_z, trend_p, settings.trend_hot_share, settings.trend_alpha)
    table = pd.DataFrame({
        "cell": cells,
        "h3": cells_to_hex(cells),
        "total": matrix.sum(axis=1).astype(np.int64),
        "months": len(months),
        "months_hot": hot.sum(axis=1).astype(np.int64),
        "hot_last": hot[:, -1] if len(months) else np.zeros(len(cells), dtype=bool),
        "z_last": z[:, -1] if len(months) else np.zeros(len(cells)),
        "trend_z": trend_z,
        "trend_p": trend_p,
        "category": category,
    })
    table["category_zh"] = table["category"].map(CATEGORY_ZH)
    table["_order"] = table["category"] == ""
    return table.sort_values(["_order", "months_hot", "total"], ascending=[True, False, False],
                             ignore_index=True).drop(columns="_order")


def rate_warnings(
    con: duckdb.DuckDBPyConnection,
    as_of: TimeLike = None,
    flt: Filter | None = None,
    settings: Settings | None = None,
    by: str = "grid",
    layer: str = "hazard",
) -> pd.DataFrame:
    """Areas whose hazard rate in the current period rose significantly above their baseline.

    Current period: ``[as_of − warning_period_days, as_of)``; baseline: the
    ``warning_baseline_days`` before it. Given n = current + baseline hazards of an area,
    equal rates make current ~ Binomial(n, period / (period + baseline)); p = P(X ≥ current)
    (one-sided), q = BH over the areas, warn = q < ``warning_alpha`` and current ≥
    ``warning_min_count``. The filter's time window is ignored (the periods set it).

    Returns
    -------
    DataFrame ``area, town, community, current, baseline, expected, ratio, p, q, warn``:
    warned areas first, then by p.
    """
    settings = settings or Settings()
    flt = flt or Filter()
    if by not in AREA_COLUMNS:
        raise ValidationError(f"warning level {by!r} unknown; use one of {list(AREA_COLUMNS)}")
    end = to_timestamp(as_of, "as_of") or datetime.now()
    period, base = settings.warning_period_days, settings.warning_baseline_days
    if period <= 0 or base <= 0:
        raise ValidationError(f"warning_period_days ({period}) and warning_baseline_days ({base}) must be > 0")
    cur_start = end - timedelta(days=period)
    base_start = cur_start - timedelta(days=base)
    col, tcol = AREA_COLUMNS[by], time_field(layer)
    where, params = flt.sql(layer, time=False)
    sql = f"""
        SELECT "{col}" AS area, any_value(town) AS town, any_value(community) AS community,
               count(*) FILTER (WHERE "{tcol}" >= ?) AS current,
               count(*) FILTER (WHERE "{tcol}" < ?) AS baseline
        FROM {layer}
        WHERE "{tcol}" >= ? AND "{tcol}" < ? AND "{col}" IS NOT NULL AND {where}
        GROUP BY "{col}"
    """
    df = con.execute(sql, [cur_start, cur_start, base_start, end, *params]).df()
    if by == "town":
        df["community"] = None
    current = df["current"].to_numpy(dtype=np.int64)
    baseline = df["baseline"].to_numpy(dtype=np.int64)
    share = period / (period + base)
    p = stats.binom.sf(current - 1, current + baseline, share)
    p = np.where(current == 0, 1.0, p)
    df["current"], df["baseline"] = current, baseline
    df["expected"] = baseline * period / base
    df["ratio"] = np.divide(current, df["expected"].to_numpy(), out=np.full(len(df), np.inf),
                            where=df["expected"].to_numpy() > 0)
    df["p"] = p
    df["q"] = bh_adjust(p)
    df["warn"] = (df["q"] < settings.warning_alpha) & (df["current"] >= settings.warning_min_count)
    df["_nw"] = ~df["warn"]
    return df.sort_values(["_nw", "p", "area"], ignore_index=True).drop(columns="_nw")
