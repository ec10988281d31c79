"""Per-district figures of the province job, made by the embedded ``geo/`` functions.

One call of ``district_figures`` is one Spark task: the district's partition is restored
into a private DuckDB file (``geo.partition.restore_district``) and the closed loop,
inspection compliance, the scorecard, Gi* hotspots (k-ring weights within the district's own
study area) and coverage (the road graph of that district) come from ``geo.governance``,
``geo.hotspots`` and ``geo.coverage`` exactly as on the district's own dashboard. Nothing
here imports Spark: the same function runs in a test, a notebook or a Spark executor.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from geo import coverage, governance, partition, store
from geo.aggregate import Filter
from geo.coverage_inputs import load_scene
from geo.hotspots import hotspots
from geo.settings import Settings

FIGURES: tuple[str, ...] = (
    "closed_loop_district", "closed_loop_town", "compliance_district", "compliance_town",
    "scorecard_district", "scorecard_town", "hotspots", "coverage_district", "coverage_town",
)


def district_score(loop: pd.DataFrame, insp: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """One row: the town scorecard's indicators and weighted score for the whole district.

    ``loop`` is ``closed_loop(by=())`` over the scorecard year, ``insp`` the district's
    ``inspection_compliance(by=(), per_class=False)``; the score is the town scorecard's
    formula (100 × Σ w·rate / Σ w over the indicators with data, ``scorecard_weights``).
    """
    row: dict[str, Any] = {"discovered": int(loop["discovered"].iloc[0]) if len(loop) else 0}
    get = (lambda c: float(loop[c].iloc[0])) if len(loop) else (lambda c: 0.0)
    disc = get("discovered")
    rates = {
        "rectification_rate": get("closed") / disc if disc else np.nan,
        "on_time_rate": get("closed_on_time") / disc if disc else np.nan,
        "inspection_compliance": float(insp["compliance"].iloc[0]) if len(insp) else np.nan,
        "in_grid_share": (get("general_closed_in_grid") / get("general_closed")
                          if get("general_closed") else np.nan),
        "no_recurrence_rate": (1.0 - get("recurring_places") / get("places_with_hazards")
                               if get("places_with_hazards") else np.nan),
    }
    weights = {k: float(settings.scorecard_weights.get(k, 0.0)) for k in governance.SCORECARD_INDICATORS}
    have = {k: w for k, w in weights.items() if w and not np.isnan(rates[k])}
    total = sum(have.values())
    row |= rates
    row["score"] = 100.0 * sum(rates[k] * w for k, w in have.items()) / total if total else np.nan
    return pd.DataFrame([row])


def _scorecards(con: duckdb.DuckDBPyConnection, as_of: datetime, settings: Settings) -> dict[str, pd.DataFrame]:
    year = governance.scorecard_year(as_of)
    start, end = datetime(year, 1, 1), datetime(year + 1, 1, 1)
    t = min(as_of, end - timedelta(microseconds=1))
    loop = governance.closed_loop(con, (), Filter(start=start, end=end), t, settings)
    insp = governance.inspection_compliance(con, (), t, None, settings, per_class=False)
    score = district_score(loop, insp, settings)
    score.insert(0, "year", year)
    town = governance.town_scorecard(con, year, t, settings)
    return {"scorecard_district": score, "scorecard_town": town}


def _coverage(con: duckdb.DuckDBPyConnection, settings: Settings) -> dict[str, pd.DataFrame]:
    scene = load_scene(con, settings)
    result = coverage.compute_coverage(scene)
    summary = {k: v for k, v in coverage.summary(result).items() if not isinstance(v, (dict, list))}
    return {"coverage_district": pd.DataFrame([summary]),
            "coverage_town": coverage.figures(result, level="town")}


def figures_of(con: duckdb.DuckDBPyConnection, as_of: datetime, settings: Settings) -> dict[str, pd.DataFrame]:
    """Every per-district figure of ``con``'s district database as of ``as_of`` (see FIGURES)."""
    out = {
        "closed_loop_district": governance.closed_loop(con, (), as_of=as_of, settings=settings),
        "closed_loop_town": governance.closed_loop(con, ("town",), as_of=as_of, settings=settings),
        "compliance_district": governance.inspection_compliance(con, (), as_of, settings=settings, per_class=False),
        "compliance_town": governance.inspection_compliance(con, ("town",), as_of, settings=settings, per_class=False),
        "hotspots": hotspots(con, Filter(), settings=settings).table.astype({"cell": np.int64}),
    }
    out |= _scorecards(con, as_of, settings)
    out |= _coverage(con, settings)
    return out


def _ipc(frame: pd.DataFrame, district: str) -> bytes:
    frame = frame.copy()
    frame.insert(0, "district", district)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def district_task(data: str, district: str, as_of: datetime, settings: Settings,
                  workdir: str | None = None) -> dict[str, bytes]:
    """One Spark task: restore ``district`` of ``data``, make its figures, return them as
    Arrow IPC streams (each with a leading ``district`` column) keyed by figure name."""
    tmp = Path(tempfile.mkdtemp(prefix=f"onemap-{district}-", dir=workdir))
    try:
        db = partition.restore_district(data, district, tmp / "district.duckdb")
        con = store.connect(db)
        try:
            figures = figures_of(con, as_of, settings)
        finally:
            con.close()
        return {name: _ipc(frame, district) for name, frame in figures.items()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def from_ipc(payload: bytes) -> pa.Table:
    """An Arrow table back from ``district_task``'s bytes."""
    return pa.ipc.open_stream(payload).read_all()
