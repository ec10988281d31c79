"""Closed loop, inspection compliance, town scorecard and wall KPIs on the hand-made district.

The rows are listed in analytics_fixture.py; the expected figures are worked out below.
as_of = 2025-06-30 00:00 unless a test says otherwise; H11 (discovered 2025-07-10) is after it.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from analytics_fixture import AS_OF, add_hazards, build_fixture

from geo import store
from geo.aggregate import Filter
from geo.errors import ConfigError, ValidationError
from geo.governance import (
    closed_loop,
    inspection_compliance,
    monthly_flow,
    never_inspected,
    overdue_hazards,
    recurring_places,
    town_scorecard,
    wall_kpis,
)
from geo.settings import Settings


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory):
    path = build_fixture(tmp_path_factory.mktemp("gov") / "fx.duckdb")
    c = store.connect(path)
    yield c
    c.close()


def test_closed_loop_by_town(con):
    loop = closed_loop(con, ("town",), as_of=AS_OF).set_index("town")
    jia, yi = loop.loc["甲镇"], loop.loc["乙镇"]
    # 甲镇: H1-H6. Closed by 06-30: H1 (2 d), H2 (10 d), H5 (4 d), H6 (40 d); open: H3, H4.
    assert jia[["discovered", "closed", "open"]].tolist() == [6, 4, 2]
    assert jia["rectification_rate"] == pytest.approx(4 / 6)
    assert jia["median_days_to_close"] == pytest.approx(7.0)  # (4 + 10) / 2
    assert jia["p90_days_to_close"] == pytest.approx(31.0)  # 10 + 0.7 · (40 − 10)
    # overdue: H3 (deadline 04-30); H4 has no deadline → 06-20 + 15 days = 07-05: not yet
    assert jia["overdue"] == 1 and jia["open_major"] == 1  # H3
    assert jia[["listed_town", "listed_district", "listed_open"]].tolist() == [1, 1, 1]  # H3 街镇, H5 区级 (closed)
    # recurring: P1 (H2 27 days after H1), P4 (H6 21 days after H5); places P1-P4
    assert jia[["recurring_places", "places_with_hazards"]].tolist() == [2, 4]
    assert jia["closed_on_time"] == 3  # H2 closed 02-11 after its 02-05 deadline
    assert jia[["general_closed", "general_closed_in_grid"]].tolist() == [3, 2]  # H1, H2, H5; H2 by 社区
    assert jia["in_grid_share"] == pytest.approx(2 / 3)
    # 乙镇: H7-H10. H9 closed 07-05 is still open on 06-30. Days: H8 1, H10 1.
    assert yi[["discovered", "closed", "open", "overdue", "open_major"]].tolist() == [4, 2, 2, 1, 1]
    assert yi["median_days_to_close"] == pytest.approx(1.0)
    # P5: H7 200 days after H10 (not recurring), H8 12 days after H7 (recurring)
    assert yi[["recurring_places", "places_with_hazards", "listed_district", "listed_open"]].tolist() == [1, 2, 1, 1]
    assert yi["in_grid_share"] == pytest.approx(0.5)  # H8 网格, H10 社区


def test_closed_loop_as_of_an_earlier_day(con):
    # On 2025-04-12: H10, H1, H2, H3 discovered... and H5 (04-10) not yet closed (04-14)
    loop = closed_loop(con, (), as_of=datetime(2025, 4, 12))
    assert loop[["discovered", "closed", "open", "overdue"]].iloc[0].tolist() == [5, 3, 2, 0]


def test_closed_loop_by_month_and_a_window(con):
    months = closed_loop(con, ("month",), as_of=AS_OF)
    assert months["discovered"].tolist() == [1, 1, 1, 1, 1, 2, 3]  # 2024-11, 2025-01 … 2025-06
    assert months["closed"].tolist() == [1, 1, 1, 0, 1, 1, 1]  # June: H8 (H4 open, H9 closed in July)
    june = closed_loop(con, (), Filter(start="2025-06-01", end="2025-07-01"), as_of=AS_OF).iloc[0]
    # H4, H8, H9; H8 recurs after H7 (05-20), which is before the window but within 90 days
    assert june[["discovered", "closed", "recurring_places"]].tolist() == [3, 1, 1]
    with pytest.raises(ValidationError, match="cannot group by 'street'"):
        closed_loop(con, ("street",))


def test_monthly_flow_counts_closing_in_the_closing_month(con):
    flow = monthly_flow(con, as_of=AS_OF)
    got = {m.strftime("%Y-%m"): (d, c) for m, d, c in flow[["month", "discovered", "closed"]].itertuples(index=False)}
    # H6 discovered in May is closed in June; H9's July closing is after as_of
    assert got == {"2024-11": (1, 1), "2025-01": (1, 1), "2025-02": (1, 1), "2025-03": (1, 0),
                   "2025-04": (1, 1), "2025-05": (2, 0), "2025-06": (3, 2)}
    by_town = monthly_flow(con, Filter(start="2025-06-01"), by=("town",), as_of=AS_OF)
    assert by_town[["town", "discovered", "closed"]].values.tolist() == [["乙镇", 2, 1], ["甲镇", 1, 1]]


def test_recurring_places_and_overdue_lists(con):
    rec = recurring_places(con, as_of=AS_OF)
    assert rec["place_id"].tolist()[:1] == ["P5"] and set(rec["place_id"]) == {"P1", "P4", "P5"}
    assert rec.set_index("place_id").loc["P5", ["hazards", "recurrences"]].tolist() == [3, 1]
    short = recurring_places(con, as_of=AS_OF, settings=Settings(recurring_window_days=20))
    assert set(short["place_id"]) == {"P5"}  # only H8 (12 days) is within 20 days
    overdue = overdue_hazards(con, as_of=AS_OF)
    assert overdue["id"].tolist() == ["H3", "H7"]
    assert overdue["days_overdue"].tolist() == [61, 26]  # 04-30 → 06-30; 06-04 (05-20 + 15) → 06-30
    stricter = overdue_hazards(con, as_of=AS_OF, settings=Settings(hazard_deadline_days={"一般": 5, "重大": 60}))
    assert stricter["id"].tolist() == ["H3", "H7", "H4"]  # H4: 06-20 + 5 = 06-25


def test_inspection_compliance_per_class(con):
    insp = inspection_compliance(con, ("town",), as_of=AS_OF).set_index(["town", "inspection_class"])
    # 甲镇: class 1 K1 (06-15 ok), K2 (05-01 > 31 days); class 2 K3 (04-15 within 92); class 3 K4 never
    assert insp.loc[("甲镇", 1), ["places", "inspected_in_interval", "overdue", "compliance"]].tolist() == [2, 1, 1, 0.5]
    assert insp.loc[("甲镇", 2), "compliance"] == 1.0
    assert insp.loc[("甲镇", 3), ["never_inspected", "compliance"]].tolist() == [1, 0.0]
    # 乙镇: K5 05-30 is exactly 31 days before 06-30 (complies); K6 2024-12-01 < 12-29; K7 never
    assert insp.loc[("乙镇", 1), "compliance"] == 1.0
    assert insp.loc[("乙镇", 3), ["overdue", "interval_days"]].tolist() == [1, 183]
    total = inspection_compliance(con, (), as_of=AS_OF, per_class=False)
    assert total[["places", "inspected_in_interval", "never_inspected"]].iloc[0].tolist() == [7, 3, 2]
    grid = inspection_compliance(con, ("grid_id",), as_of=AS_OF, flt=Filter(towns=("乙镇",)), per_class=False)
    assert grid[["grid_id", "places", "compliance"]].values.tolist() == [["G4", 3, pytest.approx(1 / 3)]]
    weekly = inspection_compliance(con, (), as_of=AS_OF, per_class=True,
                                   settings=Settings(inspection_interval_days={"1": 7, "2": 92, "3": 183}))
    assert weekly.set_index("inspection_class").loc[1, "inspected_in_interval"] == 0  # Lujiazui: weekly
    assert never_inspected(con)["id"].tolist() == ["K4", "K7"]


def test_town_scorecard_by_hand(con):
    card = town_scorecard(con, 2025, as_of=AS_OF)
    assert card["town"].tolist() == ["甲镇", "乙镇"] and card["rank"].tolist() == [1, 2]
    jia = card.iloc[0]
    # 甲镇: rect 4/6, on time 3/6, compliance 2/4, in grid 2/3, no recurrence 1 − 2/4
    assert jia["score"] == pytest.approx(30 * 4 / 6 + 25 * 0.5 + 25 * 0.5 + 10 * 2 / 3 + 10 * 0.5)
    yi = card.iloc[1]
    # 乙镇 in 2025: H7, H8, H9 (H10 was 2024): rect 1/3, on time 1/3, compliance 1/3, in grid 1/1, no rec 1 − 1/2
    assert yi["discovered"] == 3
    assert yi["score"] == pytest.approx(30 / 3 + 25 / 3 + 25 / 3 + 10 + 5)
    only_insp = town_scorecard(con, 2025, as_of=AS_OF, settings=Settings(scorecard_weights={"inspection_compliance": 1}))
    assert only_insp.set_index("town")["score"].to_dict() == pytest.approx({"甲镇": 50.0, "乙镇": 100 / 3})
    with pytest.raises(ConfigError, match="unknown.*speed"):
        town_scorecard(con, 2025, settings=Settings(scorecard_weights={"speed": 1}))


def test_wall_kpis_by_hand(con):
    k = wall_kpis(con, as_of="2025-06-25 12:00", settings=Settings(wall_ticker_n=3))
    # open: H3, H4, H7, H9 (discovered 06-25 00:00); major: H3, H9; overdue H3, H7; listed: H3, H9
    assert (k.open_hazards, k.open_major, k.overdue, k.listed_open) == (4, 2, 2, 2)
    assert (k.hazards_today, k.alarms_today) == (1, 1)  # H9; I1 (I2 at 13:00 is after as_of)
    assert k.latest_hazards["id"].tolist() == ["H9", "H4", "H8"]
    assert k.latest_alarms["id"].tolist() == ["I1", "I3"]
    d = k.as_dict()
    assert d["latest_hazards"][0]["discovered_at"] == "2025-06-25T00:00:00" and d["open_major"] == 2
    town = wall_kpis(con, as_of="2025-06-25 12:00", flt=Filter(towns=("乙镇",)))
    assert (town.open_hazards, town.alarms_today) == (2, 0)


def test_wall_kpis_are_fast_on_the_demo(demo_db: Path):
    con = store.connect(demo_db)
    wall_kpis(con)  # warm up
    times = []
    for _ in range(5):
        t = time.perf_counter()
        k = wall_kpis(con)
        times.append(time.perf_counter() - t)
    assert k.open_hazards > 0
    assert sorted(times)[2] < 0.05, times


def test_figures_follow_a_new_snapshot(tmp_path: Path):
    """Structures kept per snapshot (place gaps, key-place columns) are not reused after an ingest."""
    path = build_fixture(tmp_path / "fx.duckdb")
    old = store.connect(path)
    june = Filter(start="2025-06-01", end="2025-07-01")
    assert closed_loop(old, (), june, as_of=AS_OF)["recurring_places"].iloc[0] == 1  # P5 (H8)
    assert inspection_compliance(old, (), AS_OF, per_class=False)["inspected_in_interval"].iloc[0] == 3
    # a new snapshot: H12 at P3 ten days after H4 (recurs), H13 at the new place P9 (does not); K7 inspected
    add_hazards(path, [
        ("H12", "G2", "一般", "立案", "无", None, "2025-06-28 00:00", None, None, "P3"),
        ("H13", "G1", "一般", "立案", "无", None, "2025-06-29 00:00", None, None, "P9"),
    ])
    with store.writer(path) as w:
        w.execute("UPDATE key_place SET last_inspection = DATE '2025-06-01' WHERE id = 'K7'")
    new = store.connect(path)
    loop = closed_loop(new, (), june, as_of=AS_OF).iloc[0]
    assert loop[["discovered", "recurring_places", "places_with_hazards"]].tolist() == [5, 2, 4]  # P3, P5, P6, P9
    assert inspection_compliance(new, (), AS_OF, per_class=False)["inspected_in_interval"].iloc[0] == 4
    assert set(recurring_places(new, june, AS_OF)["place_id"]) == {"P3", "P5"}
    # the old connection still reads its own snapshot
    assert closed_loop(old, (), june, as_of=AS_OF)["recurring_places"].iloc[0] == 1
    assert inspection_compliance(old, (), AS_OF, per_class=False)["inspected_in_interval"].iloc[0] == 3


_PERIODS = {
    "last 30 days": lambda t: Filter(start=t - timedelta(days=30)),
    "last 30 days, general": lambda t: Filter(start=t - timedelta(days=30), severity=("一般",)),
    "60 to 35 days ago": lambda t: Filter(start=t - timedelta(days=60), end=t - timedelta(days=35)),
    "last 200 days": lambda t: Filter(start=t - timedelta(days=200)),
    "all time": lambda t: Filter(),
}


def test_recurrence_from_snapshot_gaps_equals_the_window_on_a_writer(demo_db: Path, copy_demo_db: Path):
    """On a snapshot the gap to the previous hazard at a place comes from a per-snapshot table;
    on a writer's connection from windows over the period (and the recurrence window before it)."""
    reader = store.connect(demo_db)
    as_of = reader.execute("SELECT max(discovered_at) FROM hazard").fetchone()[0] + timedelta(seconds=1)
    assert reader.execute("SELECT count(place_id) FROM hazard").fetchone()[0] > 100
    with store.writer(copy_demo_db) as writer:
        for name, make in _PERIODS.items():
            flt = make(as_of)
            for by in (("town",), ("month",), ()):
                ours = closed_loop(reader, by, flt, as_of=as_of)
                pd.testing.assert_frame_equal(ours, closed_loop(writer, by, flt, as_of=as_of), obj=f"{name} by {by}")
            if name == "last 30 days":
                assert ours["recurring_places"].iloc[0] > 0
            cols = ["place_id", "hazards", "recurrences", "first", "last"]
            pd.testing.assert_frame_equal(recurring_places(reader, flt, as_of)[cols],
                                          recurring_places(writer, flt, as_of)[cols], obj=name)


