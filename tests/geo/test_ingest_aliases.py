"""Value aliases (一级 → 1) and the grid's own id under 网格编号/网格编码, on real files."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import openpyxl
import pandas as pd
import pytest
import shapely

from geo import store
from geo.ingest import ingest_file
from geo.settings import Settings
from layers.base import Field

SETTINGS = Settings()


def rows_of(db: Path, sql: str) -> pd.DataFrame:
    con = store.connect(db)
    try:
        return store.query(con, sql)
    finally:
        con.close()


def test_inspection_class_spellings_map_to_levels_and_are_recorded(
    tmp_path: Path, tmp_db: Path
) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["编号", "场所名称", "场所类型", "排查等级", "风险等级", "经度", "纬度"])
    ws.append(["KP-1", "谷阳菜场", "商场市场", "一级", "高风险", 121.2234, 31.0321])
    ws.append(["KP-2", "出租屋", "自建出租房", "二类", "低", 121.2301, 31.0405])
    ws.append(["KP-3", "仓库", "厂房仓库", "Ⅲ级", "中风险", 121.2415, 31.0288])
    ws.append(["KP-4", "学校", "学校", 2, "低风险", 121.2522, 31.0197])
    ws.append(["KP-5", "医院", "医院", "一级", None, 121.2610, 31.0452])
    ws.append(["KP-6", "宾馆", "宾馆民宿", "四级", None, 121.2500, 31.0400])  # no such level
    path = tmp_path / "重点场所.xlsx"
    wb.save(path)
    result = ingest_file("key_place", path, db=tmp_db, settings=SETTINGS)
    assert (result.accepted, result.rejected) == (5, 1)
    assert result.rejected_by_reason["unknown_value"] == 1  # (and bad_number: 四级 is no integer)
    got = rows_of(tmp_db, "SELECT id, inspection_class, risk_level FROM key_place ORDER BY id")
    assert got["inspection_class"].tolist() == [1, 2, 3, 2, 1]
    assert got["risk_level"].tolist()[:4] == ["高", "低", "中", "低"]
    # Never silent: each mapping and its row count is a note of this ingest.
    notes = rows_of(tmp_db, "SELECT note FROM ingest_notes WHERE layer = 'key_place'")[
        "note"
    ].tolist()
    cls = next(n for n in notes if n.startswith("inspection_class"))
    assert "一级→1 ×2" in cls and "二类→2 ×1" in cls and "Ⅲ级→3 ×1" in cls
    risk = next(n for n in notes if n.startswith("risk_level"))
    assert "高风险→高 ×1" in risk and "低风险→低 ×1" in risk and "中风险→中 ×1" in risk
    assert any(n.startswith("inspection_class") for n in result.notes)
    # The rejected row keeps what the user wrote.
    rej = rows_of(
        tmp_db, "SELECT row_number, field, value, raw FROM rejected WHERE reason = 'unknown_value'"
    )
    assert (rej["row_number"][0], rej["field"][0], rej["value"][0]) == (
        7,
        "inspection_class",
        "四级",
    )
    assert json.loads(rej["raw"][0])["排查等级"] == "四级"


def test_file_without_aliased_values_gets_no_mapping_note(tmp_path: Path, tmp_db: Path) -> None:
    pd.DataFrame(
        {"编号": ["KP-1"], "场所类型": ["学校"], "排查等级": [1], "经度": [121.22], "纬度": [31.03]}
    ).to_csv(tmp_path / "kp.csv", index=False)
    result = ingest_file("key_place", tmp_path / "kp.csv", db=tmp_db, settings=SETTINGS)
    assert result.accepted == 1
    assert not any("value aliases" in n for n in result.notes)


def test_value_aliases_must_map_to_allowed_values() -> None:
    with pytest.raises(ValueError, match="unknown values"):
        Field(
            "status", "str", "状态", "Status", choices=("正常",), value_aliases=(("完好", "良好"),)
        )


@pytest.mark.parametrize("header", ["网格编号", "网格编码"])
def test_grid_number_header_is_the_grid_id(tmp_path: Path, tmp_db: Path, header: str) -> None:
    grids = gpd.GeoDataFrame(
        {
            header: ["SJ-0101", "SJ-0102"],
            "网格名称": ["一网格", "二网格"],
            "街镇": ["岳阳街道"] * 2,
        },
        geometry=[
            shapely.box(121.20, 31.00, 121.25, 31.05),
            shapely.box(121.25, 31.00, 121.30, 31.05),
        ],
        crs=4326,
    )
    path = tmp_path / "网格.gpkg"
    grids.to_file(path)
    result = ingest_file("grid", path, db=tmp_db, settings=SETTINGS)
    assert result.column_map[header] == "id" and result.accepted == 2
    assert rows_of(tmp_db, "SELECT id FROM grid ORDER BY id")["id"].tolist() == [
        "SJ-0101",
        "SJ-0102",
    ]
    # Points are assigned to those ids (a hydrant register without 网格编号 of its own).
    pd.DataFrame(
        {
            "编号": ["H1", "H2"],
            "状态": ["正常", "损坏"],
            "经度": [121.21, 121.27],
            "纬度": [31.01, 31.02],
        }
    ).to_csv(tmp_path / "h.csv", index=False)
    hydrants = ingest_file("hydrant", tmp_path / "h.csv", db=tmp_db, settings=SETTINGS)
    assert hydrants.assigned_to_grid == 2
    got = rows_of(tmp_db, "SELECT id, grid_id, town FROM hydrant ORDER BY id")
    assert got["grid_id"].tolist() == ["SJ-0101", "SJ-0102"] and set(got["town"]) == {"岳阳街道"}
