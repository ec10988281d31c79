"""Row ids: a register's own id column (消火栓编号, 隐患编号, …), ``--id``, and content ids
that do not depend on the source CRS.

An edited register imported again must update its rows, not store them twice; the same
records from a Gauss-Kruger shapefile and from a WGS-84 GeoJSON must get the same ids.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from dashboard.cli import main
from geo import store
from geo.ingest import ingest_file
from geo.settings import Settings
from layers.base import LAT_ALIASES, LON_ALIASES, normalise_header
from layers.registry import LAYERS

SETTINGS = Settings()
LON = [121.2234, 121.2301, 121.2415]
LAT = [31.0321, 31.0405, 31.0288]

# Per layer: the register's own id header and the required columns of three rows.
REGISTERS: dict[str, tuple[str, dict[str, list[object]]]] = {
    "hydrant": ("消火栓编号", {"状态": ["正常", "损坏", "正常"]}),
    "water_source": ("水源编号", {"水源类型": ["消防水池", "取水码头", "消防水鹤"]}),
    "micro_station": ("微站编号", {"名称": ["甲站", "乙站", "丙站"]}),
    "fire_station": ("消防站编号", {"名称": ["松江站", "泗泾站", "九亭站"]}),
    "key_place": (
        "场所编号",
        {"场所类型": ["学校", "医院", "九小场所"], "排查等级": [3, 3, 2]},
    ),
    "hazard": (
        "隐患编号",
        {
            "隐患类别": ["其他", "其他", "违规住人"],
            "隐患等级": ["一般", "重大", "一般"],
            "状态": ["发现", "立案", "结案"],
            "发现时间": ["2024-03-01 09:00", "2024-03-02 10:00", "2024-03-03 11:00"],
            # The hazard's place is a different column: 场所编号 is place_id here.
            "场所编号": ["KP-1", "KP-2", "KP-1"],
        },
    ),
    "incident": (
        "警情编号",
        {"警情类型": ["火灾", "烟感报警", "其他"], "报警时间": ["2024-03-01 09:00"] * 3},
    ),
}


def rows_of(db: Path, sql: str) -> pd.DataFrame:
    con = store.connect(db)
    try:
        return store.query(con, sql)
    finally:
        con.close()


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def register(id_header: str, columns: dict[str, list[object]]) -> pd.DataFrame:
    """Three rows with a 序号 (row serial, not an id), the register's id, coordinates and remarks."""
    return pd.DataFrame(
        {
            "序号": [1, 2, 3],
            id_header: ["R-001", "R-002", "R-003"],
            **columns,
            "经度": LON,
            "纬度": LAT,
            "备注": ["", "", ""],
        }
    )


@pytest.mark.parametrize("layer", list(REGISTERS))
def test_an_edited_register_updates_its_rows(tmp_path: Path, tmp_db: Path, layer: str) -> None:
    id_header, columns = REGISTERS[layer]
    first = register(id_header, columns)
    first.to_csv(tmp_path / "v1.csv", index=False)
    result = ingest_file(layer, tmp_path / "v1.csv", db=tmp_db, settings=SETTINGS)
    assert result.column_map[id_header] == "id" and result.accepted == 3
    # The register is edited: one remark changes and the rows are re-sorted (序号 renumbered).
    edited = first.assign(备注=["", "已复核", ""]).iloc[[2, 0, 1]].assign(序号=[1, 2, 3])
    edited.to_csv(tmp_path / "v2.csv", index=False)
    ingest_file(layer, tmp_path / "v2.csv", db=tmp_db, settings=SETTINGS)
    got = rows_of(tmp_db, f"SELECT id, remark FROM {layer} ORDER BY id")
    assert got["id"].tolist() == ["R-001", "R-002", "R-003"]
    assert got["remark"].tolist()[1] == "已复核"
    if layer == "hazard":
        places = rows_of(tmp_db, "SELECT place_id FROM hazard ORDER BY id")["place_id"]
        assert places.tolist() == ["KP-1", "KP-2", "KP-1"]


