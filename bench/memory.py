"""Benchmark: memory of a serving dashboard over 50 re-ingests (issue 11, item 1).

One run, on the real server process: ``onemap serve`` on a free loopback port against a copy
of the demo database (scale 1). The pages ``/``, ``/wall``, ``/plan`` and ``/review`` are
opened and every data URL their HTML preloads (layers, polygons, roads, overlays) is
fetched, so the URL answers, the page figures and the per-snapshot analysis objects
(scene, coverage, blind spots, study areas) are built. Then ``onemap ingest hazard`` of
the same 3,000-row hazard file runs ``--ingests`` times while the server serves: each
ingest swaps in a new snapshot. After each ingest the same pages and URLs are fetched
again and the server is left to settle (no CPU used for 1 s); its resident set size
(``VmRSS``) is read then.

Printed: RSS after ingest 1, 5, 10, ..., 50, and the ratio RSS after the last / RSS after
the 5th beside the target (≤ 1.10: "RSS after the last is within 10 % of RSS after the
fifth"). The old behaviour (answers of every old snapshot kept until an entry bound) cannot
run in the same process; its figures from the issue are printed as the baseline: +42 MB
per swap for the first eight swaps, then about +3 MB each.

Usage: ``.venv/bin/python bench/memory.py [--ingests 50] [--rows 3000] [--max-minutes 12]``.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ONEMAP = [str(Path(sys.executable).with_name("onemap"))]  # --onemap replaces it
PAGES = ("/", "/wall", "/plan", "/review")
PRELOAD = re.compile(r'<link rel="preload" as="fetch"[^>]*href="([^"]+)"')
TARGET = 1.10
BASELINE = "issue 11: +42 MB per swap for the first eight swaps, then ~+3 MB each (answers of old snapshots kept)"


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_copy(work: Path, base: Path | None) -> Path:
    """A fresh copy of the demo database (scale 1, built once under ``work`` unless ``base`` is given)."""
    src = base or work / "demo-base.duckdb"
    if not src.exists():
        sys.path.insert(0, str(ROOT))
        from data.demo import build_demo

        print(f"building the demo database into {src} ...", flush=True)
        build_demo(src, area="310117", scale=1.0, seed=2024)
    db = work / "served.duckdb"
    for old in work.glob("served.duckdb*"):
        old.unlink()
    shutil.copyfile(src, db)
    return db


def hazard_file(db: Path, work: Path, rows: int) -> Path:
    """The first ``rows`` hazards of ``db`` as a CSV that ``onemap ingest hazard`` reads (same ids)."""
    full = work / "hazard_all.csv"
    subprocess.run([*ONEMAP, "export", "hazard", "--db", str(db), "--out", str(full)], check=True,
                   stdout=subprocess.DEVNULL)
    out = work / "hazard_reingest.csv"
    with open(full, encoding="utf-8-sig", newline="") as src, open(out, "w", encoding="utf-8", newline="") as dst:
        reader, writer = csv.reader(src), csv.writer(dst)
        for i, row in enumerate(reader):
            if i > rows:
                break
            writer.writerow(row)
    return out


def get(url: str, timeout: float = 120.0) -> bytes:
    """The body of ``url`` (an error status is returned as its body: the benchmark is about memory)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.read()
    except urllib.error.HTTPError as exc:
        return exc.read()


def hit_pages(base: str) -> int:
    """Open every page and fetch the data URLs its HTML preloads; returns the number of requests."""
    n = 0
    for page in PAGES:
        html = get(base + page).decode("utf-8", "replace")
        n += 1
        for url in dict.fromkeys(PRELOAD.findall(html)):
            get(base + url.replace("&amp;", "&"))
            n += 1
    return n


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(pid: int, quiet_s: float = 1.0, limit_s: float = 90.0) -> None:
    """Wait until the server has used no CPU for ``quiet_s`` (its background warm-up finished)."""
    end = time.monotonic() + limit_s
    last = cpu_seconds(pid)
    while time.monotonic() < end:
        time.sleep(quiet_s)
        now = cpu_seconds(pid)
        if now - last < 0.02 * quiet_s:
            return
        last = now


def rss_mb(pid: int) -> float:
    """Resident set size (``VmRSS``) of process ``pid`` in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def start_server(db: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """``onemap serve`` on ``db`` at 127.0.0.1:``port``, answering once ``/`` does."""
    with open(log, "wb") as out:
        server = subprocess.Popen([*ONEMAP, "serve", "--db", str(db), "--host", "127.0.0.1", "--port", str(port)],
                                  stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited with {server.returncode}; see {log}")
        try:
            get(f"http://127.0.0.1:{port}/", timeout=5)
            return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    server.terminate()
    raise RuntimeError(f"server did not answer within 120 s; see {log}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ingests", type=int, default=50)
    parser.add_argument("--rows", type=int, default=3000, help="hazard rows in the re-ingested file")
    parser.add_argument("--db", type=Path, default=None, help="demo database to copy (built when missing)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "onemap-bench-memory")
    parser.add_argument("--max-minutes", type=float, default=12.0, help="stop re-ingesting after this long")
    parser.add_argument("--onemap", default=None, help="the onemap command to run, split on spaces (default: the venv's)")
    args = parser.parse_args()
    if args.onemap:
        ONEMAP[:] = args.onemap.split()

    args.work.mkdir(parents=True, exist_ok=True)
    db = demo_copy(args.work, args.db)
    layer_file = hazard_file(db, args.work, args.rows)
    port = free_port()
    server = start_server(db, port, args.work / "server.log")
    pid = server.pid
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    rss: dict[int, float] = {}
    try:
        requests = hit_pages(base)
        settle(pid)
        rss[0] = rss_mb(pid)
        print(f"server pid {server.pid}, {requests} requests per round; RSS warmed, before any ingest: {rss[0]:.0f} MB",
              flush=True)
        for i in range(1, args.ingests + 1):
            if time.monotonic() - started > args.max_minutes * 60:
                print(f"stopped after {i - 1} ingests: --max-minutes {args.max_minutes} reached", flush=True)
                break
            subprocess.run([*ONEMAP, "ingest", "hazard", str(layer_file), "--db", str(db), "--quiet"], check=True,
                           stdout=subprocess.DEVNULL)
            hit_pages(base)
            settle(pid)
            rss[i] = rss_mb(pid)
            if i == 1 or i % 5 == 0:
                print(f"  after ingest {i:>3}: RSS {rss[i]:7.1f} MB  ({time.monotonic() - started:5.0f} s)", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    last = max(rss)
    print(f"\nsnapshots swapped in under the serving app: {last}")
    if last >= 5:
        ratio = rss[last] / rss[5]
        verdict = "PASS" if ratio <= TARGET else "FAIL"
        print(f"RSS after ingest 5: {rss[5]:.1f} MB, after ingest {last}: {rss[last]:.1f} MB")
        print(f"ratio last / 5th: {ratio:.3f}   target ≤ {TARGET:.2f}   {verdict}")
        per_swap = (rss[last] - rss[5]) / max(last - 5, 1)
        print(f"growth after the 5th: {per_swap:+.2f} MB per swap")
    print(f"baseline: {BASELINE}")
    print(f"total {time.monotonic() - started:.0f} s; server log {args.work / 'server.log'}; cpu count {os.cpu_count()}")


if __name__ == "__main__":
    main()
