"""Chunked ingest: a file bigger than memory allows, read, validated and written chunk by chunk.

``geo.ingest.ingest_file`` calls ``plan`` to decide, then ``ingest_chunks`` when a file's
whole-file ingest would not fit ``Settings.ingest_memory_mb``. The outcome is the one a
one-chunk ingest gives: the same accepted rows, ids and stored result, the same rejected
rows (reason, row number, field, value, raw) and notes. What needs the whole file:

- duplicate ids across chunks: each chunk's ids are looked up in the staging table of the
  rows accepted so far (``store.staged_ids``); the first occurrence stays, later ones are
  rejected ``duplicate_id`` as in one chunk;
- stable ids, value checks, CRS conversion, H3 and grid assignment: per row, so per chunk;
- replace-vs-append: accepted rows go to a staging table in the writer's private copy and
  move into the layer in one statement at the end (``store.merge_stage``): the same delete
  by id, sort order and cell numbering as ``store.write_layer`` on the whole file; rejected
  rows and notes of the file are deleted once, then appended chunk by chunk;
- counts, rejection reasons, value-alias notes and the unit report are summed over chunks.

Only point layers are chunked (polygon registers — grids, areas — are small); DuckDB's own
memory is capped for the write (``store.memory_bound``) and spills to a folder beside the
database file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from geo import store, units
from geo.chunks import EXCEL, TABULAR, open_chunks
from geo.settings import Settings
from layers.base import LayerSpec

# Measured on the bench/ingest.py hydrant CSV (70 bytes a row), peak RSS of the process:
# - whole file: ~450 MB before the first row is held (Python, pyarrow, DuckDB with spatial,
#   geopandas, the writer) plus ~480 bytes a row (about 7x the row's CSV bytes): 1M rows
#   peak at 735-772 MB;
# - chunked: ~290 MB plus ~940 bytes per row of one chunk (text, cleaned text, parsed
#   columns, H3 cells, the Arrow table staged: about 13.5x the CSV bytes) plus DuckDB's
#   capped buffer pool: 1M rows in chunks of 245k with a 80 MB cap peaked at 596 MB.
# Chunks are sized to HEADROOM of the budget, so the estimate's error stays under it (at 0.9 a
# 650 MB bound was once exceeded by 5 MB on a fresh CI machine: 0.8 leaves room for that).
BASE_MB = 450.0
ROW_BYTES_MIN = 480.0
ROW_EXPANSION = 7.0
CHUNK_BASE_MB = 300.0
CHUNK_ROW_BYTES_MIN = 940.0
CHUNK_EXPANSION = 13.5
HEADROOM = 0.8
XLSX_EXPANSION = 40.0  # an xlsx is zip-compressed: in memory its rows are ~40x the file
MIN_CHUNK_ROWS = 10_000
DUCKDB_SHARE = 0.3  # of the memory above CHUNK_BASE_MB, what DuckDB may use while chunking
MIN_DUCKDB_MB = 64.0


@dataclass(frozen=True)
class Plan:
    """Whether to chunk, rows per chunk, and DuckDB's memory cap while chunking."""

    chunked: bool
    chunk_rows: int
    duckdb_mb: float


def plan(path: Path, spec: LayerSpec, settings: Settings) -> Plan:
    """Chunk a point-layer file when its whole-file ingest would exceed ``ingest_memory_mb``
    (or when ``ingest_chunk_rows`` asks for chunks smaller than the file)."""
    budget = float(settings.ingest_memory_mb)
    free = max(budget * HEADROOM - CHUNK_BASE_MB, 0.0)
    duck = max(free * DUCKDB_SHARE, MIN_DUCKDB_MB)
    if spec.geometry != "point" or not path.is_file():
        return Plan(False, 0, duck)
    size = path.stat().st_size
    ext = path.suffix.lower()
    per_row_file = _bytes_per_row(path) if ext in TABULAR else 0.0
    per_row = max(ROW_BYTES_MIN, ROW_EXPANSION * per_row_file)
    per_chunk_row = max(CHUNK_ROW_BYTES_MIN, CHUNK_EXPANSION * per_row_file)
    if ext in TABULAR:
        rows = size / max(per_row_file, 1.0)
        whole_mb = BASE_MB + rows * per_row / 2**20
    elif ext in EXCEL:
        whole_mb = BASE_MB + size * XLSX_EXPANSION / 2**20
        rows = size * XLSX_EXPANSION / per_row
    else:
        whole_mb = BASE_MB + size * ROW_EXPANSION / 2**20
        rows = size * ROW_EXPANSION / per_row
    chosen = int(settings.ingest_chunk_rows)
    if chosen > 0:
        return Plan(rows > chosen, chosen, duck)
    if whole_mb <= budget:
        return Plan(False, 0, duck)
    chunk = int((free - duck) * 2**20 / per_chunk_row) if free > duck else 0
    return Plan(True, max(chunk, MIN_CHUNK_ROWS), duck)