def test_the_register_id_is_listed_by_onemap_layers(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["layers", "--json"], capsys)
    assert code == 0
    listing = json.dumps(json.loads(out), ensure_ascii=False)
    for id_header, _ in REGISTERS.values():
        assert id_header in listing


def test_no_header_maps_to_two_fields_in_any_layer() -> None:
    problems = []
    for spec in LAYERS.values():
        owners: dict[str, set[str]] = {}
        for f in spec.fields:
            for name in f.all_names():
                owners.setdefault(normalise_header(name), set()).add(f.name)
        if spec.geometry == "point":
            for coord, aliases in (("lon", LON_ALIASES), ("lat", LAT_ALIASES)):
                for name in aliases:
                    owners.setdefault(normalise_header(name), set()).add(coord)
        problems += [(spec.name, h, sorted(f)) for h, f in owners.items() if len(f) > 1]
    assert problems == []


def test_admin_areas_are_keyed_by_their_division_code(tmp_path: Path, tmp_db: Path) -> None:
    areas = gpd.GeoDataFrame(
        {
            "行政区划代码": ["310117001", "310117002"],
            "名称": ["岳阳街道", "永丰街道"],
            "层级": ["街镇", "街镇"],
        },
        geometry=[shapely.box(121.20, 31.0, 121.25, 31.05), shapely.box(121.25, 31.0, 121.3, 31.05)],
        crs=4326,
    )
    areas.to_file(tmp_path / "v1.geojson", driver="GeoJSON")
    ingest_file("admin_area", tmp_path / "v1.geojson", db=tmp_db, settings=SETTINGS)
    areas.assign(名称=["岳阳街道", "永丰街道(新)"]).to_file(tmp_path / "v2.geojson")
    ingest_file("admin_area", tmp_path / "v2.geojson", db=tmp_db, settings=SETTINGS)
    got = rows_of(tmp_db, "SELECT id, adcode, name FROM admin_area ORDER BY id")
    assert got.values.tolist() == [
        ["310117001", "310117001", "岳阳街道"],
        ["310117002", "310117002", "永丰街道(新)"],
    ]


