"""Median days per step of the closed loop: the figure equals a pandas computation on the hazard
rows, a reopening through the feed counts, and the report and /review carry the figure."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest

from dashboard.cli import main
from geo import governance, live, store
from geo.aggregate import Filter
from geo.settings import Settings
from layers.hazard import SPEC


def _by_pandas(db: Path, town: str | None = None) -> dict[str, float]:
    con = store.connect(db)
    try:
        frame = con.execute(f"SELECT town, {', '.join(SPEC.time_order)} FROM hazard").df()
    finally:
        con.close()
    if town is not None:
        frame = frame[frame["town"] == town]
    out = {}
    for a, b in governance.STAGES:
        both = frame[frame[a].notna() & frame[b].notna() & (frame[b] >= frame[a])]
        out[governance.stage_column(a, b)] = float(((both[b] - both[a]).dt.total_seconds() / 86400).median())
    return out


def test_median_days_per_step_equal_pandas_on_the_rows(demo_db: Path) -> None:
    con = store.connect(demo_db)
    try:
        whole = governance.stage_days(con).iloc[0]
        by_town = governance.stage_days(con, by=("town",))
    finally:
        con.close()
    for col, value in _by_pandas(demo_db).items():
        assert whole[col] == pytest.approx(value, rel=1e-9)
    town = by_town["town"].iloc[0]
    row = by_town[by_town["town"] == town].iloc[0]
    for col, value in _by_pandas(demo_db, town).items():
        assert row[col] == pytest.approx(value, rel=1e-9)
    assert whole["reopened"] == 0  # the demo's register has no feed history


def test_a_reopening_through_the_feed_counts_and_the_report_shows_the_steps(demo_db: Path, tmp_path: Path,
                                                                             capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "demo.duckdb"
    shutil.copyfile(demo_db, db)
    con = store.connect(db)
    hid, category = con.execute("SELECT id, category FROM hazard WHERE status = '结案' ORDER BY discovered_at DESC, id LIMIT 1").fetchone()
    other = next(c for c in SPEC.field("category").choices if c != category)
    con.close()
    body = {"type": "Feature", "geometry": None, "properties": {"id": hid, "status": "处置", "reopen": True}}
    assert live.submit(db, "hazard", "grid-app", body, Settings()).accepted == 1
    assert live.fold(db) == 1
    con = store.connect(db)
    try:
        assert governance.stage_days(con).iloc[0]["reopened"] == 1
        assert governance.stage_days(con, flt=Filter(category=(other,))).iloc[0]["reopened"] == 0
    finally:
        con.close()
    out = tmp_path / "r.html"
    main(["report", "--db", str(db), "--out", str(out), "--json"])
    summary = {row["label"]: row for row in json.loads(capsys.readouterr().out)["summary"]}
    line = summary["各环节中位天数"]
    con = store.connect(db)
    try:
        first = governance.stage_days(con).iloc[0][governance.stage_column(*governance.STAGES[0])]
    finally:
        con.close()
    assert line["value"].startswith(f"立案 {first:,.1f}")
    page = out.read_text(encoding="utf-8")
    assert "各环节中位天数" in page and "重新打开 1 条" in page


def test_the_review_loop_table_shows_the_steps_of_each_town(demo_db: Path) -> None:
    """The /review closed-loop table, as its callback builds it for the page, per town."""
    import sys

    from dashboard.app import create_app

    create_app(Settings(), str(demo_db), warm=False)
    review = sys.modules["pages.review"]
    start, end = review.default_period()
    callback = getattr(review.update_tables, "__wrapped__", review.update_tables)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "\nThe dash_table.DataTable will be removed", DeprecationWarning)
        boxes = callback(None, "town", start, end, None, None, "zh")
    loop = next(b for b in boxes if getattr(b, "id", None) == "review-loop")
    columns = {c["id"]: c["name"] for c in loop.columns}
    first = governance.stage_column(*governance.STAGES[0])
    assert columns[first].startswith("发现→立案") and columns["reopened"] == "重新打开"
    con = store.connect(demo_db)
    try:
        expected = governance.stage_days(con, by=("town",), flt=review.build_filter(start, end, None, None))
    finally:
        con.close()
    shown = {row["area"]: row[first] for row in loop.data}
    for town, value in zip(expected["town"], expected[first], strict=True):
        assert shown[town] == pytest.approx(round(value, 2))
    assert [label for _, label in review.stage_columns("en")][0].startswith("Discovered→Filed")