def _bytes_per_row(path: Path) -> float:
    """Bytes per line in the first MB of a text file."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 20)
    return len(head) / max(head.count(b"\n"), 1)


@dataclass
class _Tally:
    """What the chunks add up to."""

    rows_read: int = 0
    rejected_rows: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    accepted: int = 0
    assigned: int = 0
    value_counts: dict[str, dict[tuple[str, str], int]] = field(default_factory=dict)
    file_notes: list[str] = field(default_factory=list)
    column_map: dict[str, str] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)
    crs: str = "wgs84"
    named: int = 0
    matched: int = 0
    unit_parts: list[pd.DataFrame] = field(default_factory=list)
    has_units: bool = False
    chunks: int = 0
    units: dict[str, Any] | None = None

    def add(self, prep: Any, first: bool) -> None:
        self.rows_read += prep.rows_read
        self.rejected_rows += prep.rejected_rows
        for reason, n in prep.rejected_by_reason.items():
            self.reasons[reason] = self.reasons.get(reason, 0) + n
        for name, counts in prep.value_counts.items():
            into = self.value_counts.setdefault(name, {})
            for pair, n in counts.items():
                into[pair] = into.get(pair, 0) + n
        if first:
            self.column_map, self.unmapped = dict(prep.column_map), list(prep.unmapped)
        self.chunks += 1

    def by_reason(self) -> dict[str, int]:
        """Reasons by count, most first, malformed rows first (as a one-chunk ingest orders them)."""
        counts = dict(sorted(self.reasons.items(), key=lambda kv: -kv[1]))
        if "malformed_row" in counts:
            counts = {"malformed_row": counts.pop("malformed_row"), **counts}
        return counts


def ingest_chunks(
    spec: LayerSpec,
    path: Path,
    file: str,
    db_path: Path,
    chosen: Plan,
    *,
    prepare: Callable[..., Any],
    options: dict[str, Any],
    settings: Settings,
    sha: Future[str] | None,
    progress: bool,
) -> tuple[Any, dict[str, Any]]:
    """Ingest ``path`` chunk by chunk into a new snapshot; returns (the summed outcome, fields
    for ``IngestResult``: fmt, encoding, crs, sha256, stages)."""
    from geo import ingest as ing

    started = datetime.now()
    t0 = time.perf_counter()
    source = open_chunks(path, spec, chosen.chunk_rows, options.get("sheet"), options.get("encoding"))
    tally = _Tally()
    now = pd.Timestamp(datetime.now())
    spill = db_path.with_name(f".{db_path.name}.spill-{os.getpid()}")
    _remove_dead_spills(db_path)
    timing = {"read": 0.0, "validate": 0.0, "store": 0.0}
    with store.memory_bound(chosen.duckdb_mb, spill), store.writer(db_path) as con:
        began = time.perf_counter()
        con.execute("DELETE FROM rejected WHERE layer = ? AND file = ?", [spec.name, file])
        con.execute("DELETE FROM ingest_notes WHERE layer = ? AND file = ?", [spec.name, file])
        store.begin_stage(con, spec)
        responders = units.load_responders(con) if "units" in spec.field_names else None

        def seen(ids: pa.Array, valid: np.ndarray) -> np.ndarray:
            return store.staged_ids(con, ids, valid)

        with _bar(path.name, source.size, progress) as advance:
            chunks = iter(source.chunks)
            while True:
                t = time.perf_counter()
                raw = next(chunks, None)
                timing["read"] += time.perf_counter() - t
                if raw is None:
                    break
                t = time.perf_counter()
                prep, tally.crs = prepare(spec, raw, settings=settings, file=file, seen=seen, **{
                    k: options.get(k) for k in ("crs", "lon", "lat", "id_column")})
                timing["validate"] += time.perf_counter() - t
                t = time.perf_counter()
                first = tally.chunks == 0
                tally.add(prep, first)
                if first:
                    tally.file_notes = list(raw.notes)
                _store_chunk(con, spec, prep, file, now, tally, responders, ing)
                timing["store"] += time.perf_counter() - t
                advance(source.position() if source.position else None)
        t = time.perf_counter()
        tally.accepted = store.merge_stage(con, spec)
        _finish(con, spec, tally, file, sha, started, now, source, responders, ing)
        timing["store"] += time.perf_counter() - t
        stored = time.perf_counter()
    t_end = time.perf_counter()
    stages = {
        **timing,
        "snapshot": (began - t0) + (t_end - stored),
        "chunks": float(tally.chunks),
    }
    extra = {
        "fmt": source.fmt,
        "encoding": source.encoding,
        "crs": tally.crs,
        "sha256": tally_sha(sha, path),
        "stages": {k: round(v, 3) for k, v in stages.items()},
    }
    return tally, extra


def _remove_dead_spills(db_path: Path) -> None:
    """Remove spill folders of chunked ingests whose process is gone (killed mid-write)."""
    import glob
    import shutil

    for folder in db_path.parent.glob(glob.escape(f".{db_path.name}.spill-") + "*"):
        pid = folder.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:  # alive, another user's
            continue


def tally_sha(sha: Future[str] | None, path: Path) -> str:
    from geo.ingest import file_sha256

    return sha.result() if sha is not None else file_sha256(path)


def _store_chunk(
    con: Any,
    spec: LayerSpec,
    prep: Any,
    file: str,
    now: pd.Timestamp,
    tally: _Tally,
    responders: pd.DataFrame | None,
    ing: Any,
) -> None:
    """Stage one chunk's accepted rows; append its rejected rows and row notes."""
    rows = prep.accepted
    if rows.num_rows:
        cells = prep.cells() if prep.cells is not None else None
        if cells is not None:
            for res, arr in cells.items():
                rows = rows.append_column(store.h3index.cell_column(res), pa.array(arr))
        rows, assigned = ing.assign_grids(con, spec, rows)
        tally.assigned += assigned
        rows = rows.append_column("source_file", store.constant_text(file, rows.num_rows))
        store.stage_rows(con, spec, rows)
        if responders is not None and "units" in rows.column_names:
            _units_chunk(rows, responders, tally)
    if len(prep.rejected):
        store.write_table(con, "rejected", prep.rejected.assign(ingested_at=now), replace=False)
    if len(prep.notes):
        notes = prep.notes.assign(layer=spec.name, file=file, ingested_at=now)
        notes["row_number"] = notes["row_number"].astype("Int64")
        store.write_table(con, "ingest_notes", notes, replace=False)


