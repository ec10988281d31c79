"""Measured response performance (geo.response) on a hand-made district.

Expected figures are worked out by hand from the call table in ``response_fixture`` with the
nearest-rank rule (the ⌈p·n/100⌉-th smallest time), never taken from the code.
"""

from __future__ import annotations

import importlib.util
import json
import math
import random
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from geo import response, store
from geo.aggregate import Filter
from geo.errors import ValidationError
from geo.settings import Settings

_spec = importlib.util.spec_from_file_location("response_fixture", Path(__file__).with_name("response_fixture.py"))
fixture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixture)

MARCH_APRIL = Filter(start="2025-03-01", end="2025-05-01")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    return fixture.build(tmp_path_factory.mktemp("response"))


@pytest.fixture(scope="module")
def db(built: tuple[Path, list[str]]) -> Path:
    return built[0]


def _figures(db: Path, by: str, flt: Filter = MARCH_APRIL, settings: Settings | None = None) -> response.ResponsePerformance:
    con = store.connect(db)
    try:
        return response.response_performance(con, by=by, flt=flt, settings=settings)
    finally:
        con.close()


def _row(frame: pd.DataFrame, column: str, value: str) -> dict:
    rows = frame[frame[column] == value]
    assert len(rows) == 1, (value, frame[column].tolist())
    return rows.iloc[0].to_dict()


def test_bad_rows_are_rejected_by_the_ingest_with_their_reason(built: tuple[Path, list[str]]) -> None:
    db, outputs = built
    report = json.loads(outputs[-1])
    assert (report["rows_read"], report["accepted"], report["rejected"]) == (15, 12, 3)
    assert report["rejected_by_reason"] == {"time_order": 1, "interval_too_long": 1, "unknown_value": 1}
    con = store.connect(db)
    try:
        ids = {r[0] for r in con.execute("SELECT id FROM incident").fetchall()}
    finally:
        con.close()
    assert ids == {f"I{i:02d}" for i in range(1, 13)}  # R1-R3 never reach the figures


def test_per_unit_percentiles_and_shares_by_hand(db: Path) -> None:
    table = _figures(db, "unit").table
    assert list(table["unit_id"]) == ["FS1", "WZ1", "WZ2"]  # I10's unknown first unit and I11 (none) are in no row
    wz1 = _row(table, "unit_id", "WZ1")  # I01-I04 (I02 by name); turnout 30 45 60 90, travel 120 120 150 155
    assert (wz1["layer"], wz1["unit_name"], wz1["calls"]) == ("micro_station", "幸福微站", 4)
    # n = 4: p50 = 2nd smallest, p90 = 4th (a linear rule would give 190 s for total p50)
    assert (wz1["turnout_p50_s"], wz1["turnout_p90_s"]) == (45, 90)
    assert (wz1["travel_p50_s"], wz1["travel_p90_s"]) == (120, 155)
    assert (wz1["total_p50_s"], wz1["total_p90_s"]) == (180, 240)
    assert (wz1["turnout_met"], wz1["turnout_judged"]) == (3, 4)  # 30, 45, 60 ≤ 60 s
    assert (wz1["on_scene_met"], wz1["on_scene_judged"]) == (2, 4)  # 150, 180 ≤ 180 s
    fs1 = _row(table, "unit_id", "FS1")  # I07, I08 (by name), I09 (response_s only)
    assert (fs1["calls"], fs1["turnout_n"], fs1["total_n"]) == (3, 2, 3)
    assert (fs1["total_p50_s"], fs1["total_p90_s"]) == (300, 420)  # 290 300 420: 2nd and 3rd
    assert (fs1["on_scene_met"], fs1["on_scene_judged"]) == (2, 3)  # 290, 300 ≤ 300 s (5 min)
    assert fs1["on_scene_met_share"] == pytest.approx(2 / 3)
    assert (fs1["turnout_met"], fs1["turnout_judged"]) == (1, 2)  # 50 ≤ 60 s, 80 not
    wz2 = _row(table, "unit_id", "WZ2")  # I05 (by name, first of two), I06 (never arrived)
    assert (wz2["calls"], wz2["turnout_p50_s"], wz2["turnout_p90_s"], wz2["total_n"]) == (2, 20, 70, 1)
    assert (wz2["on_scene_met"], wz2["on_scene_judged"], wz2["turnout_met"], wz2["turnout_judged"]) == (1, 1, 1, 2)


