"""Benchmark: the province job on Spark (local[1] vs local[2]) against the embedded DuckDB path.

Build once (resumable, one district per subprocess, to /tmp):
    .venv/bin/python bench/province.py --build [--bases 8] [--copies 4] [--scale 13.5]
Then run:
    .venv/bin/python bench/province.py --run [--masters local[1],local[2]] [--districts N]

The province: ``--bases`` demo districts generated on the four real boundaries in
``data/boundaries`` (each boundary with its own seeds), each exported ``--copies`` times
under its own district code (``<adcode>s<seed>c<copy>``): 8 × 4 = 32 districts, ≈ 21M
hazards at scale 13.5. Copies are identical in content, which changes nothing in the
work Spark does (every district is restored and computed on its own).

Prints, from the same run: the Spark job (hazard counts by district/town/month/category/
severity and by H3 cell res 5-9, then every district's closed loop, compliance, scorecard,
Gi* and coverage, one district per task) under each master, and the embedded path (the
same counts in DuckDB and ``geo.province.figures.figures_of`` on each district database,
one after the other), the scaling local[1] → local[2] and the crossover.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path("/tmp/onemap_province_bench")
AREAS = ("310117", "310115", "500154", "330326")
END = "2026-11-30"


def _base_db(i: int) -> Path:
    return ROOT / "bases" / f"{AREAS[i % len(AREAS)]}s{i}.duckdb"


def build(bases: int, copies: int, scale: float) -> None:
    """Generate the base districts (one subprocess each, skipped when present) and export them."""
    (ROOT / "bases").mkdir(parents=True, exist_ok=True)
    for i in range(bases):
        db = _base_db(i)
        if db.exists():
            continue
        t = time.perf_counter()
        code = (f"from data.demo import build_demo; build_demo({str(db)!r}, area={AREAS[i % len(AREAS)]!r}, "
                f"scale={scale}, seed={100 + i}, end_date={END!r})")
        subprocess.run([sys.executable, "-c", code], check=True)
        print(f"built {db.name} in {time.perf_counter() - t:.0f} s", flush=True)
    from geo import partition

    for i in range(bases):
        for c in range(copies):
            code = f"{_base_db(i).stem}c{c}"
            if (ROOT / "data" / "_districts" / f"district={code}").exists():
                continue
            t = time.perf_counter()
            counts = partition.export_partition(_base_db(i), ROOT / "data", code)
            print(f"exported {code}: {counts['hazard']:,} hazards in {time.perf_counter() - t:.1f} s", flush=True)


def _embedded(codes: list[str], as_of: datetime) -> float:
    """The embedded path over the districts one by one: DuckDB counts and the geo/ figures."""
    from geo import store
    from geo.province.figures import figures_of
    from geo.settings import Settings

    t = time.perf_counter()
    for code in codes:
        con = store.connect(_base_db(int(code.split("s")[1].split("c")[0])))
        con.execute("""SELECT town, strftime(discovered_at, '%Y-%m') AS month, category, severity, count(*)
                       FROM hazard GROUP BY ALL""").fetchall()
        for res in (7, 8, 9):
            con.execute(f"SELECT h3_r{res}, strftime(discovered_at, '%Y-%m'), category, severity, count(*) "
                        "FROM hazard GROUP BY ALL").fetchall()
        figures_of(con, as_of, Settings())
    return time.perf_counter() - t


def run(masters: list[str], n: int | None) -> None:
    """Time the Spark job per master and the embedded path; print the comparison."""
    from geo import partition
    from geo.province import job

    manifest = partition.districts(ROOT / "data")
    codes = list(manifest["district"])[:n] if n else list(manifest["district"])
    hazards = int(manifest.set_index("district").loc[codes, "hazards"].sum())
    as_of = datetime.fromisoformat(END) + timedelta(days=1)
    print(f"province: {len(codes)} districts, {hazards:,} hazards", flush=True)
    spark_s: dict[str, float] = {}
    for master in masters:
        t = time.perf_counter()
        res = job.run(ROOT / "data", ROOT / f"out_{master.strip('[]').replace('[', '')}", master, as_of,
                      districts=codes)
        spark_s[master] = time.perf_counter() - t
        print(f"spark {master}: {spark_s[master]:.0f} s (counts {res['counts_s']} s, "
              f"district figures {res['districts_s']} s, rest = session start)", flush=True)
    emb = _embedded(codes, as_of)
    print(f"embedded DuckDB path, districts one by one: {emb:.0f} s ({emb / len(codes):.1f} s a district)")
    for master, s in spark_s.items():
        print(f"  {master}: {s / emb:.2f}x the embedded time")
    if len(spark_s) >= 2:
        first, second = list(spark_s.values())[:2]
        print(f"scaling {masters[0]} → {masters[1]}: {first / second:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", action="store_true")
    ap.add_argument("--run", action="store_true")
    ap.add_argument("--bases", type=int, default=8)
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--scale", type=float, default=13.5)
    ap.add_argument("--masters", default="local[1],local[2]")
    ap.add_argument("--districts", type=int, default=None, help="Only the first N districts.")
    args = ap.parse_args()
    if args.build:
        build(args.bases, args.copies, args.scale)
    if args.run:
        run([m.strip() for m in args.masters.split(",") if m.strip()], args.districts)


if __name__ == "__main__":
    main()