def _units_chunk(rows: pa.Table, responders: pd.DataFrame, tally: _Tally) -> None:
    """Match one chunk's units; keep the unmatched ones grouped (text, reason → count, rows)."""
    from geo.ingest import ROWS_LISTED

    tally.has_units = True
    frame = rows.select(["id", "units", "source_row"]).to_pandas()
    frame = frame.rename(columns={"source_row": "row"})
    named = frame[frame["units"].notna()]
    if not len(named):
        return
    match = units.match_units(named, responders)
    tally.named += len(match.pairs) + len(match.unmatched)
    tally.matched += len(match.pairs)
    if not len(responders) or not len(match.unmatched):
        return
    bad = match.unmatched.merge(named[["id", "row"]], left_on="incident_id", right_on="id", how="left")
    grouped = bad.groupby(["unit_text", "reason"], sort=False)["row"]
    part = grouped.agg(n="size", rows=lambda r: sorted(int(v) for v in r)[:ROWS_LISTED])
    tally.unit_parts.append(part.reset_index())


def _unit_report(tally: _Tally, responders: pd.DataFrame | None) -> dict[str, Any] | None:
    from geo.ingest import ROWS_LISTED, UNMATCHED_LISTED

    if responders is None or not tally.has_units:
        return None
    report: dict[str, Any] = {
        "responders": len(responders), "named": tally.named, "matched": tally.matched,
        "unmatched": [], "more": 0,
    }
    if not tally.unit_parts:
        return report
    parts = pd.concat(tally.unit_parts, ignore_index=True)
    listed = parts.groupby(["unit_text", "reason"], sort=False).agg(
        n=("n", "sum"), rows=("rows", lambda r: sorted(v for rs in r for v in rs)[:ROWS_LISTED])
    ).reset_index()
    listed = listed.sort_values(["n", "unit_text"], ascending=[False, True], ignore_index=True)
    report["unmatched"] = [
        {"unit_text": str(t), "reason": str(why), "count": int(n), "rows": list(rs)}
        for t, why, n, rs in listed.head(UNMATCHED_LISTED).itertuples(index=False, name=None)
    ]
    report["more"] = max(0, len(listed) - UNMATCHED_LISTED)
    return report


