"""Benchmark: measured response performance over 500k incidents, onemap (DuckDB) vs pandas.

Builds (once, cached) a database with 68 responders (8 fire stations, 60 micro stations) and
N synthetic calls over two years: turnout and travel drawn log-normally (micro stations
faster than stations), 3 % of calls with only ``response_s`` (a file without times), 2 % never
attended, units named by id or by name, 1 % by a name no responder has, a second unit on a
third of the calls.

Timed, alternating so machine load hits both (p50/p95 of ``--repeat`` runs each):

- **onemap cold** (``--cold`` runs, before the others): the first call on a snapshot, with
  ``geo.response``'s per-snapshot cache emptied: reads every call, matches the first-due units,
  sorts the times (month and district orders), then answers as warm;
- **onemap warm**: ``geo.response.response_performance(con, by="month")`` — all units, by
  month, the calls already cached for the snapshot: nearest-rank p50/p90 of turnout, travel and
  total, shares meeting the targets, the district row, the worst calls, unmatched units; and
  the same over the last 365 days (a filter: DuckDB selects the row ids; printed for context);
- **pandas, groupby-quantile**: the same rows held in memory with turnout, travel and total
  already computed (not timed); ``groupby(month)[measures].quantile([0.5, 0.9],
  interpolation="lower")`` plus the district's quantiles — the brief's baseline;
- **pandas, whole computation**: the same figures from the raw columns in pandas (times,
  first unit by splitting and a dict lookup, quantiles, shares, district, worst calls);
  printed for context.

Target: onemap p95 ≤ 1/3 of the pandas groupby-quantile p95, in one run. The verdict uses the
**warm** p95 (a server answers from the snapshot's cache after its first call); cold is printed
beside it.

    .venv/bin/python bench/response.py [--n 500000] [--db PATH] [--rebuild] [--repeat 15] [--cold 3]

At the end it runs ``bench/calibrate.py``'s ``main`` when that file exists (helper C's
calibration benchmark), else says so.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geo import response, store  # noqa: E402
from geo.aggregate import Filter  # noqa: E402
from geo.response import response_performance  # noqa: E402
from geo.settings import Settings  # noqa: E402

DEFAULT_DB = Path("/tmp/onemap_bench_response.duckdb")
TOWNS = [f"第{i}街道" for i in range(1, 13)]
N_STATIONS, N_MICRO = 8, 60
MEASURES = ["turnout_s", "travel_s", "total_s"]


# --------------------------------------------------------------------------- data


def _responders(rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    def frame(prefix: str, n: int, name: str, kind: str, status: str) -> pd.DataFrame:
        return pd.DataFrame({
            "id": [f"{prefix}{i:03d}" for i in range(n)], "name": [f"{name}{i:03d}" for i in range(n)],
            "kind": kind, "status": status, "town": rng.choice(TOWNS, n),
            "lon": 121.2 + rng.random(n) * 0.2, "lat": 31.0 + rng.random(n) * 0.15,
        })

    return frame("FS", N_STATIONS, "消防救援站", "消防救援站", "在役"), frame("WZ", N_MICRO, "微型消防站", "社区", "在用")


def build(path: Path, n: int, seed: int = 15) -> None:
    """``n`` synthetic calls and the responders they name, in a fresh database at ``path``."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    stations, micro = _responders(rng)
    end = pd.Timestamp(datetime.now().date())
    call = end - pd.to_timedelta(np.sort(rng.integers(0, 730 * 86400, n))[::-1], unit="s")
    by_station = rng.random(n) < 0.35
    first = np.where(by_station, rng.integers(0, N_STATIONS, n), rng.integers(0, N_MICRO, n))
    ids = np.where(by_station, np.char.add("FS", np.char.zfill(first.astype(str), 3)),
                   np.char.add("WZ", np.char.zfill(first.astype(str), 3))).astype(object)
    names = np.where(by_station, np.char.add("消防救援站", np.char.zfill(first.astype(str), 3)),
                     np.char.add("微型消防站", np.char.zfill(first.astype(str), 3))).astype(object)
    text = np.where(rng.random(n) < 0.7, ids, names)
    text = np.where(rng.random(n) < 0.01, "不存在的队站", text)
    second = np.char.add("WZ", np.char.zfill(rng.integers(0, N_MICRO, n).astype(str), 3)).astype(object)
    units = np.where(rng.random(n) < 0.33, text + "；" + second, text)
    turnout = np.round(rng.lognormal(np.log(np.where(by_station, 55, 40)), 0.35))
    travel = np.round(rng.lognormal(np.log(np.where(by_station, 230, 110)), 0.45))
    legacy = rng.random(n) < 0.03
    attended = rng.random(n) > 0.02
    rolling = call + pd.to_timedelta(turnout, unit="s")
    arrival = rolling + pd.to_timedelta(travel, unit="s")
    calls = pd.DataFrame({
        "id": np.char.add("C", np.arange(n).astype(str)), "kind": "火灾", "source": "119接警",
        "reported_at": call, "dispatched_at": pd.Series(rolling).where(~legacy & attended),
        "arrived_at": pd.Series(arrival).where(~legacy & attended), "units": units,
        "response_s": np.where(legacy & attended, turnout + travel, np.nan), "status": "已处置",
        "town": rng.choice(TOWNS, n), "lon": 121.2 + rng.random(n) * 0.2, "lat": 31.0 + rng.random(n) * 0.15,
    })
    with store.writer(path, fresh=True) as con:
        store.write_layer(con, "fire_station", stations)
        store.write_layer(con, "micro_station", micro)
        store.write_layer(con, "incident", calls)
    print(f"  {n:,} calls, {N_STATIONS + N_MICRO} responders in {time.perf_counter() - t0:.0f} s", flush=True)