def test_inspection_compliance_equals_a_grouped_sql_pass(demo_db: Path):
    """The counting pass over per-snapshot key-place codes gives what one SQL GROUP BY gives."""
    con = store.connect(demo_db)
    con_places = con.execute("SELECT count(*), count(DISTINCT town) FROM key_place").fetchone()
    assert con_places[0] > 100 and con_places[1] > 1
    as_of = datetime(2025, 6, 30)
    town = con.execute("SELECT min(town) FROM key_place").fetchone()[0]
    intervals = Settings().inspection_interval_days
    case = " ".join(f"WHEN {int(c)} THEN DATE '{as_of.date() - timedelta(days=int(d))}'" for c, d in intervals.items())
    for by, flt in ((("town",), None), (("grid_id",), Filter(towns=(town,))), (("community", "category"), None)):
        where = "TRUE" if flt is None else "town = ?"
        keys = ", ".join([*by, "inspection_class"])
        ref = con.execute(
            f"""SELECT {keys}, count(*) AS places,
                       count(*) FILTER (WHERE last_inspection >= CASE inspection_class {case} END) AS ok,
                       count(*) FILTER (WHERE last_inspection IS NULL) AS never
                FROM key_place WHERE {where} GROUP BY ALL ORDER BY {keys}""",
            [] if flt is None else [town],
        ).df()
        got = inspection_compliance(con, by, as_of, flt)
        assert got[[*by, "inspection_class"]].values.tolist() == ref[[*by, "inspection_class"]].values.tolist()
        assert got["places"].tolist() == ref["places"].tolist()
        assert got["inspected_in_interval"].tolist() == ref["ok"].tolist()
        assert got["never_inspected"].tolist() == ref["never"].tolist()
        assert np.allclose(got["compliance"], ref["ok"] / ref["places"])