def _finish(
    con: Any,
    spec: LayerSpec,
    tally: _Tally,
    file: str,
    sha: Future[str] | None,
    started: datetime,
    now: pd.Timestamp,
    source: Any,
    responders: pd.DataFrame | None,
    ing: Any,
) -> None:
    """File notes (as ``geo.ingest._store`` words them) and the ingest log row."""
    notes = list(tally.file_notes)
    fields = {f.name: f for f in spec.fields}
    for name in [f.name for f in spec.fields if f.name in tally.value_counts]:
        order = {pair: i for i, pair in enumerate(fields[name].value_aliases)}
        counts = dict(sorted(tally.value_counts[name].items(), key=lambda kv: order.get(kv[0], 0)))
        notes.append(ing.mapped_note(name, counts))
    tally.units = report = _unit_report(tally, responders)
    if tally.accepted:
        if report is not None and report["named"] and not report["responders"]:
            notes.append(
                "数据库中还没有消防站或微型消防站，出动力量未匹配 (no fire stations or micro stations in "
                "the database yet: the units named were not matched; import them, then this file again)"
            )
        left_out = ing._rows_from(con, spec.name, file) - tally.accepted
        if left_out:
            notes.append(
                f"{left_out} 行为此文件以前导入、本次没有的行，已保留 ({left_out} rows an earlier "
                "import of this file stored are not among the rows accepted now; they are kept): "
                "a row edited in a register without ids gets a new id, so give the register an "
                "id column or --id"
            )
    if tally.assigned:
        notes.append(
            f"{tally.assigned} 行的网格/社区/街镇按网格面精确落点补全 (grid, community, town filled from the grid layer)"
        )
    tally.file_notes = notes
    if notes:
        frame = pd.DataFrame({"row_number": None, "id": None, "field": None, "note": notes})
        frame = frame.assign(layer=spec.name, file=file, ingested_at=now)
        frame["row_number"] = frame["row_number"].astype("Int64")
        store.write_table(con, "ingest_notes", frame, replace=False)
    note = f"format {source.fmt}" + (f", encoding {source.encoding}" if source.encoding else "")
    log = pd.DataFrame(
        {
            "file": [file], "sha256": [tally_sha(sha, Path(file))], "layer": [spec.name],
            "crs": [tally.crs], "started_at": [pd.Timestamp(started)],
            "finished_at": [pd.Timestamp(datetime.now())], "rows_read": [tally.rows_read],
            "accepted": [tally.accepted], "rejected": [tally.rejected_rows], "repaired": [0],
            "note": [note],
        }
    )
    store.write_table(con, "ingest_log", log, replace=False)


@contextmanager
def _bar(label: str, total: int, show: bool) -> Iterator[Callable[[int | None], None]]:
    """A tqdm bar over the file's bytes, advanced once per chunk."""
    if not show:
        yield lambda _pos: None
        return
    from tqdm import tqdm

    bar = tqdm(total=total, desc=label, unit="B", unit_scale=True, leave=False)
    done, chunks = 0, 0

    def advance(position: int | None) -> None:
        nonlocal done, chunks
        chunks += 1
        now = min(total, position) if position is not None else done
        bar.set_postfix_str(f"chunk {chunks}")
        bar.update(max(now - done, 0))
        done = now

    try:
        yield advance
    finally:
        bar.close()