def test_district_town_and_month_figures_by_hand(db: Path) -> None:
    result = _figures(db, "town")
    d = result.district
    # 11 calls; turnout of 10: 20 30 40 45 50 60 70 80 90 100 → p50 5th = 50, p90 9th = 90
    assert (d["calls"], d["turnout_n"], d["turnout_p50_s"], d["turnout_p90_s"]) == (11, 10, 50, 90)
    # travel of 9: 80 90 120 120 150 155 240 300 340 → p50 ⌈4.5⌉ = 5th = 150, p90 ⌈8.1⌉ = 9th = 340
    assert (d["travel_n"], d["travel_p50_s"], d["travel_p90_s"]) == (9, 150, 340)
    # total of 10: 100 130 150 180 200 240 290 300 400 420 → 200 and 400
    assert (d["total_n"], d["total_p50_s"], d["total_p90_s"]) == (10, 200, 400)
    assert (d["turnout_met"], d["turnout_judged"], d["on_scene_met"], d["on_scene_judged"]) == (5, 8, 5, 8)
    assert d["on_scene_met_share"] == 0.625
    jia = _row(result.table, "town", "甲镇")  # I01-I04, I07, I09, I11
    assert (jia["calls"], jia["total_p50_s"], jia["total_p90_s"]) == (7, 240, 400)  # 7 totals: 4th and 7th
    assert (jia["turnout_p50_s"], jia["turnout_p90_s"]) == (50, 100)  # 30 45 50 60 90 100: 3rd and 6th
    assert (jia["on_scene_met"], jia["on_scene_judged"], jia["turnout_met"], jia["turnout_judged"]) == (4, 6, 4, 5)
    yi = _row(result.table, "town", "乙镇")  # I05, I06, I08, I10
    assert (yi["calls"], yi["total_p50_s"], yi["total_p90_s"], yi["travel_p50_s"]) == (4, 130, 420, 90)
    assert (yi["on_scene_met"], yi["on_scene_judged"]) == (1, 2)
    trend = result.trend.assign(month=result.trend["month"].dt.strftime("%Y-%m"))
    march, april = _row(trend, "month", "2025-03"), _row(trend, "month", "2025-04")
    assert (march["calls"], march["turnout_p50_s"], march["total_p50_s"], march["total_p90_s"]) == (6, 40, 150, 290)
    assert (march["on_scene_met"], march["on_scene_judged"]) == (4, 5)
    assert (april["calls"], april["turnout_p50_s"], april["turnout_p90_s"], april["total_p50_s"]) == (5, 70, 100, 300)
    assert (april["on_scene_met"], april["on_scene_judged"]) == (1, 3)


def test_worst_calls_unmatched_units_and_counts(db: Path) -> None:
    result = _figures(db, "unit", settings=Settings(response_worst_calls=3))
    assert list(result.worst["id"]) == ["I08", "I11", "I09"]  # 420, 400, 300 s
    assert list(result.worst["unit_id"].fillna("-")) == ["FS1", "-", "FS1"]
    assert list(result.worst["on_scene_met"].astype(object).where(result.worst["on_scene_met"].notna(), None)) == [
        False, None, True]
    assert result.unmatched.to_dict("records") == [{"unit_text": "不存在站", "reason": "unknown", "calls": 1}]
    assert (result.first_unit_unmatched, result.calls_without_unit, result.invalid) == (1, 1, 0)


def test_period_and_town_filters(db: Path) -> None:
    may = _figures(db, "unit", Filter(start="2025-05-01", end="2025-06-01")).table
    assert may[["unit_id", "calls", "total_p50_s"]].values.tolist() == [["WZ1", 1, 60]]  # I12 only
    everything = _figures(db, "month", Filter()).district
    assert everything["calls"] == 12
    yi = _figures(db, "unit", MARCH_APRIL.replace(towns=("乙镇",)))
    assert yi.district["calls"] == 4 and list(yi.table["unit_id"]) == ["FS1", "WZ2"]


def test_targets_are_the_settings(db: Path) -> None:
    strict = Settings(micro_station_minutes=2.5, micro_station_turnout_s=45.0)
    wz1 = _row(_figures(db, "unit", settings=strict).table, "unit_id", "WZ1")
    assert (wz1["on_scene_met"], wz1["turnout_met"]) == (1, 2)  # only 150 ≤ 150 s; 30, 45 ≤ 45 s


def test_impossible_intervals_already_stored_are_left_out_and_counted(copy_db: Path) -> None:
    with store.writer(copy_db) as con:  # a file an older import let through: arrival before rolling
        con.execute("UPDATE incident SET arrived_at = dispatched_at - INTERVAL 10 SECOND WHERE id = 'I01'")
    result = _figures(copy_db, "unit")
    wz1 = _row(result.table, "unit_id", "WZ1")
    assert (wz1["travel_n"], wz1["total_n"], result.invalid) == (3, 4, 1)  # I01's total (20 s) is still valid


@pytest.fixture
def copy_db(db: Path, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "copy.duckdb"
    shutil.copyfile(db, target)
    return target


def test_unknown_grouping_is_refused(db: Path) -> None:
    with pytest.raises(ValidationError, match="use one of"):
        _figures(db, "{{7*7}}")


@pytest.mark.parametrize(("values", "p", "expected"), [
    ([5], 50, 5), ([5], 90, 5), ([1, 2], 50, 1), ([1, 2], 90, 2), ([3, 1, 2], 50, 2),
    ([1, 2, 3, 4], 50, 2), ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90, 9), ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 90, 10),
    ([10, 10, 10, 20], 90, 20), ([7, 1, 1, 1], 50, 1),
])
def test_duckdb_quantile_disc_is_the_nearest_rank_by_hand(values: list[int], p: int, expected: int) -> None:
    con = duckdb.connect()
    got = con.execute(f"SELECT quantile_disc(x, {p / 100!r}) FROM unnest(?) t(x)", [values]).fetchone()[0]
    assert got == expected


def test_duckdb_quantile_disc_matches_the_nearest_rank_definition_on_random_samples() -> None:
    rng = random.Random(4)
    con = duckdb.connect()
    for _ in range(200):
        values = [rng.randint(0, 900) + rng.choice((0, 0.5)) for _ in range(rng.randint(1, 60))]
        for p in response.PERCENTILES:
            rank = max(1, math.ceil(p * len(values) / 100))
            expected = sorted(values)[rank - 1]
            got = con.execute(f"SELECT quantile_disc(x, {p / 100!r}) FROM unnest(?) t(x)", [values]).fetchone()[0]
            assert got == expected, (values, p)


@pytest.mark.parametrize(("seconds", "text"), [(0, "0:00"), (59.4, "0:59"), (60, "1:00"), (185, "3:05"),
                                                (3600, "60:00"), (None, "—"), (float("nan"), "—"), (float("inf"), "—")])
def test_mmss(seconds: float | None, text: str) -> None:
    assert response.mmss(seconds) == text