# --------------------------------------------------------------------------- pandas


def pandas_rows(path: Path) -> pd.DataFrame:
    """The calls in memory, as pandas would hold them (not timed)."""
    con = store.connect(path)
    try:
        return con.execute("SELECT id, reported_at, dispatched_at, arrived_at, response_s, units, town "
                           "FROM incident").df()
    finally:
        con.close()


def with_measures(df: pd.DataFrame) -> pd.DataFrame:
    """turnout, travel, total (s) and month of each call."""
    out = pd.DataFrame({"month": df["reported_at"].dt.to_period("M")})
    out["turnout_s"] = (df["dispatched_at"] - df["reported_at"]).dt.total_seconds()
    out["travel_s"] = (df["arrived_at"] - df["dispatched_at"]).dt.total_seconds()
    out["total_s"] = (df["arrived_at"] - df["reported_at"]).dt.total_seconds().fillna(df["response_s"])
    return out


def pandas_groupby_quantile(rows: pd.DataFrame) -> pd.DataFrame:
    """The brief's baseline: the same groupby-quantile on the same rows (measures precomputed)."""
    by_month = rows.groupby("month")[MEASURES].quantile([0.5, 0.9], interpolation="lower")
    district = rows[MEASURES].quantile([0.5, 0.9], interpolation="lower")
    return pd.concat([by_month, district.assign(month=None).set_index("month", append=True)])


def pandas_whole(df: pd.DataFrame, responders: dict[str, tuple[str, float, float]]) -> tuple[pd.DataFrame, ...]:
    """The whole computation in pandas: times, first-due unit, quantiles, shares, district, worst."""
    rows = with_measures(df)
    first = df["units"].str.split(r"\s*[;；、，,/／]\s*", n=1, regex=True).str[0].str.strip()
    rows["turnout_target"] = first.map({k: v[1] for k, v in responders.items()})
    rows["scene_target"] = first.map({k: v[2] for k, v in responders.items()})
    rows["turnout_met"] = (rows["turnout_s"] <= rows["turnout_target"]).where(
        rows["turnout_s"].notna() & rows["turnout_target"].notna())
    rows["scene_met"] = (rows["total_s"] <= rows["scene_target"]).where(
        rows["total_s"].notna() & rows["scene_target"].notna())
    g = rows.groupby("month")
    out = g[MEASURES].quantile([0.5, 0.9], interpolation="lower").unstack()
    shares = g[["turnout_met", "scene_met"]].mean()
    district = rows[MEASURES].quantile([0.5, 0.9], interpolation="lower")
    return out, shares, district, rows.nlargest(10, "total_s")