# --------------------------------------------------------------------------- one definition per figure


def test_listed_hazards_are_the_period_s_listed_ones_still_open(con):
    from geo.governance import listed_hazards

    # listed: H3 街镇挂牌 (03-01, open), H5 区级挂牌 (closed 04-14), H9 区级挂牌 (06-25, closed 07-05)
    assert listed_hazards(con, as_of=AS_OF)["id"].tolist() == ["H9", "H3"]  # district level first
    assert listed_hazards(con, as_of=datetime(2025, 7, 6))["id"].tolist() == ["H3"]
    april_on = Filter(start="2025-04-01")
    assert listed_hazards(con, april_on, as_of=AS_OF)["id"].tolist() == ["H9"]  # H3 is before the period
    assert closed_loop(con, (), april_on, as_of=AS_OF)["listed_open"].iloc[0] == 1
    assert listed_hazards(con, as_of=AS_OF, limit=1)["id"].tolist() == ["H9"]


def test_figures_are_taken_as_the_period_ends(con):
    from geo.governance import discovered_count, figures_as_of

    june = Filter(start="2025-06-01", end="2025-07-01")
    now = datetime(2026, 1, 5, 9, 30)
    assert figures_as_of(None, june, now=now) == datetime(2025, 7, 1)
    assert figures_as_of(None, Filter(end="2026-02-01"), now=now) == now  # not later than now
    assert figures_as_of(None, None, now=now) == now
    assert figures_as_of("2025-06-15", june, now=now) == datetime(2025, 6, 15)  # a given moment wins
    # June: H4, H8, H9 discovered; H9 is closed on 07-05, after June ends: open as June ends
    loop = closed_loop(con, (), june).iloc[0]
    assert (loop["discovered"], loop["closed"], loop["listed_open"]) == (3, 1, 1)
    assert discovered_count(con, june) == 3
    # the same moment for every function: as of 07-01 H4 (due 06-20 + 15 days = 07-05) is not overdue yet
    assert overdue_hazards(con, june).empty
    assert overdue_hazards(con, june, as_of="2025-07-06")["id"].tolist() == ["H4"]


