"""Ingestion of real files in every supported format into a real DuckDB file."""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
import pyrosm
import pytest
import shapely

from geo import store
from geo.crs import from_wgs84, gcj02_to_wgs84
from geo.errors import CRSError, ReadError
from geo.ingest import ingest_file, ingest_frame
from geo.settings import Settings

SETTINGS = Settings()
# A few real Songjiang (310117) locations, WGS-84.
LON = np.array([121.2234, 121.2301, 121.2415, 121.2522, 121.2610])
LAT = np.array([31.0321, 31.0405, 31.0288, 31.0197, 31.0452])


def hydrant_rows() -> pd.DataFrame:
    """Five hydrants with Chinese headers, as a fire office keeps them."""
    return pd.DataFrame(
        {
            "编号": [f"SJ-XHS-{i:04d}" for i in range(1, 6)],
            "名称": ["人民北路1号", "中山中路消火栓", "谷阳北路", "荣乐东路", "新松江路"],
            "状态": ["正常", "损坏", "正常", "水压不足", "停用"],
            "经度": LON,
            "纬度": LAT,
            "管径": [150, 100, 150, 200, 100],
            "最近检查日期": ["2024-03-05", "2024/3/6", "2024年3月7日", "2024.03.08", ""],
            "所属街道": ["岳阳街道"] * 5,
        }
    )


def rows_of(db: Path, sql: str, params: list | None = None) -> pd.DataFrame:
    con = store.connect(db)
    try:
        return store.query(con, sql, params)
    finally:
        con.close()


def test_gbk_csv_with_chinese_headers(tmp_path: Path, tmp_db: Path) -> None:
    path = tmp_path / "消火栓台账.csv"
    hydrant_rows().to_csv(path, index=False, encoding="gbk")
    result = ingest_file("hydrant", path, db=tmp_db, settings=SETTINGS)
    assert result.encoding == "gb18030"
    assert (result.rows_read, result.accepted, result.rejected) == (5, 5, 0)
    assert result.column_map["经度"] == "lon" and result.column_map["所属街道"] == "town"
    df = rows_of(
        tmp_db,
        "SELECT id, name, status, town, pipe_diameter_mm, last_inspection, lon, lat, source_row "
        "FROM hydrant ORDER BY id",
    )
    assert df["name"].tolist() == hydrant_rows()["名称"].tolist()
    assert df["status"].tolist() == ["正常", "损坏", "正常", "水压不足", "停用"]
    assert df["town"].unique().tolist() == ["岳阳街道"]
    # Four date spellings a Chinese export uses, all the same calendar day + n.
    got = [d.date() if pd.notna(d) else None for d in pd.to_datetime(df["last_inspection"])]
    assert got == [
        dt.date(2024, 3, 5),
        dt.date(2024, 3, 6),
        dt.date(2024, 3, 7),
        dt.date(2024, 3, 8),
        None,
    ]
    np.testing.assert_allclose(df["lon"], LON, atol=1e-12)
    assert df["source_row"].tolist() == [2, 3, 4, 5, 6]
    log = rows_of(tmp_db, "SELECT file, sha256, crs, rows_read, accepted, rejected FROM ingest_log")
    assert log.iloc[0]["file"] == str(path.resolve()) and len(log.iloc[0]["sha256"]) == 64


def test_utf8_bom_tsv_with_gcj02_coordinates(tmp_path: Path, tmp_db: Path) -> None:
    glon, glat = from_wgs84(LON, LAT, "gcj02")
    df = hydrant_rows().assign(经度=glon, 纬度=glat)
    path = tmp_path / "amap_export.tsv"
    path.write_bytes(df.to_csv(index=False, sep="\t").encode("utf-8-sig"))
    result = ingest_file("hydrant", path, db=tmp_db, crs="gcj02", settings=SETTINGS)
    assert result.encoding == "utf-8-sig" and result.accepted == 5
    got = rows_of(tmp_db, "SELECT lon, lat FROM hydrant ORDER BY id")
    # Stored WGS-84 equals the original points (the GCJ-02 inverse is accurate to < 1 cm).
    np.testing.assert_allclose(got["lon"], LON, atol=1e-7)
    np.testing.assert_allclose(got["lat"], LAT, atol=1e-7)
    wlon, _ = gcj02_to_wgs84(glon, glat)
    np.testing.assert_allclose(got["lon"], wlon, atol=1e-12)


