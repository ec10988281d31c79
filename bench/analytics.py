"""Benchmark: dashboard analytics queries on 5M hazards, DuckDB (onemap) vs pandas and esda.

Builds (once, cached) a district database: the demo district (real Songjiang boundary,
grids, admin covers) whose hazard table is replaced by N synthetic hazards generated with
numpy (positions resampled around the demo's hazards, two years ending now, sorted by
discovered_at so DuckDB's zone maps can skip), and 200k key places.

Each dashboard query runs through onemap's ``geo/`` functions and, in the same run, the
same computation in pandas on the same rows held in memory (and esda ``G_Local`` for Gi*
on the same weights, built beforehand and not timed). Runs alternate (onemap, baseline)
so machine load hits both. Prints p50/p95 per query, the ratio and PASS/FAIL against:
- every dashboard query: onemap p95 ≤ 1/3 of the pandas p95;
- queries over the last 30 days: ≤ 1/10;
- Gi* on 10,000+ cells: onemap (counting, study area, weights, Gi*) no slower than esda's G_Local alone.

What onemap keeps per database snapshot (built on the first call, timed and printed
separately; an ingest swaps in a new snapshot): the Gi* study area with its k-ring weights,
the key places' columns as integer codes, and the gap from each hazard to the previous
one at its place. Every timed call counts its rows anew; no query result is kept.

    .venv/bin/python bench/analytics.py [--n 5000000] [--db PATH] [--rebuild] [--budget 25]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geo import h3index, store  # noqa: E402
from geo.aggregate import Filter, count_by_cell  # noqa: E402
from geo.governance import closed_loop, inspection_compliance, wall_kpis  # noqa: E402
from geo.hotspots import hotspots, k_ring_weights, study_cells  # noqa: E402
from geo.settings import Settings  # noqa: E402
from layers.hazard import CATEGORIES  # noqa: E402

DEFAULT_DB = Path("/tmp/onemap_bench_analytics.duckdb")
N_PLACES = 200_000


# --------------------------------------------------------------------------- data


def build(path: Path, n: int, seed: int = 11) -> None:
    """The demo district with ``n`` synthetic hazards and ``N_PLACES`` key places."""
    from data.demo import build_demo

    t0 = time.perf_counter()
    print(f"building the demo district into {path} ...", flush=True)
    build_demo(path, area="310117", scale=0.2, seed=7)
    con = store.connect(path)
    src = store.query(con, "SELECT lon, lat, town, community, grid_id FROM hazard WHERE grid_id IS NOT NULL")
    con.close()
    rng = np.random.default_rng(seed)
    now = datetime.now().replace(second=0, microsecond=0)

    # key places around the demo hazards
    pi = rng.integers(0, len(src), N_PLACES)
    plon = src["lon"].to_numpy()[pi] + rng.normal(0, 0.0008, N_PLACES)
    plat = src["lat"].to_numpy()[pi] + rng.normal(0, 0.0008, N_PLACES)
    pcls = rng.choice([1, 2, 3], N_PLACES, p=[0.5, 0.35, 0.15])
    last = pd.Timestamp(now.date()) - pd.to_timedelta(rng.integers(0, 250, N_PLACES), unit="D")
    last = pd.Series(last).where(rng.random(N_PLACES) > 0.03)
    places = pd.DataFrame({
        "id": np.char.add("KP", np.arange(N_PLACES).astype(str)), "name": "场所", "category": "住宅小区",
        "inspection_class": pcls, "last_inspection": last.dt.date,
        "town": src["town"].to_numpy()[pi], "community": src["community"].to_numpy()[pi],
        "grid_id": src["grid_id"].to_numpy()[pi], "lon": plon, "lat": plat,
    })

    # hazards, sorted by discovery time
    idx = rng.integers(0, len(src), n)
    lon = src["lon"].to_numpy()[idx] + rng.normal(0, 0.0005, n)
    lat = src["lat"].to_numpy()[idx] + rng.normal(0, 0.0005, n)
    cells = h3index.index_points(lon, lat, store.POINT_RESOLUTIONS)
    span_s = 730 * 86400
    offs = np.sort(rng.integers(0, span_s, n))[::-1]
    disc = pd.Timestamp(now) - pd.to_timedelta(offs, unit="s")
    major = rng.random(n) < 0.05
    days = rng.lognormal(np.log(4.0), 0.8, n) * np.where(major, 3.0, 1.0)
    closed = disc + pd.to_timedelta(np.round(days * 86400), unit="s")
    is_closed = (closed <= pd.Timestamp(now)) & (rng.random(n) > 0.01)
    statuses = np.array(["立案", "派遣", "处置", "核查"])
    status = np.where(is_closed, "结案", statuses[rng.integers(0, 4, n)])
    deadline = disc.normalize() + pd.to_timedelta(np.where(major, 60, 15), unit="D")
    sup = rng.choice(["无", "街镇挂牌", "区级挂牌"], n, p=[0.975, 0.02, 0.005])
    handled = np.where(major, rng.choice(["街镇", "区"], n, p=[0.8, 0.2]),
                       rng.choice(["网格", "社区", "街镇"], n, p=[0.8, 0.15, 0.05]))
    place = np.where(rng.random(n) < 0.4, np.char.add("KP", rng.integers(0, N_PLACES, n).astype(str)), None)
    hazards = pd.DataFrame({
        "id": np.char.add("B", np.arange(n).astype(str)),
        "category": np.array(CATEGORIES)[rng.integers(0, len(CATEGORIES), n)],
        "severity": np.where(major, "重大", "一般"), "status": status,
        "source": rng.choice(["网格巡查", "委员会巡查", "城运巡查", "12345热线", "物联感知"], n),
        "supervision": sup, "handled_by": np.where(is_closed, handled, None),
        "discovered_at": disc, "closed_at": pd.Series(closed).where(is_closed), "deadline": deadline.date,
        "place_id": place, "town": src["town"].to_numpy()[idx], "community": src["community"].to_numpy()[idx],
        "grid_id": src["grid_id"].to_numpy()[idx], "lon": lon, "lat": lat,
        **{h3index.cell_column(r): c for r, c in cells.items()},
    })
    pcells = h3index.index_points(plon, plat, store.POINT_RESOLUTIONS)
    for r, c in pcells.items():
        places[h3index.cell_column(r)] = c
    with store.writer(path) as con:
        for table, frame in (("hazard", hazards), ("key_place", places)):
            con.execute(f"DELETE FROM {table}")
            con.register("_bench", frame)
            con.execute(f"INSERT INTO {table} BY NAME SELECT *, ST_Point(lon, lat) AS geom FROM _bench")
            con.unregister("_bench")
            store.fill_cell_codes(con, table)  # the dense cell numbers write_layer would have given
    print(f"  {n:,} hazards, {N_PLACES:,} key places in {time.perf_counter() - t0:.0f} s", flush=True)


# --------------------------------------------------------------------------- pandas baselines


def pd_cell_counts(df: pd.DataFrame, start: datetime | None) -> pd.Series:
    m = df["severity"] == "一般"
    if start is not None:
        m &= df["discovered_at"] >= start
    return df.loc[m].groupby("h3_r9").size()


def pd_closed_loop(df: pd.DataFrame, by: list[str], as_of: datetime, s: Settings,
                   start: datetime | None = None) -> pd.DataFrame:
    """The figures of ``geo.governance.closed_loop`` in pandas (same definitions)."""
    m = df["discovered_at"] <= as_of
    if start is not None:
        m &= df["discovered_at"] >= start
    h = df.loc[m]
    closed_at = h["closed_at"]
    is_closed = (closed_at <= as_of) | (closed_at.isna() & (h["status"] == "结案"))
    days = ((closed_at - h["discovered_at"]).dt.total_seconds() / 86400).where(closed_at <= as_of)
    dflt = h["severity"].map({k: int(v) for k, v in s.hazard_deadline_days.items()})
    due = h["deadline"].fillna(h["discovered_at"].dt.normalize() + pd.to_timedelta(dflt, unit="D"))
    pm = df["place_id"].notna() & (df["discovered_at"] <= as_of)
    if start is not None:
        pm &= df["discovered_at"] >= start - timedelta(days=s.recurring_window_days)
    p = df.loc[pm, ["id", "place_id", "discovered_at"]].sort_values(["place_id", "discovered_at"], kind="stable")
    gap = p["discovered_at"] - p.groupby("place_id")["discovered_at"].shift()
    rec_ids = p.loc[gap <= pd.Timedelta(days=s.recurring_window_days), "id"]
    recurrent = h["id"].isin(rec_ids)
    general = h["severity"] == "一般"
    listed = h["supervision"].isin(["街镇挂牌", "区级挂牌"])
    keys = [h["discovered_at"].dt.to_period("M").dt.start_time.rename("month") if b == "month" else h[b] for b in by]
    frame = pd.DataFrame({
        "is_closed": is_closed, "open": ~is_closed, "days": days,
        "overdue": ~is_closed & (due < pd.Timestamp(as_of.date())),
        "open_major": ~is_closed & (h["severity"] == "重大"),
        "listed_town": h["supervision"] == "街镇挂牌", "listed_district": h["supervision"] == "区级挂牌",
        "listed_open": listed & ~is_closed,
        "rec_place": h["place_id"].where(recurrent), "place": h["place_id"],
        "on_time": is_closed & closed_at.notna() & (closed_at.dt.normalize() <= due),
        "general_closed": is_closed & general, "in_grid": is_closed & general & (h["handled_by"] == "网格"),
    })
    g = frame.groupby(keys)
    out = pd.DataFrame({
        "discovered": g.size(), "closed": g["is_closed"].sum(), "open": g["open"].sum(),
        "median_days_to_close": g["days"].median(), "p90_days_to_close": g["days"].quantile(0.9),
        "overdue": g["overdue"].sum(), "open_major": g["open_major"].sum(),
        "listed_town": g["listed_town"].sum(), "listed_district": g["listed_district"].sum(),
        "listed_open": g["listed_open"].sum(), "recurring_places": g["rec_place"].nunique(),
        "places_with_hazards": g["place"].nunique(), "closed_on_time": g["on_time"].sum(),
        "general_closed": g["general_closed"].sum(), "general_closed_in_grid": g["in_grid"].sum(),
    }).reset_index()
    out["rectification_rate"] = out["closed"] / out["discovered"]
    out["in_grid_share"] = out["general_closed_in_grid"] / out["general_closed"].where(out["general_closed"] > 0)
    return out


def pd_compliance(kp: pd.DataFrame, as_of: datetime, s: Settings) -> pd.DataFrame:
    interval = kp["inspection_class"].map({int(k): int(v) for k, v in s.inspection_interval_days.items()})
    limit = pd.Timestamp(as_of.date()) - pd.to_timedelta(interval, unit="D")
    ok = kp["last_inspection"] >= limit
    never = kp["last_inspection"].isna()
    frame = pd.DataFrame({"town": kp["town"], "inspection_class": kp["inspection_class"], "ok": ok, "never": never})
    g = frame.groupby(["town", "inspection_class"])
    out = pd.DataFrame({"places": g.size(), "inspected_in_interval": g["ok"].sum(),
                        "never_inspected": g["never"].sum()}).reset_index()
    out["compliance"] = out["inspected_in_interval"] / out["places"]
    return out


def esda_gi_with_weights(df: pd.DataFrame, res: int, cells: np.ndarray, k: int) -> np.ndarray:
    """The whole pandas/esda pipeline: neighbour lists from h3 per cell, a libpysal W, counts, G_Local."""
    import h3
    import libpysal

    index = {int(c): i for i, c in enumerate(cells)}
    neighbours = {}
    for i, c in enumerate(cells):
        ring = (h3.str_to_int(x) for x in h3.grid_disk(h3.int_to_str(int(c)), k))
        neighbours[i] = [index[r] for r in ring if r in index and r != int(c)]
    w = libpysal.weights.W(neighbours, silence_warnings=True)
    return esda_gi(df, res, cells, w)


def esda_gi(df: pd.DataFrame, res: int, cells: np.ndarray, w: object) -> np.ndarray:
    import esda

    counts = df.groupby(h3index.cell_column(res)).size()
    y = counts.reindex(cells, fill_value=0).to_numpy(dtype=float)
    return esda.G_Local(y, w, transform="B", star=True, permutations=0).Zs


# --------------------------------------------------------------------------- timing


def timed(pairs: dict[str, Callable[[], object]], budget_s: float, min_reps: int = 5,
          max_reps: int = 30) -> dict[str, np.ndarray]:
    """Run the callables alternately until the budget is spent; latencies in ms per callable."""
    out: dict[str, list[float]] = {k: [] for k in pairs}
    for fn in pairs.values():  # warm-up (caches, JIT, buffer pool)
        fn()
    t_end = time.perf_counter() + budget_s
    reps = 0
    while reps < max_reps and (reps < min_reps or time.perf_counter() < t_end):
        for name, fn in pairs.items():
            t = time.perf_counter()
            fn()
            out[name].append((time.perf_counter() - t) * 1000)
        reps += 1
    return {k: np.array(v) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=5_000_000, help="synthetic hazards (default 5M)")
    ap.add_argument("--db", type=Path, default=DEFAULT_DB)
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--budget", type=float, default=25.0, help="seconds of timing per query pair")
    ap.add_argument("--only", action="append", default=[], metavar="TEXT",
                    help="time only the queries whose name contains TEXT (repeatable)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    if args.rebuild or not args.db.exists():
        build(args.db, args.n)
    con = store.connect(args.db)
    n = con.execute("SELECT count(*) FROM hazard").fetchone()[0]
    if n != args.n:
        print(f"{args.db} holds {n:,} hazards, not {args.n:,}: rebuilding")
        con.close()
        build(args.db, args.n)
        con = store.connect(args.db)
    s = Settings()
    as_of = con.execute("SELECT max(discovered_at) FROM hazard").fetchone()[0] + timedelta(seconds=1)
    last30 = as_of - timedelta(days=30)
    # the first call on a snapshot also builds what is kept per snapshot (not results):
    # the place-gap table, the key-place codes, the study areas with their weights
    firsts = {
        "closed loop, last 30 days": lambda: closed_loop(con, ("town",), Filter(start=last30), as_of=as_of, settings=s),
        "inspection compliance": lambda: inspection_compliance(con, ("town",), as_of, settings=s),
        "Gi* res 8": lambda: hotspots(con, res=8, settings=s),
        "Gi* res 10": lambda: hotspots(con, res=10, settings=s),
    }
    for name, fn in firsts.items():
        t = time.perf_counter()
        fn()
        first = time.perf_counter() - t
        t = time.perf_counter()
        fn()
        print(f"first call on this snapshot, {name}: {first * 1000:.0f} ms (then {(time.perf_counter() - t) * 1000:.0f} ms)")
    t = time.perf_counter()
    df = con.execute("SELECT * EXCLUDE (geom) FROM hazard").df()
    kp = con.execute("SELECT * EXCLUDE (geom) FROM key_place").df()
    print(f"pandas frames loaded in {time.perf_counter() - t:.1f} s (not timed): {len(df):,} hazards, {len(kp):,} places")

    # Gi* weights for esda, built beforehand (not timed)
    import libpysal

    gi_w = {}
    for res in (8, 10):
        area, _ = study_cells(con, res)
        counted = np.unique(df[h3index.cell_column(res)].to_numpy(dtype=np.uint64))
        cells = np.union1d(area, counted)
        sp = k_ring_weights(cells, s.hotspot_k_ring, star=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gi_w[res] = (cells, libpysal.weights.W.from_sparse(sp.tocsr()))

    # the same numbers both ways (sanity)
    ours = closed_loop(con, ("town",), as_of=as_of, settings=s).set_index("town")
    theirs = pd_closed_loop(df, ["town"], as_of, s).set_index("town").loc[ours.index]
    cols = [c for c in ours.columns if c in theirs.columns]
    assert np.allclose(ours[cols].to_numpy(float), theirs[cols].to_numpy(float), equal_nan=True), "closed loop differs"
    c1 = count_by_cell(con, "hazard", 9, Filter(severity=("一般",), start=last30)).set_index("cell")["count"]
    assert c1.sort_index().to_numpy().tolist() == pd_cell_counts(df, last30).sort_index().to_numpy().tolist()
    for res in (8, 10):
        hs = hotspots(con, res=res, settings=s).table
        cells, w = gi_w[res]
        assert np.array_equal(hs["cell"].to_numpy(), cells)
        diff = np.abs(hs["z"].to_numpy() - esda_gi(df, res, cells, w)).max()
        print(f"Gi* res {res}: {len(cells):,} cells, max |z − esda z| = {diff:.1e}")
    print("closed-loop figures and cell counts equal between onemap and pandas\n")

    general = Filter(severity=("一般",))
    recent = Filter(severity=("一般",), start=last30)
    cases: list[tuple[str, Callable[[], object], Callable[[], object], str, float]] = [
        ("cell counts r9, 一般, all time", lambda: count_by_cell(con, "hazard", 9, general),
         lambda: pd_cell_counts(df, None), "pandas", 1 / 3),
        ("cell counts r9, 一般, last 30 days", lambda: count_by_cell(con, "hazard", 9, recent),
         lambda: pd_cell_counts(df, last30), "pandas", 1 / 10),
        ("closed loop by town, all time", lambda: closed_loop(con, ("town",), as_of=as_of, settings=s),
         lambda: pd_closed_loop(df, ["town"], as_of, s), "pandas", 1 / 3),
        ("closed loop by town, last 30 days",
         lambda: closed_loop(con, ("town",), Filter(start=last30), as_of=as_of, settings=s),
         lambda: pd_closed_loop(df, ["town"], as_of, s, start=last30), "pandas", 1 / 10),
        ("closed loop by month, all time", lambda: closed_loop(con, ("month",), as_of=as_of, settings=s),
         lambda: pd_closed_loop(df, ["month"], as_of, s), "pandas", 1 / 3),
        ("inspection compliance by town×class", lambda: inspection_compliance(con, ("town",), as_of, settings=s),
         lambda: pd_compliance(kp, as_of, s), "pandas", 1 / 3),
        ("Gi* res 8 over the district", lambda: hotspots(con, res=8, settings=s),
         lambda: esda_gi(df, 8, *gi_w[8]), "pandas+esda", 1 / 3),
        ("Gi* res 10 (10,000+ cells)", lambda: hotspots(con, res=10, settings=s),
         lambda: esda_gi(df, 10, *gi_w[10]), "pandas+esda", 1.0),
    ]
    if args.only:
        cases = [c for c in cases if any(t in c[0] for t in args.only)]
    rows = []
    failed = 0
    print(f"load average (1, 5, 15 min) before timing: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'query':<40}{'onemap p50':>11}{'p95':>9}{'baseline':>13}{'p50':>9}{'p95':>9}{'ratio':>8}"
          f"{'target':>8}  result")
    for name, ours_fn, base_fn, base_name, target in cases:
        lat = timed({"ours": ours_fn, "base": base_fn}, args.budget)
        o, b = lat["ours"], lat["base"]
        ratio = np.percentile(o, 95) / np.percentile(b, 95)
        ok = ratio <= target
        failed += not ok
        rows.append((name, ratio, ok))
        print(f"{name:<40}{np.percentile(o, 50):>9.1f}ms{np.percentile(o, 95):>7.1f}ms{base_name:>13}"
              f"{np.percentile(b, 50):>7.1f}ms{np.percentile(b, 95):>7.1f}ms{ratio:>8.3f}{target:>8.3f}  "
              f"{'PASS' if ok else 'FAIL'}  (n={len(o)})", flush=True)
    print(f"load average after timing: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.only:
        print(f"\n{len(cases) - failed}/{len(cases)} PASS" + ("" if not failed else f", {failed} FAIL"))
        return
    full = timed({"ours": lambda: hotspots(con, res=8, settings=s),
                  "base": lambda: esda_gi_with_weights(df, 8, gi_w[8][0], s.hotspot_k_ring)}, args.budget / 2)
    print(f"{'Gi* res 8, esda building its W (info)':<40}{np.percentile(full['ours'], 50):>9.1f}ms"
          f"{np.percentile(full['ours'], 95):>7.1f}ms{'pandas+W+esda':>13}{np.percentile(full['base'], 50):>7.1f}ms"
          f"{np.percentile(full['base'], 95):>7.1f}ms"
          f"{np.percentile(full['ours'], 95) / np.percentile(full['base'], 95):>8.3f}")
    w = timed({"wall": lambda: wall_kpis(con, as_of, s)}, 5.0)["wall"]
    print(f"\nwall KPIs on {n:,} hazards: p50 {np.percentile(w, 50):.1f} ms, p95 {np.percentile(w, 95):.1f} ms (info)")
    print(f"\n{len(cases) - failed}/{len(cases)} PASS" + ("" if not failed else f", {failed} FAIL"))


if __name__ == "__main__":
    main()
