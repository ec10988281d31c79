"""Incident records as a dispatch system exports them (接警/出动/到场/处置完毕时间, 出动力量):
bad sequences rejected with the pair named, over-long intervals rejected, unit names matched
against the stations of the database and the unmatched ones reported."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from dashboard.cli import main
from geo import store
from geo.ingest import ingest_file
from geo.settings import Settings

HEADERS = ["警情编号", "警情类型", "接警时间", "出动时间", "到场时间", "处置完毕时间", "出动力量", "响应时长(秒)", "状态", "经度", "纬度"]
HUGE = "站" * 10_000
# (id, kind, call, rolling, arrival, cleared, units, response_s, status); every outcome known by hand.
ROWS = [
    ("J01", "火灾", "2024-03-05 14:30:00", "2024-03-05 14:31:00", "2024-03-05 14:34:30", "2024-03-05 15:10:00",
     "WZ001；城东消防救援站", "210", "已处置"),                                      # good: 2 units matched
    ("J02", "火灾", "2024-03-05 14:30:00", "", "2024-03-05 14:20:00", "", "WZ001", "", ""),  # arrival before call
    ("J03", "火灾", "2024-03-05 14:30:00", "2024-03-05 14:29:00", "", "", "", "", ""),  # rolling before call
    ("J04", "火灾", "2024-03-05 14:30:00", "2024-03-05 14:35:00", "2024-03-05 14:33:00", "", "", "", ""),  # arrival before rolling
    ("J05", "火灾", "2024-03-05 14:30:00", "2024-03-05 14:31:00", "2024-03-07 14:35:00", "", "", "", ""),  # 2 days on the road
    ("J06", "抢险救援", "2024-03-05 14:30:00", "2024-03-05 14:31:00", "2024-03-05 14:35:00", "2024-03-05 14:00:00",
     "", "", ""),                                                                   # cleared before arrival
    ("J07", "火灾", "2024-03-05 14:30:00", "", "", "", "{{7*7}}、<b>x</b>；'; DROP TABLE incident;--", "", "处置中"),  # hostile units kept
    ("J08", "火灾", "2024-03-05 14:30:00", "inf", "", "", "", "", ""),             # rolling not a time
    ("J09", "火灾", "2024-03-05 14:30:00", "", "", "", "", "-5", ""),              # negative duration
    ("J10", "火灾", "2024年3月6日 9时00分", "2024/3/6 9:01", "2024-03-06 09:03:00", "", "康乐微站、不存在中队、ＷＺ００１", "", "待处置"),
    ("J11", "烟感报警", "2024-03-06 10:00:00", "2024-03-06 10:00:40", "", "", HUGE, "NaN", ""),  # NaN duration
    ("J12", "火灾", "2024-03-06 11:00:00", "", "", "", "不存在中队", "90000", ""),  # duration over a day
    ("J13", "火灾", "2024-03-06 12:00:00", "2024-03-06 12:01:00", "2024-03-06 12:05:00", "2024-03-07 12:05:01",
     "", "", ""),                                                                   # cleared a day + 1 s after arrival
]
EXPECTED_REJECTED = {  # id → (field, reason, words of the detail)
    "J02": ("arrived_at", "time_order", "到场时间 早于 接警时间"),
    "J03": ("dispatched_at", "time_order", "出动时间 早于 接警时间"),
    "J04": ("arrived_at", "time_order", "到场时间 早于 出动时间"),
    "J05": ("arrived_at", "interval_too_long", "出动时间 → 到场时间 超过 86400 秒"),
    "J06": ("cleared_at", "time_order", "处置完毕时间 早于 到场时间"),
    "J08": ("dispatched_at", "bad_date", "出动时间"),
    "J09": ("response_s", "negative_interval", "响应时长(秒) 为负数"),
    "J11": ("response_s", "bad_number", "响应时长(秒)"),
    "J12": ("response_s", "interval_too_long", "响应时长(秒) 超过 86400 秒"),
    "J13": ("cleared_at", "interval_too_long", "到场时间 → 处置完毕时间 超过 86400 秒"),
}
ACCEPTED = ["J01", "J07", "J10"]


def _frame() -> pd.DataFrame:
    lon = [f"{121.22 + i * 0.001:.4f}" for i in range(len(ROWS))]
    frame = pd.DataFrame(ROWS, columns=HEADERS[:-2])
    return frame.assign(经度=lon, 纬度="31.03")


def _responders(tmp_path: Path, db: Path) -> None:
    micro = tmp_path / "微型消防站.csv"
    micro.write_text(
        "编号,名称,经度,纬度\nWZ001,幸福微站,121.2234,31.0321\nWZ002,康乐微站,121.2301,31.0405\n"
        "WZ003,康乐微站,121.2311,31.0415\n",
        encoding="utf-8",
    )
    station = tmp_path / "消防站.csv"
    station.write_text("编号,名称,经度,纬度\nFS01,城东消防救援站,121.25,31.03\n", encoding="utf-8")
    ingest_file("micro_station", micro, db=db)
    ingest_file("fire_station", station, db=db)


def _rejected(db: Path) -> dict[str, tuple[str, str, str]]:
    con = store.connect(db, read_only=True)
    try:
        rows = con.execute("SELECT raw, field, reason, detail FROM rejected WHERE layer = 'incident'").fetchall()
    finally:
        con.close()
    return {json.loads(raw)["警情编号"]: (field, reason, detail) for raw, field, reason, detail in rows}


@pytest.mark.parametrize("suffix", ["csv", "xlsx"])
def test_dispatch_export_rejects_bad_sequences_and_reports_units(tmp_path: Path, tmp_db: Path, suffix: str) -> None:
    _responders(tmp_path, tmp_db)
    path = tmp_path / f"警情.{suffix}"
    if suffix == "csv":
        _frame().to_csv(path, index=False, encoding="gbk")  # dispatch systems export GBK
    else:
        _frame().to_excel(path, index=False)
    result = ingest_file("incident", path, db=tmp_db)
    assert (result.rows_read, result.accepted, result.rejected) == (13, 3, 10)
    assert result.rejected_by_reason == {
        "time_order": 4, "interval_too_long": 3, "bad_date": 1, "negative_interval": 1, "bad_number": 1,
    }
    assert {h: result.column_map[h] for h in ("接警时间", "出动时间", "到场时间", "处置完毕时间", "出动力量")} == {
        "接警时间": "reported_at", "出动时间": "dispatched_at", "到场时间": "arrived_at",
        "处置完毕时间": "cleared_at", "出动力量": "units",
    }
    rejected = _rejected(tmp_db)
    assert set(rejected) == set(EXPECTED_REJECTED)
    for row_id, (field, reason, words) in EXPECTED_REJECTED.items():
        got = rejected[row_id]
        assert got[:2] == (field, reason), row_id
        assert words in got[2], (row_id, got[2])
    # Accepted rows keep every field, hostile text as text.
    con = store.connect(tmp_db, read_only=True)
    try:
        stored = con.execute(
            "SELECT id, kind, reported_at, dispatched_at, arrived_at, cleared_at, units, response_s, status "
            "FROM incident ORDER BY id"
        ).df()
    finally:
        con.close()
    assert list(stored["id"]) == ACCEPTED
    first = stored.iloc[0]
    assert (first["reported_at"], first["dispatched_at"], first["arrived_at"], first["cleared_at"]) == (
        pd.Timestamp("2024-03-05 14:30"), pd.Timestamp("2024-03-05 14:31"),
        pd.Timestamp("2024-03-05 14:34:30"), pd.Timestamp("2024-03-05 15:10"),
    )
    assert (first["units"], first["response_s"], first["status"]) == ("WZ001；城东消防救援站", 210.0, "已处置")
    assert stored.iloc[1]["units"] == "{{7*7}}、<b>x</b>；'; DROP TABLE incident;--"
    assert stored.iloc[2]["dispatched_at"] == pd.Timestamp("2024-03-06 09:01")
    # Units: J01 2 matched; J07 6 unknown (、 ； ; and the "/" of </b> split); J10 康乐微站
    # ambiguous (two micro stations), 不存在中队 unknown, ＷＺ００１ matched (full-width id).
    units = result.units
    assert units is not None
    assert (units["responders"], units["named"], units["matched"]) == (4, 11, 3)
    listed = {(u["unit_text"], u["reason"]): (u["count"], u["rows"]) for u in units["unmatched"]}
    assert listed == {
        ("{{7*7}}", "unknown"): (1, [8]),
        ("<b>x<", "unknown"): (1, [8]),
        ("b>", "unknown"): (1, [8]),
        ("'", "unknown"): (1, [8]),
        ("DROP TABLE incident", "unknown"): (1, [8]),
        ("--", "unknown"): (1, [8]),
        ("康乐微站", "ambiguous"): (1, [11]),
        ("不存在中队", "unknown"): (1, [11]),
    }


def test_a_stricter_interval_setting_rejects_more(tmp_path: Path, tmp_db: Path) -> None:
    path = tmp_path / "警情.csv"
    _frame().iloc[:1].to_csv(path, index=False)
    strict = Settings().with_overrides(response_max_interval_s=1800.0)  # J01: arrival → cleared 35.5 min
    result = ingest_file("incident", path, db=tmp_db, settings=strict)
    assert (result.accepted, result.rejected_by_reason) == (0, {"interval_too_long": 1})
    assert "到场时间 → 处置完毕时间 超过 1800 秒" in _rejected(tmp_db)["J01"][2]


def test_without_responders_the_result_says_so_once(tmp_path: Path, tmp_db: Path) -> None:
    path = tmp_path / "警情.csv"
    _frame().to_csv(path, index=False)
    result = ingest_file("incident", path, db=tmp_db)
    assert result.units is not None and result.units["responders"] == 0 and result.units["unmatched"] == []
    notes = [n for n in result.notes if "还没有消防站或微型消防站" in n]
    assert len(notes) == 1


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().out


def test_cli_text_and_json_list_unmatched_units(
    tmp_path: Path, tmp_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _responders(tmp_path, tmp_db)
    capsys.readouterr()
    path = tmp_path / "警情.csv"
    frame = _frame()
    frame.loc[frame["警情编号"] == "J07", "出动力量"] = HUGE + "、城东消防救援站"
    frame.to_csv(path, index=False)
    code, out = _run(["ingest", "incident", str(path), "--db", str(tmp_db), "--quiet"], capsys)
    assert code == 0
    assert "出动力量 units: 匹配 matched 4 / 7" in out
    assert "'不存在中队' 未找到 unknown ×1 (rows 11)" in out
    assert "'康乐微站' 重名 ambiguous ×1 (rows 11)" in out
    assert f"'{'站' * 40}…(10000 chars)' 未找到 unknown ×1 (rows 8)" in out  # a huge name is cut in text
    assert "时间间隔超过上限 (interval_too_long): 3" in out and "时长为负 (negative_interval): 1" in out
    code, out = _run(["ingest", "incident", str(path), "--db", str(tmp_db), "--json"], capsys)
    data = json.loads(out)
    assert code == 0 and data["units"]["matched"] == 4
    assert {"unit_text": HUGE, "reason": "unknown", "count": 1, "rows": [8]} in data["units"]["unmatched"]
