"""Units named by incidents (出动力量): splitting, matching to stations, busy units."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from geo import store
from geo.ingest import ingest_file
from geo.units import busy_units, load_responders, match_units, split_units

RESPONDERS = pd.DataFrame(
    {
        "layer": ["micro_station", "micro_station", "fire_station", "fire_station"],
        "id": ["WZ001", "WZ002", "FS01", "FS02"],
        "name": ["幸福微站", "Happy Station", "城东站", "城东站"],
    }
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("WZ001", ["WZ001"]),
        (" WZ001； 城东站、、 / 城西站 ", ["WZ001", "城东站", "城西站"]),
        ("A;B，C,D/E、F；G", ["A", "B", "C", "D", "E", "F", "G"]),
        ("甲站 \n 乙站", ["甲站", "乙站"]),
        ("城东 消防站", ["城东 消防站"]),  # a space inside a name is not a separator
        ("", []),
        (" ; 、 ", []),
        (None, []),
        (float("nan"), []),
    ],
)
def test_split_units(text: object, expected: list[str]) -> None:
    assert split_units(text) == expected  # type: ignore[arg-type]


def _incidents() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["A", "B", "C", "D", "E"],
            "units": [
                "WZ001；城东站",  # id, then a name two stations share
                "ＷＺ００２ 、 happy station、幸福微站",  # full-width id, name in another case, name
                None,
                "不存在站/FS01/fs02",  # unknown, exact id, id in another case
                "WZ001、幸福微站",  # one unit by id and by name: counted once
            ],
        }
    )


def test_match_units_by_id_then_normalised_name() -> None:
    match = match_units(_incidents(), RESPONDERS)
    got = list(match.pairs[["incident_id", "position", "layer", "unit_id"]].itertuples(index=False, name=None))
    assert got == [
        ("A", 0, "micro_station", "WZ001"),
        ("B", 0, "micro_station", "WZ002"),
        ("B", 2, "micro_station", "WZ001"),
        ("D", 1, "fire_station", "FS01"),
        ("D", 2, "fire_station", "FS02"),
        ("E", 0, "micro_station", "WZ001"),
    ]
    # "happy station" names WZ002, already listed first in B: the unit counts once.
    assert match.pairs.loc[1, "unit_text"] == "ＷＺ００２" and match.pairs.loc[1, "unit_name"] == "Happy Station"
    bad = list(match.unmatched.itertuples(index=False, name=None))
    assert bad == [("A", 1, "城东站", "ambiguous"), ("D", 0, "不存在站", "unknown")]
    summary = match.unmatched_summary()
    assert list(summary["unit_text"]) == ["不存在站", "城东站"] and list(summary["rows"]) == [1, 1]


def test_match_units_without_responders_reports_every_unit_unknown() -> None:
    match = match_units(_incidents(), RESPONDERS.iloc[:0])
    assert match.pairs.empty
    assert set(match.unmatched["reason"]) == {"unknown"} and len(match.unmatched) == 10  # 2 + 3 + 0 + 3 + 2 texts


def test_match_units_hostile_texts_stay_text() -> None:
    hostile = pd.DataFrame(
        {"id": ["X1", "X2", "X3"], "units": ["{{7*7}}；<script>alert(1)</script>", "'; DROP TABLE incident; --", "站" * 5000]}
    )
    match = match_units(hostile, RESPONDERS)  # "/" is a separator, so "</script>" splits
    assert match.pairs.empty
    assert list(match.unmatched["unit_text"]) == [
        "{{7*7}}", "<script>alert(1)<", "script>", "'", "DROP TABLE incident", "--", "站" * 5000,
    ]


def test_busy_units_open_by_status_or_by_missing_clear_time() -> None:
    incidents = _incidents().assign(
        status=["处置中", None, "已处置", None, "待处置"],
        reported_at=pd.to_datetime(["2024-01-01 10:00", "2024-01-01 10:00", "2024-01-01 10:00",
                                    "2024-01-01 10:00", "2024-01-01 12:00"]),
        dispatched_at=pd.to_datetime(["2024-01-01 10:01", None, None, None, None]),
        cleared_at=pd.to_datetime([None, None, None, "2024-01-01 10:30", None]),
    )
    busy = busy_units(incidents, RESPONDERS, datetime(2024, 1, 1, 11))
    got = list(busy[["layer", "unit_id", "incident_id"]].itertuples(index=False, name=None))
    # A: open by status (since rolling 10:01); B: no status, not cleared (since call 10:00);
    # C closed; D cleared 10:30 before 11:00; E reported after 11:00.
    assert got == [
        ("micro_station", "WZ001", "B"),
        ("micro_station", "WZ002", "B"),
        ("micro_station", "WZ001", "A"),
    ]
    assert list(busy["since"]) == [pd.Timestamp("2024-01-01 10:00")] * 2 + [pd.Timestamp("2024-01-01 10:01")]
    later = busy_units(incidents, RESPONDERS, datetime(2024, 1, 1, 12, 30))
    assert ("micro_station", "WZ001", "E") in set(later[["layer", "unit_id", "incident_id"]].itertuples(index=False, name=None))
    earlier = busy_units(incidents, RESPONDERS, datetime(2024, 1, 1, 10, 15))
    assert "D" in set(earlier["incident_id"])  # not cleared yet at 10:15


def test_load_responders_and_match_on_a_real_database(tmp_path: Path, tmp_db: Path) -> None:
    micro = tmp_path / "微型消防站.csv"
    micro.write_text(
        "编号,名称,类型,执勤状态,街镇,经度,纬度\n"
        "WZ001,幸福微站,社区,正常执勤,岳阳街道,121.2234,31.0321\n"
        "WZ002,康乐微站,社区,暂停执勤,岳阳街道,121.2301,31.0405\n",
        encoding="utf-8",
    )
    station = tmp_path / "消防站.csv"
    station.write_text("编号,名称,经度,纬度\nFS01,城东消防救援站,121.25,31.03\n", encoding="utf-8")
    ingest_file("micro_station", micro, db=tmp_db)
    ingest_file("fire_station", station, db=tmp_db)
    con = store.connect(tmp_db, read_only=True)
    try:
        responders = load_responders(con)
    finally:
        con.close()
    assert sorted(responders["id"]) == ["FS01", "WZ001", "WZ002"]
    assert list(responders.columns) == ["layer", "id", "name", "kind", "status", "duty_status", "town", "lon", "lat"]
    row = responders.set_index("id").loc["WZ002"]
    assert (row["layer"], row["duty_status"], row["town"]) == ("micro_station", "暂停执勤", "岳阳街道")
    assert row["lon"] == pytest.approx(121.2301)
    match = match_units(pd.DataFrame({"id": ["I1"], "units": ["城东消防救援站、WZ002；无名站"]}), responders)
    assert list(match.pairs["unit_id"]) == ["FS01", "WZ002"]
    assert list(match.unmatched["unit_text"]) == ["无名站"]


def test_load_responders_on_an_empty_database(tmp_db: Path) -> None:
    with store.writer(tmp_db):
        pass
    con = store.connect(tmp_db, read_only=True)
    try:
        responders = load_responders(con)
    finally:
        con.close()
    assert responders.empty and "duty_status" in responders.columns
