"""Grid registers with empty or odd 社区/街镇 cells, then point registers ingested into them.

Real grid registers leave cells empty (a grid not yet attached to a community, a town
column nobody filled). Points landing in such a grid must still be stored, through the
real `onemap ingest` command, with exit code 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import openpyxl
import pandas as pd
import pytest
import shapely

from dashboard.cli import main
from geo import store

BOXES = {
    "G-EMPTY": (121.200, 31.000, 121.210, 31.010),
    "G-FULL": (121.210, 31.000, 121.220, 31.010),
}
HYDRANTS = pd.DataFrame(
    {
        "编号": ["H1", "H2", "H3"],
        "状态": ["正常", "正常", "损坏"],
        "经度": [121.205, 121.215, 121.300],  # in G-EMPTY, in G-FULL, in no grid
        "纬度": [31.005, 31.005, 31.005],
    }
)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def rows_of(db: Path, sql: str) -> pd.DataFrame:
    con = store.connect(db)
    try:
        return store.query(con, sql)
    finally:
        con.close()


def write_grids(path: Path, town: list[object], community: list[object]) -> None:
    """The two grids in the format of ``path`` (CSV with WKT, XLSX with WKT, or GeoJSON)."""
    ids = list(BOXES)
    geoms = [shapely.box(*b) for b in BOXES.values()]
    if path.suffix == ".geojson":
        gdf = gpd.GeoDataFrame(
            {"网格编号": ids, "街镇": town, "社区": community}, geometry=geoms, crs=4326
        )
        gdf.to_file(path, driver="GeoJSON")
    elif path.suffix == ".xlsx":
        wb = openpyxl.Workbook()
        ws = wb.active
        ws.append(["网格编号", "街镇", "社区", "wkt"])
        for row in zip(ids, town, community, shapely.to_wkt(geoms), strict=True):
            ws.append(list(row))
        wb.save(path)
    else:
        pd.DataFrame(
            {"网格编号": ids, "街镇": town, "社区": community, "wkt": shapely.to_wkt(geoms)}
        ).to_csv(path, index=False)


def ingest(
    layer: str, path: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict]:
    code, out = run(["ingest", layer, str(path), "--db", str(db), "--json"], capsys)
    assert code == 0, out
    return code, json.loads(out)


@pytest.mark.parametrize("suffix", [".csv", ".xlsx", ".geojson"])
def test_points_land_in_a_grid_whose_community_and_town_are_empty(
    tmp_path: Path, tmp_db: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    grids = tmp_path / f"网格{suffix}"
    write_grids(grids, town=[None, "岳阳街道"], community=[None, "白云社区"])
    assert ingest("grid", grids, tmp_db, capsys)[1]["accepted"] == 2
    HYDRANTS.to_csv(tmp_path / "消火栓.csv", index=False)
    _, result = ingest("hydrant", tmp_path / "消火栓.csv", tmp_db, capsys)
    assert (result["accepted"], result["assigned_to_grid"]) == (3, 2)
    got = rows_of(tmp_db, "SELECT id, grid_id, community, town FROM hydrant ORDER BY id")
    got = got.astype(object).where(got.notna(), None)
    assert got.values.tolist() == [
        ["H1", "G-EMPTY", None, None],
        ["H2", "G-FULL", "白云社区", "岳阳街道"],
        ["H3", None, None, None],
    ]


def test_a_grid_register_with_every_community_and_town_empty(
    tmp_path: Path, tmp_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grids = tmp_path / "网格.csv"
    write_grids(grids, town=[None, None], community=[None, None])
    ingest("grid", grids, tmp_db, capsys)
    HYDRANTS.to_csv(tmp_path / "消火栓.csv", index=False)
    _, result = ingest("hydrant", tmp_path / "消火栓.csv", tmp_db, capsys)
    assert (result["accepted"], result["assigned_to_grid"]) == (3, 2)
    got = rows_of(tmp_db, "SELECT grid_id, town FROM hydrant ORDER BY id")
    assert got["grid_id"].tolist()[:2] == ["G-EMPTY", "G-FULL"] and got["town"].isna().all()


def test_numbers_in_the_community_column_are_stored_as_text(
    tmp_path: Path, tmp_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grids = tmp_path / "网格.xlsx"
    write_grids(grids, town=[310117001, "岳阳街道"], community=[7, None])
    ingest("grid", grids, tmp_db, capsys)
    # The point register has its own community for H2: kept, the grid's fills the others.
    HYDRANTS.assign(社区=[None, "自填社区", None]).to_csv(tmp_path / "消火栓.csv", index=False)
    ingest("hydrant", tmp_path / "消火栓.csv", tmp_db, capsys)
    got = rows_of(tmp_db, "SELECT community, town FROM hydrant ORDER BY id")
    got = got.astype(object).where(got.notna(), None)
    assert got.values.tolist() == [["7", "310117001"], ["自填社区", "岳阳街道"], [None, None]]
