"""Counting by cell, area and month with filters, on the hand-made district (analytics_fixture)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import h3
import pytest
from analytics_fixture import build_fixture

from geo import store
from geo.aggregate import Filter, count_by, count_by_area, count_by_cell, count_by_month, data_as_of
from geo.errors import ValidationError


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory):
    path = build_fixture(tmp_path_factory.mktemp("agg") / "fx.duckdb")
    c = store.connect(path)
    yield c
    c.close()


def test_counts_by_town_grid_and_community(con):
    # 甲镇: H1-H6 and H11 (7); 乙镇: H7-H10 (4)
    assert count_by(con, "hazard", ("town",)).to_dict("records") == [
        {"town": "乙镇", "count": 4}, {"town": "甲镇", "count": 7}]
    grids = count_by_area(con, "hazard", "grid")
    assert dict(zip(grids["area"], grids["count"], strict=True)) == {"G1": 3, "G2": 2, "G3": 2, "G4": 4}
    assert grids["area"].iloc[0] == "G4"  # largest first
    by_two = count_by(con, "hazard", ("town", "community"))
    assert by_two[["community", "count"]].values.tolist() == [["三村", 4], ["一村", 5], ["二村", 2]]


def test_filters_combine(con):
    # 重大: H3, H6, H9; of those in 甲镇: H3, H6; discovered from 2025-04-01: H6
    flt = Filter(severity=("重大",), towns=("甲镇",))
    assert count_by(con, "hazard", (), flt)["count"].item() == 2
    assert count_by(con, "hazard", (), flt.replace(start="2025-04-01"))["count"].item() == 1
    # status 结案 and source 网格巡查 in June 2025: H8 only (H6 closed in June but discovered in May; H9 is 物联感知)
    june = Filter(start=date(2025, 6, 1), end=date(2025, 7, 1), status=("结案",), source=("网格巡查",))
    assert count_by(con, "hazard", ("grid_id",), june).to_dict("records") == [{"grid_id": "G4", "count": 1}]
    # listed for supervision at either level: H3, H5, H9
    listed = Filter(supervision=("街镇挂牌", "区级挂牌"))
    assert count_by(con, "hazard", (), listed)["count"].item() == 3
    assert count_by(con, "hazard", (), Filter(grids=("G1", "G3")))["count"].item() == 5
    assert count_by(con, "hazard", (), Filter(communities=("一村",), category=("堵塞占用生命通道",)))["count"].item() == 2


def test_alarms_are_incidents_filtered_by_kind(con):
    alarms = Filter(kind=("烟感报警", "电动车充电报警"), start="2025-06-24", end="2025-06-26")
    assert count_by(con, "incident", ("town",), alarms).to_dict("records") == [{"town": "甲镇", "count": 2}]
    today = Filter.last_days(1, as_of="2025-06-25 12:00")
    assert count_by(con, "incident", (), today)["count"].item() == 2  # I3 22:00 the day before, I1 08:00


def test_counts_by_cell_are_the_h3_cells_of_the_points(con):
    cells = count_by_cell(con, "hazard", 9)
    assert cells["count"].sum() == 11
    pts = store.query(con, "SELECT lon, lat FROM hazard")
    expected: dict[str, int] = {}
    for lon, lat in pts.itertuples(index=False):
        c = h3.latlng_to_cell(lat, lon, 9)
        expected[c] = expected.get(c, 0) + 1
    assert dict(zip(cells["h3"], cells["count"], strict=True)) == expected
    assert [h3.str_to_int(x) for x in cells["h3"]] == cells["cell"].tolist()
    coarse = count_by_cell(con, "hazard", 7)
    assert coarse["count"].sum() == 11 and len(coarse) <= len(cells)


def test_counts_by_month(con):
    months = count_by_month(con, "hazard", Filter(start="2025-05-01", end="2025-08-01"))
    # May: H6, H7; June: H4, H8, H9; July: H11
    assert months["count"].tolist() == [2, 3, 1]
    assert [m.isoformat()[:7] for m in months["month"].dt.date] == ["2025-05", "2025-06", "2025-07"]
    by_town = count_by_month(con, "hazard", Filter(start="2025-06-01", end="2025-07-01"), by=("town",))
    assert by_town[["town", "count"]].values.tolist() == [["乙镇", 2], ["甲镇", 1]]


def test_bad_filters_say_what_is_wrong(con):
    with pytest.raises(ValidationError, match="严重.*allowed.*一般"):
        count_by(con, "hazard", (), Filter(severity=("严重",)))
    with pytest.raises(ValidationError, match="does not apply to layer 'incident'"):
        count_by(con, "incident", (), Filter(severity=("一般",)))
    with pytest.raises(ValidationError, match="not after start"):
        Filter(start="2025-02-01", end="2025-01-01")
    with pytest.raises(ValidationError, match="not a date"):
        Filter(start="last tuesday")
    with pytest.raises(ValidationError, match="cannot group hazard by 'colour'"):
        count_by(con, "hazard", ("colour",))
    with pytest.raises(ValidationError, match="resolution 6"):
        count_by_cell(con, "hazard", 6)


def test_user_values_are_parameters_not_sql(con):
    evil = "甲镇' OR '1'='1"
    assert count_by(con, "hazard", (), Filter(towns=(evil,)))["count"].item() == 0
    where, params = Filter(towns=(evil,), start="2025-01-01").sql("hazard")
    assert evil not in where and evil in params


def test_data_as_of_is_the_latest_time(con, tmp_path: Path):
    assert data_as_of(con).isoformat() == "2025-07-10T00:00:00"
    assert data_as_of(con, "incident").isoformat() == "2025-06-25T13:00:00"
