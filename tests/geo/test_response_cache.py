"""Response figures from the per-snapshot cache (geo.response): right for random calls, never stale.

A district of random calls (times to the microsecond, units by id, by name, full-width, by an
ambiguous or unknown name or none, calls without times, impossible intervals stored by an older
import, calls replaced by a later ingest so row ids have gaps) is written to a real DuckDB file.
Every figure is compared with a reference written straight from the definitions: per group the
sorted times and the ⌈p·n/100⌉-th of them (integers), the shares met, the slowest calls, the
unmatched unit texts. Nothing is taken from the code under test.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geo import response, store
from geo.aggregate import Filter
from geo.errors import ValidationError
from geo.settings import Settings

US = 1_000_000
TOWNS = ("甲镇", "乙镇", "丙镇")
STATIONS = pd.DataFrame({"id": ["FS1", "FS2"], "name": ["城东消防站", "城西消防站"], "kind": "消防救援站",
                         "status": "在役", "lon": [121.20, 121.30], "lat": [31.00, 31.10]})
MICRO = pd.DataFrame({"id": ["WZ1", "WZ2", "WZ3", "WZ4"],
                      "name": ["幸福微站", "和平微站", "同名微站", "同名微站"],
                      "kind": "社区", "status": "在用", "lon": [121.21, 121.22, 121.23, 121.24],
                      "lat": [31.01, 31.02, 31.03, 31.04]})
# first unit text → (layer, id) it matches, or the reason it matches none
TEXTS: dict[str, tuple[str, str]] = {
    "FS1": ("fire_station", "FS1"), "城西消防站": ("fire_station", "FS2"), "WZ1": ("micro_station", "WZ1"),
    "WZ2": ("micro_station", "WZ2"),
    "和平微站": ("micro_station", "WZ2"), "ＷＺ３": ("micro_station", "WZ3"), "wz4": ("micro_station", "WZ4"),
    "同名微站": ("ambiguous", ""), "不存在站": ("unknown", ""), "' OR 1=1 --": ("unknown", ""),
    "{{7*7}}": ("unknown", ""),
}
TARGETS = {"micro_station": (60 * US, 180 * US), "fire_station": (60 * US, 300 * US)}  # default settings
LIMIT = 86_400 * US  # response_max_interval_s


@dataclass
class Call:
    """One stored call, as the reference sees it (times in µs since the epoch, None when empty)."""

    id: str
    call: int
    rolled: int | None
    arrived: int | None
    legacy_s: float | None
    units: str | None
    town: str | None

    def first(self) -> str | None:
        parts = [p.strip() for p in (self.units or "").replace("、", "；").split("；")]
        return next((p for p in parts if p), None)

    def unit(self) -> tuple[str, str] | None:
        hit = TEXTS.get(self.first() or "", ("none", ""))
        return hit if hit[0] in TARGETS else None

    def times(self) -> dict[str, int | None]:
        """turnout, travel, total µs; a time out of [0, LIMIT] is None (left out)."""
        raw = {"turnout": None if self.rolled is None else self.rolled - self.call,
               "travel": None if self.rolled is None or self.arrived is None else self.arrived - self.rolled,
               "total": (self.arrived - self.call) if self.arrived is not None else
               (round(self.legacy_s * US) if self.legacy_s is not None else None)}
        return {k: v if v is not None and 0 <= v <= LIMIT else None for k, v in raw.items()}

    def invalid(self) -> bool:
        raw = {"turnout": self.rolled is not None, "travel": self.rolled is not None and self.arrived is not None,
               "total": self.arrived is not None or self.legacy_s is not None}
        return any(raw[k] and v is None for k, v in self.times().items())


def _random_calls(rng: np.random.Generator, n: int, prefix: str) -> list[Call]:
    start = int(pd.Timestamp("2025-01-01").value // 1000)
    texts = [*TEXTS, None, "；", "  "]
    calls = []
    for k in range(n):
        call = start + int(rng.integers(0, 150 * 86_400 * US))
        kind = rng.random()
        rolled = call + int(rng.integers(0, 200 * US)) if kind > 0.1 else None
        arrived = rolled + int(rng.integers(0, 600 * US)) if rolled is not None and kind > 0.2 else None
        legacy = float(rng.integers(30, 900)) + 0.25 if rolled is None and rng.random() < 0.7 else None
        first = texts[int(rng.integers(0, len(texts)))]
        units = first if first is None or rng.random() < 0.6 else f"{first}、WZ2；FS1"
        town = None if rng.random() < 0.1 else TOWNS[int(rng.integers(0, len(TOWNS)))]
        calls.append(Call(f"{prefix}{k:04d}", call, rolled, arrived, legacy, units, town))
    return calls


def _frame(calls: list[Call]) -> pd.DataFrame:
    def ts(values: list[int | None]) -> pd.Series:
        return pd.to_datetime(pd.Series([v if v is not None else pd.NA for v in values], dtype="Int64"), unit="us")

    return pd.DataFrame({
        "id": [c.id for c in calls], "kind": "火灾", "reported_at": ts([c.call for c in calls]),
        "dispatched_at": ts([c.rolled for c in calls]), "arrived_at": ts([c.arrived for c in calls]),
        "units": pd.Series([c.units for c in calls], dtype=object),
        "response_s": [np.nan if c.legacy_s is None else c.legacy_s for c in calls],
        "status": "已处置", "town": pd.Series([c.town for c in calls], dtype=object),
        "lon": 121.25, "lat": 31.05,
    })


def _spoil(con, calls: list[Call], rng: np.random.Generator) -> None:
    """Impossible intervals an older import let through: arrival before rolling, a two-day turnout."""
    timed = [c for c in calls if c.arrived is not None]
    for c in rng.choice(np.array(timed, dtype=object), 6, replace=False):
        c.arrived = c.rolled - 10 * US
        con.execute("UPDATE incident SET arrived_at = dispatched_at - INTERVAL 10 SECOND WHERE id = ?", [c.id])
    for c in rng.choice(np.array(timed, dtype=object), 4, replace=False):
        c.rolled = c.call + 2 * LIMIT
        con.execute("UPDATE incident SET dispatched_at = reported_at + INTERVAL 2 DAY WHERE id = ?", [c.id])


@pytest.fixture(scope="module")
def district(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Call]]:
    """The random district: 400 calls, then 60 of them replaced by a second ingest and 5 deleted."""
    rng = np.random.default_rng(15)
    db = tmp_path_factory.mktemp("response_cache") / "random.duckdb"
    calls = _random_calls(rng, 400, "C")
    with store.writer(db, fresh=True) as con:
        store.write_layer(con, "fire_station", STATIONS)
        store.write_layer(con, "micro_station", MICRO)
        store.write_layer(con, "incident", _frame(calls))
    again = _random_calls(rng, 60, "C")  # same ids C0000-C0059: the upsert replaces those rows
    with store.writer(db) as con:
        store.write_layer(con, "incident", _frame(again))
        calls[:60] = again
        _spoil(con, calls, rng)
        gone = {c.id for c in calls[100:400:60]}  # deleted rows leave row id gaps
        con.execute(f"DELETE FROM incident WHERE id IN ({', '.join('?' for _ in gone)})", sorted(gone))
    return db, [c for c in calls if c.id not in gone]


# --------------------------------------------------------------------------- the reference


def _rank(p: int, n: int) -> int:
    """⌈p·n/100⌉ (at least 1) with exact fractions."""
    return max(1, math.ceil(Fraction(p * n, 100)))


def _reference_figures(calls: list[Call]) -> dict:
    out: dict = {"calls": len(calls)}
    for m in response.MEASURES:
        values = sorted(v for c in calls if (v := c.times()[m]) is not None)
        out[f"{m}_n"] = len(values)
        for p in response.PERCENTILES:
            out[f"{m}_p{p}_s"] = values[_rank(p, len(values)) - 1] / US if values else math.nan
    for kind, measure, target in (("turnout", "turnout", 0), ("on_scene", "total", 1)):
        judged = [c for c in calls if c.unit() and c.times()[measure] is not None]
        met = [c for c in judged if c.times()[measure] <= TARGETS[c.unit()[0]][target]]
        out[f"{kind}_met"], out[f"{kind}_judged"] = len(met), len(judged)
        out[f"{kind}_met_share"] = len(met) / len(judged) if judged else math.nan
    return out


def _month(c: Call) -> pd.Timestamp:
    return pd.Timestamp(c.call, unit="us").to_period("M").to_timestamp()


def _kept(calls: list[Call], flt: Filter) -> list[Call]:
    start = None if flt.start is None else pd.Timestamp(flt.start).value // 1000
    end = None if flt.end is None else pd.Timestamp(flt.end).value // 1000
    return [c for c in calls if (start is None or c.call >= start) and (end is None or c.call < end)
            and (not flt.towns or c.town in flt.towns)]


def _same(got: dict, expected: dict, label: str) -> None:
    for key, value in expected.items():
        have = got[key]
        if isinstance(value, float) and math.isnan(value):
            assert have is None or math.isnan(have), (label, key, have)
        else:
            assert have == value, (label, key, have, value)


def _groups(calls: list[Call], by: str) -> dict:
    groups: dict = defaultdict(list)
    for c in calls:
        if by == "unit":
            if c.unit():
                groups[c.unit()].append(c)
        elif by == "town":
            groups[c.town].append(c)
        else:
            groups[_month(c)].append(c)
    return groups


def _key(row: dict, by: str):
    if by == "unit":
        return (row["layer"], row["unit_id"])
    if by == "town":
        return None if not isinstance(row["town"], str) else row["town"]
    return pd.Timestamp(row["month"])


def _check(result: response.ResponsePerformance, calls: list[Call], by: str, flt: Filter) -> None:
    kept = _kept(calls, flt)
    _same(result.district, _reference_figures(kept), "district")
    for name, frame, grouping in (("table", result.table, by), ("trend", result.trend, "month")):
        groups = _groups(kept, grouping)
        keys = [_key(row, grouping) for row in frame.to_dict("records")]
        assert set(keys) == set(groups), (name, keys, list(groups))
        for row in frame.to_dict("records"):
            _same(row, _reference_figures(groups[_key(row, grouping)]), f"{name} {_key(row, grouping)}")
        if grouping != "town":
            assert keys == sorted(keys), name  # units by (layer, id), months in order
        else:
            assert keys == sorted(k for k in keys if k is not None) + [None] * (None in keys)
    timed = sorted((c for c in kept if c.times()["total"] is not None), key=lambda c: (-c.times()["total"], c.call))
    assert list(result.worst["id"]) == [c.id for c in timed[:Settings().response_worst_calls]]
    missed = defaultdict(int)
    for c in kept:
        if c.first() in TEXTS and TEXTS[c.first()][0] in ("unknown", "ambiguous"):
            missed[(c.first(), TEXTS[c.first()][0])] += 1
    expected = sorted(missed.items(), key=lambda kv: (-kv[1], kv[0][0]))
    assert [(r["unit_text"], r["reason"], r["calls"]) for r in result.unmatched.to_dict("records")] == [
        (text, reason, n) for (text, reason), n in expected]
    assert result.invalid == sum(c.invalid() for c in kept)
    assert result.calls_without_unit == sum(not (c.units or "").strip() for c in kept)
    assert result.first_unit_unmatched == sum(bool((c.units or "").strip()) and c.unit() is None for c in kept)


FILTERS = {
    "all": Filter(),
    "february-march": Filter(start="2025-02-01", end="2025-04-01"),
    "one town": Filter(towns=("乙镇",)),
    "town and period": Filter(start="2025-01-15T06:30", end="2025-05-01", towns=("甲镇", "丙镇")),
    "no call": Filter(start="2019-01-01", end="2019-02-01"),
    "sql-looking town": Filter(towns=("' OR 1=1 --",)),
}


@pytest.mark.parametrize("by", response.BY)
@pytest.mark.parametrize("name", list(FILTERS))
def test_random_calls_against_the_reference(district: tuple[Path, list[Call]], by: str, name: str) -> None:
    db, calls = district
    con = store.connect(db)
    try:
        for _ in range(2):  # the first call may build the cache, the second reads it
            _check(response.response_performance(con, by=by, flt=FILTERS[name]), calls, by, FILTERS[name])
    finally:
        con.close()


def test_the_district_exercises_row_id_gaps_and_every_unit_case(district: tuple[Path, list[Call]]) -> None:
    db, calls = district
    con = store.connect(db)
    try:
        rowids = np.sort(con.execute("SELECT rowid FROM incident").fetchnumpy()["rowid"])
        result = response.response_performance(con, by="unit")
    finally:
        con.close()
    assert rowids[-1] >= len(rowids)  # deleted rows left gaps: positions come from row ids
    assert set(result.unmatched["reason"]) == {"unknown", "ambiguous"}
    assert {"WZ3", "WZ4", "FS2"} <= set(result.table["unit_id"])  # full-width and case-folded ids, a name
    assert result.invalid >= 6 and result.calls_without_unit > 0 and result.first_unit_unmatched > 0


# --------------------------------------------------------------------------- never stale


def _table_of(db: Path, by: str = "month", settings: Settings | None = None) -> response.ResponsePerformance:
    con = store.connect(db)
    try:
        return response.response_performance(con, by=by, settings=settings)
    finally:
        con.close()


def _equal(a: response.ResponsePerformance, b: response.ResponsePerformance) -> None:
    for name in ("table", "trend", "worst", "unmatched"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_dtype=True, obj=name)
    assert a.district.keys() == b.district.keys()
    assert all(a.district[k] == b.district[k] or (a.district[k] != a.district[k] and b.district[k] != b.district[k])
               for k in a.district)
    assert (a.invalid, a.calls_without_unit, a.first_unit_unmatched) == (b.invalid, b.calls_without_unit,
                                                                         b.first_unit_unmatched)


def test_cached_figures_equal_a_fresh_computation(district: tuple[Path, list[Call]]) -> None:
    db, _ = district
    for by in response.BY:
        warm = _table_of(db, by)
        again = _table_of(db, by)
        assert response._CALLS.cache.snapshots()  # kept for the snapshot
        response._CALLS.clear()
        fresh = _table_of(db, by)  # built anew from the database
        _equal(warm, fresh)
        _equal(again, fresh)


def test_other_targets_give_their_own_figures_and_back(district: tuple[Path, list[Call]]) -> None:
    db, calls = district
    strict = Settings(micro_station_minutes=2.0, fire_station_turnout_s=30.0, response_max_interval_s=500.0)
    before, tight, after = _table_of(db, "unit"), _table_of(db, "unit", strict), _table_of(db, "unit")
    _equal(before, after)
    assert tight.district["on_scene_met"] < before.district["on_scene_met"]
    assert tight.district["turnout_met"] < before.district["turnout_met"]
    assert tight.invalid > before.invalid  # intervals over 500 s are left out under that setting


def test_an_ingest_gives_new_figures_not_the_cached_ones(tmp_path: Path, district: tuple[Path, list[Call]]) -> None:
    source, calls = district
    db = tmp_path / "copy.duckdb"
    db.write_bytes(source.read_bytes())
    old_con = store.connect(db)
    try:
        before = response.response_performance(old_con, by="town")
        rng = np.random.default_rng(99)
        added = _random_calls(rng, 50, "N")
        with store.writer(db) as con:
            store.write_layer(con, "incident", _frame(added))
            con.execute("DELETE FROM incident WHERE id = ?", [calls[-1].id])
        now = [*calls[:-1], *added]
        after = _table_of(db, "town")
        assert after.district["calls"] == before.district["calls"] + 49
        _check(after, now, "town", Filter())
        response._CALLS.clear()
        _equal(after, _table_of(db, "town"))
        # a reader still on the old snapshot keeps its own figures
        _equal(before, response.response_performance(old_con, by="town"))
    finally:
        old_con.close()


# --------------------------------------------------------------------------- the percentile rule


def test_nearest_rank_is_the_ceiling_rank_for_every_percent_and_size() -> None:
    for n in range(1, 120):
        values = np.arange(1, n + 1) * 10
        for p in range(0, 101):
            assert response.nearest_rank(values, [n], p)[0] == values[_rank(p, n) - 1], (p, n)
    # where a float p/100·n lands a hair above a whole number, a float ceiling is one rank off
    assert math.ceil(0.28 * 25) == 8 and _rank(28, 25) == 7
    assert response.nearest_rank(np.arange(1, 26), [25], 28)[0] == 7


def test_nearest_rank_per_group_and_empty_groups() -> None:
    ordered = np.array([3, 5, 9, 1, 2, 4, 8, 16])
    assert response.nearest_rank(ordered, [3, 0, 5], 50).tolist()[0::2] == [5, 4]
    assert math.isnan(response.nearest_rank(ordered, [3, 0, 5], 50)[1])
    assert response.nearest_rank(ordered, [3, 0, 5], 90, empty=-1).tolist() == [9, -1, 16]
    assert response.nearest_rank(np.array([], dtype=np.int64), [0, 0], 50, empty=-1).tolist() == [-1, -1]


@pytest.mark.parametrize("p", [101, -1, 0.5, True, float("nan"), "50", None])
def test_nearest_rank_refuses_what_is_not_a_percent(p) -> None:
    with pytest.raises(ValueError, match="integer percent"):
        response.nearest_rank(np.arange(4), [4], p)


def test_nearest_rank_refuses_sizes_that_do_not_add_up() -> None:
    with pytest.raises(ValueError, match="sum to"):
        response.nearest_rank(np.arange(4), [2, 3], 50)


def test_a_hostile_kind_is_refused_before_any_figure(district: tuple[Path, list[Call]]) -> None:
    db, _ = district
    con = store.connect(db)
    try:
        with pytest.raises(ValidationError, match="not allowed"):
            response.response_performance(con, by="unit", flt=Filter(kind=("{{7*7}}",)))
    finally:
        con.close()
