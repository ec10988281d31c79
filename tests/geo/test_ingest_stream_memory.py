"""Chunked ingest keeps its memory bound: `onemap ingest` of a 1M-row CSV in its own process
peaks under ``ingest_memory_mb`` = 650 MB, where the same file read whole needs more; the
result is the same, and the progress bar counts chunks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from geo import store

ROOT = Path(__file__).resolve().parents[2]
ROWS = 1_000_000
BOUND_MB = 650

# Runs `onemap ingest` as a child and prints the child's own peak RSS (RUSAGE_CHILDREN of
# this wrapper holds only that process).
WRAPPER = """
import json, resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({"code": done.returncode, "out": done.stdout, "err": done.stderr[-4000:],
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def write_register(path: Path, n: int) -> None:
    """A hydrant register of n rows (Chinese headers), some rows bad, written in slices."""
    rng = np.random.default_rng(7)
    with pacsv.CSVWriter(path, pa.schema([(h, pa.string()) for h in
                                          ("编号", "名称", "状态", "经度", "纬度", "管径")])) as out:
        for start in range(0, n, 250_000):
            k = min(250_000, n - start)
            i = np.arange(start, start + k)
            lon = np.char.mod("%.6f", rng.uniform(121.05, 121.40, k))
            lon[i % 1000 == 7] = "abc"
            out.write_table(pa.table({
                "编号": np.char.add("SJ-", (i % (n - 500)).astype(str)),  # 500 ids repeat
                "名称": np.char.add("消火栓", i.astype(str)),
                "状态": np.where(i % 97 == 0, "完好", "正常"),
                "经度": lon,
                "纬度": np.char.mod("%.6f", rng.uniform(30.90, 31.15, k)),
                "管径": np.where(i % 2 == 0, "150", "100"),
            }))


def ingest(csv: Path, db: Path, memory_mb: float, tmp: Path, *flags: str) -> dict:
    config = tmp / f"onemap-{int(memory_mb)}.toml"
    config.write_text(f"ingest_memory_mb = {memory_mb}\n", encoding="utf-8")
    onemap = str(Path(sys.executable).with_name("onemap"))
    argv = [onemap, "ingest", "hydrant", str(csv), "--db", str(db), "--config", str(config), *flags]
    done = subprocess.run([sys.executable, "-c", WRAPPER, *argv], capture_output=True,
                          text=True, cwd=ROOT, check=True, timeout=900)
    report = json.loads(done.stdout)
    assert report["code"] == 0, report["err"]
    return report


def test_a_file_bigger_than_the_bound_stays_under_it(tmp_path: Path) -> None:
    csv = tmp_path / "hydrants.csv"
    write_register(csv, ROWS)
    whole = ingest(csv, tmp_path / "whole.duckdb", 100_000, tmp_path, "--json")
    chunked = ingest(csv, tmp_path / "chunked.duckdb", BOUND_MB, tmp_path)
    assert whole["max_rss_mb"] > BOUND_MB  # read whole, this file needs more than the bound
    assert chunked["max_rss_mb"] < BOUND_MB, chunked["max_rss_mb"]
    result = json.loads(whole["out"])
    assert "chunks" not in result["stages"]
    # ids SJ-0..SJ-499 come twice; SJ-7's first row has a bad coordinate, so its second is kept
    assert result["rejected_by_reason"] == {"bad_coordinates": 1000, "duplicate_id": 499}
    assert "chunk" in chunked["err"]  # the progress bar, by chunk
    assert f"{result['accepted']:,}" in chunked["out"]
    counts = []
    for name in ("whole", "chunked"):
        con = store.connect(tmp_path / f"{name}.duckdb")
        try:
            counts.append(con.execute(
                "SELECT count(*), count(DISTINCT id), sum(hash(id, status, lon, lat, h3_r10)), "
                "(SELECT count(*) FROM rejected), (SELECT sum(hash(row_number, reason, value)) "
                "FROM rejected) FROM hydrant").fetchone())
        finally:
            con.close()
    assert counts[0] == counts[1]
    assert counts[0][0] == result["accepted"] == ROWS - 1499
