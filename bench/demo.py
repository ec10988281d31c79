"""Benchmark: building the demo district (generation in memory, then the store's write).

Run: .venv/bin/python bench/demo.py [--area 310117] [--scales 0.2 1] [--seed 2024] [--keep DIR]

For each scale prints, from the same run: generating the district in memory
(``data.demo.generate_demo``) and, as the named baseline, the store's write of the same
rows (``data.demo.write_demo``: ``store.write_layer`` with its H3 covers, plus the road
tables), in CPU seconds (the measure on a shared machine) with wall seconds beside them,
rows written and peak memory. Target: the default build (scale 1) well under a minute;
the test fixture (scale 0.2) within ~10 s.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data.demo import generate_demo, write_demo  # noqa: E402


def _timed(fn, *args, **kwargs):  # noqa: ANN001, ANN202 - tiny helper
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.process_time() - c0, time.perf_counter() - w0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--area", default="310117")
    ap.add_argument("--scales", type=float, nargs="+", default=[0.2, 1.0])
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--end-date", default="2025-06-30")
    ap.add_argument("--keep", type=Path, default=None, help="directory to keep the built databases in")
    args = ap.parse_args()
    out_dir = args.keep or Path(tempfile.mkdtemp(prefix="bench_demo_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"demo build, area {args.area}, seed {args.seed}, end {args.end_date} (CPU s; wall s in brackets)")
    print(f"{'scale':>6} {'generate':>16} {'write (baseline)':>18} {'total':>16} {'rows':>10} {'peak GB':>8}")
    for scale in args.scales:
        demo, gc, gw = _timed(generate_demo, area=args.area, scale=scale, seed=args.seed, end_date=args.end_date)
        path = out_dir / f"demo_{args.area}_{scale:g}.duckdb"
        counts, wc, ww = _timed(write_demo, path, demo)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
        print(f"{scale:>6g} {gc:>7.1f} ({gw:>5.1f} s) {wc:>9.1f} ({ww:>5.1f} s) {gc + wc:>7.1f} ({gw + ww:>5.1f} s) "
              f"{sum(counts.values()):>10,} {peak:>8.2f}", flush=True)
        print("       " + ", ".join(f"{k} {v:,}" for k, v in counts.items()), flush=True)
        if args.keep is None:
            path.unlink(missing_ok=True)
    print("baseline: the store's write of the same rows; target: scale 1 well under 60 s, scale 0.2 within ~10 s")


if __name__ == "__main__":
    main()
