"""Each rejection reason, on a real file: the bad row lands in `rejected`, the good row in the layer."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from geo import store
from geo.ingest import ingest_file
from geo.settings import Settings
from geo.validate import REASONS

GOOD = {
    "编号": "H1",
    "名称": "好栓",
    "状态": "正常",
    "经度": "121.2234",
    "纬度": "31.0321",
    "管径": "150",
    "最近检查日期": "2024-03-05",
    "备注": "",
}
HAZARD = {
    "编号": "Z1",
    "隐患类别": "违规住人",
    "隐患等级": "一般",
    "状态": "结案",
    "经度": "121.2234",
    "纬度": "31.0321",
    "发现时间": "2024-01-02 09:00",
    "立案时间": "2024-01-02 10:00",
    "结案时间": "2024-01-09 10:00",
    "当场整改": "否",
}


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False, encoding="utf-8")
    return path


def rejected(db: Path) -> pd.DataFrame:
    con = store.connect(db)
    try:
        return store.query(
            con,
            "SELECT row_number, field, reason, value, detail, raw FROM rejected ORDER BY row_number",
        )
    finally:
        con.close()


# (reason, layer, bad row changes, crs, settings overrides, expected field)
CASES = [
    ("missing_coordinates", "hydrant", {"经度": ""}, None, {}, "经度,纬度"),
    ("bad_coordinates", "hydrant", {"经度": "东经121度"}, None, {}, "经度,纬度"),
    ("bad_coordinates", "hydrant", {"经度": "221.5"}, None, {}, "经度,纬度"),
    ("swapped_lat_lon", "hydrant", {"经度": "31.0321", "纬度": "121.2234"}, None, {}, "经度,纬度"),
    ("outside_china", "hydrant", {"经度": "24.94", "纬度": "60.17"}, "gcj02", {}, "经度,纬度"),
    (
        "outside_area_of_interest",
        "hydrant",
        {"经度": "121.60", "纬度": "31.20"},
        None,
        {"area_of_interest": [121.0, 30.8, 121.4, 31.2]},
        "经度,纬度",
    ),
    ("missing_required", "hydrant", {"状态": ""}, None, {}, "status"),
    ("unknown_value", "hydrant", {"状态": "良好"}, None, {}, "status"),
    ("bad_number", "hydrant", {"管径": "DN150"}, None, {}, "pipe_diameter_mm"),
    ("bad_date", "hydrant", {"最近检查日期": "去年三月"}, None, {}, "last_inspection"),
    ("duplicate_id", "hydrant", {"编号": "H1", "名称": "另一个栓"}, None, {}, "id"),
    ("bad_bool", "hazard", {"当场整改": "也许"}, None, {}, "on_spot"),
    ("time_order", "hazard", {"结案时间": "2024-01-01 08:00"}, None, {}, "closed_at"),
]


@pytest.mark.parametrize(
    ("reason", "layer", "change", "crs", "overrides", "field"),
    CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)],
)
def test_each_reason_rejects_only_the_bad_row(
    tmp_path: Path,
    tmp_db: Path,
    reason: str,
    layer: str,
    change: dict[str, str],
    crs: str | None,
    overrides: dict,
    field: str,
) -> None:
    good = dict(GOOD if layer == "hydrant" else HAZARD)
    bad = {**good, "编号": good["编号"] + "-bad", **change}
    path = write_csv(tmp_path / "rows.csv", [good, bad])
    settings = Settings().with_overrides(**overrides)
    result = ingest_file(layer, path, db=tmp_db, crs=crs, settings=settings)
    assert (result.rows_read, result.accepted, result.rejected) == (2, 1, 1)
    assert result.rejected_by_reason == {reason: 1}
    rej = rejected(tmp_db)
    assert len(rej) == 1
    row = rej.iloc[0]
    assert (row["row_number"], row["reason"], row["field"]) == (3, reason, field)
    raw = json.loads(row["raw"])
    assert raw["编号"] == bad["编号"]  # the raw row as the user wrote it
    for key, value in change.items():
        assert (raw[key] or "") == value
    assert row["detail"]
    assert reason in REASONS


def test_malformed_csv_row(tmp_path: Path, tmp_db: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(
        "编号,名称,状态,经度,纬度\nH1,好栓,正常,121.2234,31.0321\nH2,坏行,正常,121.2,31.0,多余,列\n"
        "H3,好栓3,正常,121.2240,31.0330\n",
        encoding="utf-8",
    )
    result = ingest_file("hydrant", path, db=tmp_db, settings=Settings())
    assert (result.rows_read, result.accepted, result.rejected) == (3, 2, 1)
    rej = rejected(tmp_db)
    assert rej["reason"].tolist() == ["malformed_row"] and rej["row_number"].tolist() == [3]
    assert "多余" in json.loads(rej["raw"][0])["_text"]
    con = store.connect(tmp_db)
    assert store.query(con, "SELECT source_row FROM hydrant ORDER BY id")[
        "source_row"
    ].tolist() == [2, 4]


def test_geometry_reasons(tmp_path: Path, tmp_db: Path) -> None:
    """missing_geometry, wrong_geometry_type and invalid_geometry (unrepairable) on grid polygons."""
    good = shapely.box(121.20, 31.00, 121.21, 31.01)
    degenerate = shapely.Polygon([(121.2, 31.0), (121.3, 31.0), (121.2, 31.0), (121.2, 31.0)])
    gdf = gpd.GeoDataFrame(
        {"id": ["G1", "G2", "G3", "G4"], "name": ["好", "空", "点", "线状面"]},
        geometry=[good, None, shapely.Point(121.2, 31.0), degenerate],
        crs=4326,
    )
    path = tmp_path / "grids.geojson"
    gdf.to_file(path)
    result = ingest_file("grid", path, db=tmp_db, settings=Settings())
    assert result.accepted == 1
    assert result.rejected_by_reason == {
        "missing_geometry": 1,
        "wrong_geometry_type": 1,
        "invalid_geometry": 1,
    }
    rej = rejected(tmp_db)
    assert dict(zip(rej["row_number"], rej["reason"], strict=True)) == {
        2: "missing_geometry",
        3: "wrong_geometry_type",
        4: "invalid_geometry",
    }
    assert json.loads(rej.iloc[1]["raw"])["geometry"].startswith("POINT")
    con = store.connect(tmp_db)
    assert store.query(con, "SELECT value FROM rejected WHERE reason = 'wrong_geometry_type'")["value"][0] == "Point"


def test_wkt_column_in_csv_for_polygons(tmp_path: Path, tmp_db: Path) -> None:
    rows = [
        {"编号": "G1", "名称": "一", "wkt": shapely.box(121.20, 31.00, 121.21, 31.01).wkt},
        {"编号": "G2", "名称": "二", "wkt": "POLYGON((121 31, oops))"},
    ]
    path = write_csv(tmp_path / "grids.csv", rows)
    result = ingest_file("grid", path, db=tmp_db, settings=Settings())
    assert (result.accepted, result.rejected_by_reason) == (1, {"invalid_geometry": 1})


def test_rejected_rows_are_replaced_on_reingest(tmp_path: Path, tmp_db: Path) -> None:
    bad = {**GOOD, "编号": "H2", "状态": "良好"}
    path = write_csv(tmp_path / "rows.csv", [GOOD, bad])
    ingest_file("hydrant", path, db=tmp_db, settings=Settings())
    assert len(rejected(tmp_db)) == 1
    write_csv(path, [GOOD, {**bad, "状态": "正常"}])  # the user fixed the row
    result = ingest_file("hydrant", path, db=tmp_db, settings=Settings())
    assert (result.accepted, result.rejected) == (2, 0)
    assert len(rejected(tmp_db)) == 0


@pytest.mark.parametrize("text", ["inf", "-inf", "nan", "NaN", "Infinity", "1e400"])
def test_non_finite_numbers_are_rejected_not_stored(
    tmp_path: Path, tmp_db: Path, text: str
) -> None:
    rows = [
        GOOD,
        {**GOOD, "编号": "H2", "经度": text},
        {**GOOD, "编号": "H3", "纬度": "31.05", "管径": text},
    ]
    result = ingest_file(
        "hydrant", write_csv(tmp_path / "h.csv", rows), db=tmp_db, settings=Settings()
    )
    assert (result.accepted, result.rejected) == (1, 2)
    got = rejected(tmp_db)
    assert got[["row_number", "reason"]].values.tolist() == [
        [3, "bad_coordinates"],
        [4, "bad_number"],
    ]
    assert got["value"].tolist()[1] == text and "pipe_diameter_mm" in got["field"].tolist()


def test_a_point_geometry_with_a_nan_ordinate_is_rejected(tmp_path: Path, tmp_db: Path) -> None:
    gdf = gpd.GeoDataFrame(
        {"编号": ["H1", "H2"], "状态": ["正常", "正常"]},
        geometry=[shapely.Point(121.2234, 31.0321), shapely.Point(121.23, float("nan"))],
        crs=4326,
    )
    gdf.to_parquet(tmp_path / "h.parquet")
    result = ingest_file("hydrant", tmp_path / "h.parquet", db=tmp_db, settings=Settings())
    assert (result.accepted, result.rejected) == (1, 1)
    assert rejected(tmp_db)[["row_number", "reason"]].values.tolist() == [[2, "bad_coordinates"]]


def test_geojson_properties_that_are_lists_or_objects(tmp_path: Path, tmp_db: Path) -> None:
    """One list value makes GDAL read the whole column as lists: ["正常"] is 正常, objects are JSON."""
    deep: dict[str, object] = {}
    node = deep
    for _ in range(500):  # deeply nested
        node["a"] = {}
        node = node["a"]  # type: ignore[assignment]
    features = [
        ("H1", "正常", {"x": [1, {"y": "{{7*7}}"}]}),
        ("H2", ["正常"], "二号"),
        ("H3", ["正常", "损坏"], deep),
    ]
    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"编号": i, "状态": status, "名称": name},
                "geometry": {"type": "Point", "coordinates": [121.2 + k / 100, 31.0]},
            }
            for k, (i, status, name) in enumerate(features)
        ],
    }
    path = tmp_path / "h.geojson"
    path.write_text(json.dumps(collection, ensure_ascii=False), encoding="utf-8")
    result = ingest_file("hydrant", path, db=tmp_db, settings=Settings())
    assert (result.accepted, result.rejected) == (2, 1)
    got = rejected(tmp_db)
    assert (got["field"][0], got["reason"][0], got["value"][0]) == (
        "status",
        "unknown_value",
        '["正常", "损坏"]',
    )