# --------------------------------------------------------------------------- timing


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def p(values: list[float], q: int) -> float:
    """Nearest-rank percentile (the definition geo.response states)."""
    ordered = sorted(values)
    return ordered[max(1, -(-q * len(ordered) // 100)) - 1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500_000)
    ap.add_argument("--db", type=Path, default=DEFAULT_DB)
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--cold", type=int, default=3, help="cold runs (cache emptied before each)")
    ap.add_argument("--no-calibrate", action="store_true", help="skip bench/calibrate.py at the end")
    args = ap.parse_args(argv)
    if args.rebuild or not args.db.exists():
        print(f"building {args.db} ...", flush=True)
        build(args.db, args.n)
    settings = Settings()
    df = pandas_rows(args.db)
    rows = with_measures(df)
    con = store.connect(args.db)
    responders = {}
    for layer, table in (("fire_station", "fire_station"), ("micro_station", "micro_station")):
        from geo.coverage_inputs import layer_timing
        turnout, scene = layer_timing(layer, settings)
        for rid, name in con.execute(f"SELECT id, name FROM {table}").fetchall():
            responders[rid] = responders[name] = (layer, turnout, scene)
    cold = []
    for _ in range(max(args.cold, 1)):
        response._CALLS.clear()  # the first call on a snapshot: reads and sorts every call
        cold.append(timed(lambda: response_performance(con, by="month", settings=settings)))
    result = response_performance(con, by="month", settings=settings)  # the check below
    year = Filter.last_days(365)
    runs: dict[str, list[float]] = {"onemap warm": [], "onemap warm, last 365 days": [],
                                    "pandas groupby-quantile": [], "pandas whole": []}
    for _ in range(args.repeat):
        runs["onemap warm"].append(timed(lambda: response_performance(con, by="month", settings=settings)))
        runs["onemap warm, last 365 days"].append(
            timed(lambda: response_performance(con, by="month", flt=year, settings=settings)))
        runs["pandas groupby-quantile"].append(timed(lambda: pandas_groupby_quantile(rows)))
        runs["pandas whole"].append(timed(lambda: pandas_whole(df, responders)))
    con.close()
    check_p90 = float(rows["total_s"].quantile(0.9, interpolation="lower"))
    print(f"\nresponse figures, {len(df):,} calls, {len(result.table)} months, all units "
          f"(district p90 total: onemap {result.district['total_p90_s']:.0f} s, pandas 'lower' {check_p90:.0f} s)")
    print(f"{'':28}{'p50 ms':>10}{'p95 ms':>10}")
    print(f"{f'onemap cold ({len(cold)} runs)':28}{1000 * p(cold, 50):>10.0f}{1000 * p(cold, 95):>10.0f}")
    for name, values in runs.items():
        print(f"{name:28}{1000 * p(values, 50):>10.0f}{1000 * p(values, 95):>10.0f}")
    base = p(runs["pandas groupby-quantile"], 95)
    ratio = p(runs["onemap warm"], 95) / base
    verdict = "PASS" if ratio <= 1 / 3 else "FAIL"
    print(f"verdict on WARM p95: onemap warm p95 / pandas groupby-quantile p95 = {ratio:.3f} "
          f"(target ≤ 0.333): {verdict}")
    print(f"onemap cold p95 / pandas groupby-quantile p95 = {p(cold, 95) / base:.3f} "
          "(context: first call on a snapshot)")
    print(f"onemap warm p95 / pandas whole computation p95 = "
          f"{p(runs['onemap warm'], 95) / p(runs['pandas whole'], 95):.3f} (context)")
    if not args.no_calibrate:
        _calibrate_bench()
    return 0 if verdict == "PASS" else 1


def _calibrate_bench() -> None:
    """Helper C's calibration benchmark, when its file is there."""
    path = Path(__file__).resolve().parent / "calibrate.py"
    if not path.exists():
        print("\nbench/calibrate.py not found: the calibration benchmark (issue 15) is not in this tree yet.")
        return
    spec = importlib.util.spec_from_file_location("bench_calibrate", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    print("\n--- bench/calibrate.py ---", flush=True)
    module.main([])


if __name__ == "__main__":
    sys.exit(main())