def test_xlsx_with_title_row_and_excel_dates(tmp_path: Path, tmp_db: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "说明"
    ws.append(["本表为说明页"])
    data = wb.create_sheet("重点场所")
    data.append(["松江区重点场所台账（2024年）"])  # a merged title row above the header
    data.append(
        ["编号", "场所名称", "场所类型", "排查等级", "最近排查日期", "东经", "北纬", "负责人"]
    )
    data.append(
        ["KP-1", "谷阳菜场", "商场市场", 2, dt.datetime(2024, 5, 1), 121.2234, 31.0321, "张三"]
    )
    data.append(
        [
            "KP-2",
            "老城区出租屋",
            "自建出租房",
            1,
            dt.datetime(2024, 6, 2),
            121.2301,
            31.0405,
            "李四",
        ]
    )
    data.append([None] * 8)  # an empty row is skipped, row numbers keep counting
    data.append(["KP-3", "某某仓库", "仓库", 3, dt.datetime(2024, 7, 3), 121.2415, 31.0288, "王五"])
    path = tmp_path / "重点场所.xlsx"
    wb.save(path)
    result = ingest_file("key_place", path, db=tmp_db, sheet="重点场所", settings=SETTINGS)
    assert (result.accepted, result.rejected) == (2, 1)
    assert result.rejected_by_reason == {"unknown_value": 1}
    df = rows_of(
        tmp_db,
        "SELECT id, name, category, inspection_class, last_inspection FROM key_place ORDER BY id",
    )
    assert df["inspection_class"].tolist() == [2, 1]
    assert df["category"].tolist() == ["商场市场", "自建出租房"]
    assert pd.Timestamp(df["last_inspection"][0]).date() == dt.date(2024, 5, 1)
    rej = rows_of(tmp_db, "SELECT row_number, field, value, raw FROM rejected")
    # Row 6 as Excel shows it (title row 1, header row 2, data 3-4, empty 5, bad row 6).
    assert (
        rej.iloc[0]["row_number"] == 6
        and rej.iloc[0]["field"] == "category"
        and rej.iloc[0]["value"] == "仓库"
    )
    assert json.loads(rej.iloc[0]["raw"])["场所名称"] == "某某仓库"
    assert ingest_file("key_place", path, db=tmp_db, sheet="1", settings=SETTINGS).accepted == 2  # 0-based number
    with pytest.raises(ReadError, match="no sheet '台账'; sheets: 说明, 重点场所"):
        ingest_file("key_place", path, db=tmp_db, sheet="台账", settings=SETTINGS)


def test_zipped_shapefile_in_cgcs2000_gauss_kruger(tmp_path: Path, tmp_db: Path) -> None:
    # EPSG:4549: CGCS2000 3-degree Gauss-Kruger CM 120E; the CRS comes from the .prj file.
    gdf = gpd.GeoDataFrame(
        hydrant_rows()
        .drop(columns=["经度", "纬度", "最近检查日期"])
        .rename(
            columns={
                "编号": "ID",
                "名称": "NAME",
                "状态": "STATUS",
                "管径": "DIAMETER",
                "所属街道": "TOWN",
            }
        ),
        geometry=gpd.points_from_xy(LON, LAT),
        crs=4326,
    ).to_crs(4549)
    shp_dir = tmp_path / "shp"
    shp_dir.mkdir()
    gdf.to_file(shp_dir / "hydrants.shp", encoding="utf-8")
    zpath = tmp_path / "hydrants.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in shp_dir.iterdir():
            zf.write(f, f.name)
    result = ingest_file("hydrant", zpath, db=tmp_db, settings=SETTINGS)
    assert result.crs == "EPSG:4549" and result.accepted == 5
    got = rows_of(tmp_db, "SELECT name, lon, lat FROM hydrant ORDER BY id")
    assert got["name"].tolist()[0] == "人民北路1号"
    np.testing.assert_allclose(got["lon"], LON, atol=1e-7)
    np.testing.assert_allclose(got["lat"], LAT, atol=1e-7)
    with pytest.raises(CRSError, match="projected CRS"):
        ingest_file("hydrant", zpath, db=tmp_db, crs="gcj02", settings=SETTINGS)


def test_geopackage_grids_repair_and_h3_cover(tmp_path: Path, tmp_db: Path) -> None:
    bowtie = shapely.Polygon([(121.20, 31.00), (121.22, 31.02), (121.22, 31.00), (121.20, 31.02)])
    grids = gpd.GeoDataFrame(
        {
            "编号": ["G1", "G2", "G3"],
            "名称": ["一网格", "二网格", "蝴蝶网格"],
            "街镇": ["岳阳街道"] * 3,
            "社区": ["A社区", "B社区", "C社区"],
        },
        geometry=[
            shapely.box(121.22, 31.00, 121.24, 31.02),
            shapely.box(121.24, 31.00, 121.26, 31.02),
            bowtie,
        ],
        crs=4326,
    )
    path = tmp_path / "grids.gpkg"
    grids.to_file(path, layer="grid")
    result = ingest_file("grid", path, db=tmp_db, settings=SETTINGS)
    assert (result.accepted, result.repaired) == (3, 1)
    notes = rows_of(
        tmp_db, "SELECT row_number, id, note FROM ingest_notes WHERE field = 'geometry'"
    )
    assert notes["id"].tolist() == ["G3"] and "make_valid" in notes["note"][0]
    con = store.connect(tmp_db)
    stored = store.read_layer(con, "grid")
    assert stored.geometry.is_valid.all()
    g1 = stored[stored["id"] == "G1"].iloc[0]
    assert g1["area_km2"] == pytest.approx(
        2.2239 * 2.2239 * np.cos(np.radians(31.01)), rel=0.01
    )  # 0.02° x 0.02°
    import h3

    cover = store.query(con, "SELECT cell FROM grid_h3cover WHERE id = 'G1' AND res = 9")["cell"]
    expected = {
        h3.str_to_int(c)
        for c in h3.h3shape_to_cells(h3.geo_to_h3shape(g1.geometry.__geo_interface__), 9)
    }
    assert {int(c) for c in cover} == expected and len(expected) > 10


def test_geojson_hazards_and_grid_assignment(tmp_path: Path, tmp_db: Path) -> None:
    grids = gpd.GeoDataFrame(
        {
            "id": ["G1", "G2"],
            "name": ["一", "二"],
            "town": ["岳阳街道", "永丰街道"],
            "community": ["A", "B"],
        },
        geometry=[
            shapely.box(121.20, 31.00, 121.25, 31.05),
            shapely.box(121.25, 31.00, 121.30, 31.05),
        ],
        crs=4326,
    )
    grids.to_file(tmp_path / "g.geojson")
    ingest_file("grid", tmp_path / "g.geojson", db=tmp_db, settings=SETTINGS)
    hz = gpd.GeoDataFrame(
        {
            "id": ["Z1", "Z2", "Z3"],
            "category": ["堵塞占用生命通道", "违规住人", "其他"],
            "severity": ["一般", "重大", "一般"],
            "status": ["结案", "派遣", "发现"],
            "discovered_at": ["2024-01-02 09:00", "2024-02-03 10:00", "2024-03-04"],
            "closed_at": ["2024-01-05 17:00", None, None],
            "town": [None, None, "手填街道"],
        },
        geometry=gpd.points_from_xy([121.21, 121.27, 121.40], [31.01, 31.02, 31.01]),
        crs=4326,
    )
    hz.to_file(tmp_path / "hz.geojson")
    result = ingest_file("hazard", tmp_path / "hz.geojson", db=tmp_db, settings=SETTINGS)
    assert result.accepted == 3 and result.assigned_to_grid == 2
    df = rows_of(tmp_db, "SELECT id, grid_id, community, town, closed_at FROM hazard ORDER BY id")
    assert df["grid_id"].tolist()[:2] == ["G1", "G2"] and pd.isna(df["grid_id"][2])
    assert df["town"].tolist() == [
        "岳阳街道",
        "永丰街道",
        "手填街道",
    ]  # the file's own value is kept
    assert pd.Timestamp(df["closed_at"][0]) == pd.Timestamp("2024-01-05 17:00")


def test_geoparquet(tmp_path: Path, tmp_db: Path) -> None:
    gdf = gpd.GeoDataFrame(
        {
            "name": ["一号水池", "河道取水点"],
            "kind": ["消防水池", "天然水源取水点"],
            "capacity_m3": [600.0, None],
        },
        geometry=gpd.points_from_xy(LON[:2], LAT[:2]),
        crs=4326,
    )
    path = tmp_path / "water.parquet"
    gdf.to_parquet(path)
    result = ingest_file("water_source", path, db=tmp_db, settings=SETTINGS)
    assert result.accepted == 2 and result.fmt == "parquet"
    df = rows_of(tmp_db, "SELECT id, name, capacity_m3 FROM water_source ORDER BY name")
    assert df["capacity_m3"].tolist()[0] == 600.0
    assert all(i.startswith("water_source-") for i in df["id"])  # no id in the file: content ids


def test_osm_pbf_helsinki_hydrants_and_station(tmp_db: Path) -> None:
    pbf = pyrosm.get_data("helsinki_pbf")
    result = ingest_file("hydrant", pbf, db=tmp_db, settings=SETTINGS)
    assert (result.rows_read, result.accepted, result.rejected) == (37, 37, 0)
    assert any("status" in n for n in result.notes)
    df = rows_of(tmp_db, "SELECT id, status, hydrant_type, pipe_diameter_mm, lon, lat FROM hydrant")
    assert df["id"].str.startswith("osm_node_").all()
    assert set(df["status"]) == {"正常"} and "地下式" in set(df["hydrant_type"])
    diameters = dict(zip(df["id"], df["pipe_diameter_mm"], strict=True))
    assert (
        diameters["osm_node_612037371"] == 300.0 and diameters["osm_node_945709052"] == 150.0
    )  # diameter tags
    assert df["lon"].between(24.9, 25.0).all() and df["lat"].between(60.1, 60.2).all()
    station = ingest_file("fire_station", pbf, db=tmp_db, settings=SETTINGS)
    assert station.accepted == 1
    notes = rows_of(
        tmp_db,
        "SELECT field, note FROM ingest_notes WHERE layer = 'fire_station' AND row_number = 1",
    )
    assert "point on its surface" in notes["note"][0]
    with pytest.raises(ReadError, match="supports the layers"):
        ingest_file("hazard", pbf, db=tmp_db, settings=SETTINGS)


def test_reingest_is_idempotent(tmp_path: Path, tmp_db: Path) -> None:
    df = hydrant_rows()
    df.loc[1, "编号"] = None  # a row without id gets a content id
    df.loc[4, "状态"] = "坏"  # one rejected row
    path = tmp_path / "h.csv"
    df.to_csv(path, index=False)
    first = ingest_file("hydrant", path, db=tmp_db, settings=SETTINGS)
    cols = (
        "id, name, status, lon, lat, h3_r7, h3_r8, h3_r9, h3_r10, source_row, ST_AsText(geom) AS g"
    )
    before = rows_of(tmp_db, f"SELECT {cols} FROM hydrant ORDER BY id")
    rej_before = rows_of(tmp_db, "SELECT row_number, reason, raw FROM rejected")
    second = ingest_file("hydrant", path, db=tmp_db, settings=SETTINGS)
    after = rows_of(tmp_db, f"SELECT {cols} FROM hydrant ORDER BY id")
    pd.testing.assert_frame_equal(before, after)
    pd.testing.assert_frame_equal(
        rej_before, rows_of(tmp_db, "SELECT row_number, reason, raw FROM rejected")
    )
    assert (first.accepted, second.accepted, len(after)) == (4, 4, 4)
    assert len(rows_of(tmp_db, "SELECT * FROM ingest_log")) == 2
    # Same content with the columns in another order → the same content id.
    df[list(reversed(df.columns))].to_csv(tmp_path / "h2.csv", index=False)
    ingest_file("hydrant", tmp_path / "h2.csv", db=tmp_db, settings=SETTINGS)
    assert len(rows_of(tmp_db, "SELECT * FROM hydrant")) == 4
    # An updated status replaces the stored row (upsert by id).
    df.loc[0, "状态"] = "停用"
    df.to_csv(path, index=False)
    ingest_file("hydrant", path, db=tmp_db, settings=SETTINGS)
    assert (
        rows_of(tmp_db, "SELECT status FROM hydrant WHERE id = 'SJ-XHS-0001'")["status"][0]
        == "停用"
    )


def test_ingest_frame_in_a_writer(tmp_db: Path) -> None:
    frame = hydrant_rows().rename(columns={"经度": "X坐标", "纬度": "Y坐标"})
    with store.writer(tmp_db) as con:
        result = ingest_frame(con, "hydrant", frame, source_file="memory:test", settings=SETTINGS)
    assert result.accepted == 5
    assert (
        rows_of(tmp_db, "SELECT count(*) AS n FROM hydrant WHERE source_file = 'memory:test'")["n"][
            0
        ]
        == 5
    )


def test_lon_lat_override_and_missing_coordinate_columns(tmp_path: Path, tmp_db: Path) -> None:
    df = hydrant_rows().rename(columns={"经度": "东坐标E", "纬度": "北坐标N"})
    path = tmp_path / "h.csv"
    df.to_csv(path, index=False)
    with pytest.raises(
        ReadError, match="no coordinate columns found; headers seen: 编号, 名称, 状态, 东坐标E"
    ):
        ingest_file("hydrant", path, db=tmp_db, settings=SETTINGS)
    assert (
        ingest_file(
            "hydrant", path, db=tmp_db, lon="东坐标E", lat="北坐标N", settings=SETTINGS
        ).accepted
        == 5
    )
    with pytest.raises(ReadError, match="column 'lng' .--lon. not found"):
        ingest_file("hydrant", path, db=tmp_db, lon="lng", lat="北坐标N", settings=SETTINGS)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, "file not found"),
        ("broken.xlsx", b"this is not a zip", "not an Excel .xlsx workbook"),
        ("empty.csv", b"", "file is empty"),
        ("data.docx", b"x", "unknown file type '.docx'"),
        ("bad.geojson", b"{not json", "not a readable .geojson file"),
    ],
)
def test_unreadable_files_raise_one_clear_error(
    tmp_path: Path, tmp_db: Path, name: str, content: bytes | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ReadError, match=message) as info:
        ingest_file("hydrant", path, db=tmp_db, settings=SETTINGS)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert not tmp_db.exists()  # nothing was written