def test_id_option_names_the_id_column(
    tmp_path: Path, tmp_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = pd.DataFrame(
        {"栓号": ["S1", "S2"], "状态": ["正常", "正常"], "经度": LON[:2], "纬度": LAT[:2]}
    )
    rows.to_csv(tmp_path / "v1.csv", index=False)
    rows.assign(状态=["正常", "损坏"]).to_csv(tmp_path / "v2.csv", index=False)
    for name in ("v1.csv", "v2.csv"):
        argv = ["ingest", "hydrant", str(tmp_path / name), "--db", str(tmp_db), "--id", "栓号"]
        code, out, err = run([*argv, "--json"], capsys)
        assert code == 0, err
        assert json.loads(out)["column_map"]["栓号"] == "id"
    got = rows_of(tmp_db, "SELECT id, status FROM hydrant ORDER BY id")
    assert got.values.tolist() == [["S1", "正常"], ["S2", "损坏"]]
    code, _, err = run(
        ["ingest", "hydrant", str(tmp_path / "v1.csv"), "--db", str(tmp_db), "--id", "编号X"],
        capsys,
    )
    assert code == 2
    assert "column '编号X' (--id) not found; headers seen: 栓号, 状态, 经度, 纬度" in err


def hydrant_records() -> gpd.GeoDataFrame:
    """Hydrants without an id column: their ids come from their content."""
    rng = np.random.default_rng(11)
    n = 40
    return gpd.GeoDataFrame(
        {
            "name": [f"栓{i}" for i in range(n)],
            "status": rng.choice(["正常", "损坏"], n),
            "diameter": rng.choice([100, 150], n),
        },
        geometry=gpd.points_from_xy(rng.uniform(120.5, 121.4, n), rng.uniform(30.8, 31.2, n)),
        crs=4326,
    )


def grid_records() -> gpd.GeoDataFrame:
    rng = np.random.default_rng(12)
    seeds = shapely.multipoints(
        np.column_stack([rng.uniform(121.1, 121.3, 12), rng.uniform(30.95, 31.1, 12)])
    )
    box = shapely.box(121.1, 30.95, 121.3, 31.1)
    cells = shapely.intersection(shapely.get_parts(shapely.voronoi_polygons(seeds, extend_to=box)), box)
    return gpd.GeoDataFrame({"name": [f"网格{i}" for i in range(len(cells))]}, geometry=cells, crs=4326)


@pytest.mark.parametrize("layer", ["hydrant", "grid"])
def test_content_ids_do_not_depend_on_the_source_crs(
    tmp_path: Path, tmp_db: Path, layer: str
) -> None:
    records = hydrant_records() if layer == "hydrant" else grid_records()
    records.to_file(tmp_path / "wgs84.geojson", driver="GeoJSON")
    # CGCS2000 / 3-degree Gauss-Kruger CM 120E (EPSG:4549), the CRS in the .prj file.
    records.to_crs(4549).to_file(tmp_path / "gk.shp", encoding="utf-8")
    a = ingest_file(layer, tmp_path / "wgs84.geojson", db=tmp_db, settings=SETTINGS)
    b = ingest_file(layer, tmp_path / "gk.shp", db=tmp_db, settings=SETTINGS)
    assert (a.crs, b.crs) == ("wgs84", "EPSG:4549")
    assert a.accepted == b.accepted == len(records)
    got = rows_of(tmp_db, f"SELECT id, source_file FROM {layer}")
    assert len(got) == len(records)  # the second import replaced the first, row for row
    assert set(got["source_file"]) == {b.file}


def test_content_ids_of_csv_coordinates_do_not_depend_on_the_source_crs(
    tmp_path: Path, tmp_db: Path
) -> None:
    records = hydrant_records()
    gk = records.to_crs(4549)
    plain = pd.DataFrame(records.drop(columns="geometry"))
    plain.assign(经度=records.geometry.x, 纬度=records.geometry.y).to_csv(
        tmp_path / "wgs84.csv", index=False
    )
    plain.assign(X=gk.geometry.x, Y=gk.geometry.y).to_csv(
        tmp_path / "gk.csv", index=False
    )
    ingest_file("hydrant", tmp_path / "wgs84.csv", db=tmp_db, settings=SETTINGS)
    ingest_file("hydrant", tmp_path / "gk.csv", db=tmp_db, crs="EPSG:4549", settings=SETTINGS)
    assert len(rows_of(tmp_db, "SELECT id FROM hydrant")) == len(records)


def test_reimport_says_which_stored_rows_the_file_no_longer_has(
    tmp_path: Path, tmp_db: Path
) -> None:
    """Without ids an edited row gets a new content id: the user is told, not left to find out."""
    rows = pd.DataFrame(
        {"名称": ["甲", "乙", "丙"], "状态": ["正常"] * 3, "经度": LON, "纬度": LAT}
    )
    path = tmp_path / "h.csv"
    rows.to_csv(path, index=False)
    first = ingest_file("hydrant", path, db=tmp_db, settings=SETTINGS)
    assert not any("earlier import" in n for n in first.notes)
    rows.assign(状态=["正常", "损坏", "正常"]).to_csv(path, index=False)
    second = ingest_file("hydrant", path, db=tmp_db, settings=SETTINGS)
    note = next(n for n in second.notes if "earlier import" in n)
    assert "(1 rows an earlier import" in note and "--id" in note
    assert len(rows_of(tmp_db, "SELECT id FROM hydrant")) == 4  # kept, as the note says