def test_default_period_and_scorecard_year(con):
    from geo.governance import default_period, scorecard_year

    period = default_period(con, Settings(review_default_days=30))  # newest hazard: H11, 2025-07-10
    assert (period.start, period.end) == (datetime(2025, 6, 11), datetime(2025, 7, 11))
    assert period.last_day.isoformat() == "2025-07-10" and period.label() == "2025-06-11 – 2025-07-10"
    with pytest.raises(ConfigError, match="review_default_days"):
        default_period(con, Settings(review_default_days=0))
    assert scorecard_year(datetime(2026, 1, 1)) == 2025  # figures as 2025 ends
    assert scorecard_year(datetime(2025, 6, 30, 12)) == 2025


def test_open_is_one_rule_in_sql_and_in_frames(con):
    from geo.governance import closed_sql, open_mask

    as_of = datetime(2025, 6, 30)
    frame = con.execute("SELECT id, status, closed_at FROM hazard ORDER BY id").df()
    in_sql = con.execute(f"SELECT id FROM hazard WHERE NOT {closed_sql()} ORDER BY id", [as_of]).df()
    mask = open_mask(frame["status"], frame["closed_at"], as_of)
    assert frame.loc[mask, "id"].tolist() == in_sql["id"].tolist()
    # H9 is 结案 but closed on 07-05: open on 06-30; H11 is discovered later but has no closing either
    assert set(in_sql["id"]) == {"H3", "H4", "H7", "H9", "H11"}
    odd = pd.DataFrame({"status": ["处置", "结案"], "closed_at": [pd.Timestamp("2025-06-01"), pd.NaT]})
    assert open_mask(odd["status"], odd["closed_at"], as_of).tolist() == [False, False]
