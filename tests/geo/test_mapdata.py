"""Map data from the demo database: hexagons count every point, viewports cut, filters bind, AMap shifts."""

from __future__ import annotations

import json
from pathlib import Path

import h3
import numpy as np
import pytest

from geo import crs, mapdata, store
from geo.errors import ValidationError
from geo.settings import Settings


@pytest.fixture(scope="module")
def con(demo_db: Path):
    c = store.connect(demo_db)
    yield c
    c.close()


def _fc(text: str) -> dict:
    data = json.loads(text)
    assert data["type"] == "FeatureCollection"
    return data


def test_hexagons_count_every_point_and_match_h3(con):
    total = con.execute("SELECT count(*) FROM hazard").fetchone()[0]
    fc = _fc(mapdata.hex_features(con, "hazard", 8))
    counts = [f["properties"]["count"] for f in fc["features"]]
    assert sum(counts) == total > 0
    # every hexagon is the H3 cell it names, and a sample point lies in its hexagon's cell
    feat = max(fc["features"], key=lambda f: f["properties"]["count"])
    cell = feat["properties"]["cell"]
    assert h3.get_resolution(cell) == 8
    lat, lon = h3.cell_to_latlng(cell)
    ring = np.array(feat["geometry"]["coordinates"][0])
    assert ring[:, 0].min() < lon < ring[:, 0].max() and ring[:, 1].min() < lat < ring[:, 1].max()
    n_major = con.execute("SELECT count(*) FROM hazard WHERE severity = '重大'").fetchone()[0]
    assert sum(f["properties"]["n_top"] for f in fc["features"]) == n_major
    assert {f["properties"]["cls"] for f in fc["features"]} <= set(range(mapdata.HEX_CLASSES))


def test_hexagons_merged_by_class_keep_every_hexagon_and_its_count(con):
    """The map's form: one MultiPolygon per colour class; each polygon is the same hexagon with
    the same count as in the one-feature-per-hexagon form, and the parts stay apart (not dissolved)."""
    import shapely
    from shapely.geometry import shape

    single = _fc(mapdata.hex_features(con, "hazard", 8))["features"]
    merged = _fc(mapdata.hex_features(con, "hazard", 8, by_class=True))["features"]
    classes = sorted({f["properties"]["cls"] for f in single})
    assert [f["properties"]["cls"] for f in merged] == classes
    assert sum(len(f["properties"]["counts"]) for f in merged) == len(single)
    by_centre = {}
    for f in single:
        c = shape(f["geometry"]).centroid
        by_centre[(round(c.x, 4), round(c.y, 4))] = (f["properties"]["count"], f["properties"]["cls"])
    for f in merged:
        assert f["geometry"]["type"] == "MultiPolygon"
        parts = shapely.get_parts(shape(f["geometry"]))
        assert len(parts) == len(f["properties"]["counts"])
        for part, n in zip(parts, f["properties"]["counts"], strict=True):
            c = part.centroid
            assert by_centre[(round(c.x, 4), round(c.y, 4))] == (n, f["properties"]["cls"])


def test_viewport_points_only_inside_box_and_light(con):
    w, s, e, n = mapdata.data_bounds(con)
    box = (w, s, (w + e) / 2, (s + n) / 2)
    fc = _fc(mapdata.point_features(con, "hydrant", box))
    coords = np.array([f["geometry"]["coordinates"] for f in fc["features"]])
    assert len(coords) == mapdata.count_points(con, "hydrant", box) > 0
    assert (coords[:, 0] >= box[0]).all() and (coords[:, 0] <= box[2]).all()
    assert set(fc["features"][0]["properties"]) == {"id", "status", "name"}


def test_view_mode_switches_on_zoom_and_cap(con):
    settings = Settings(hex_min_points=100, viewport_max_points=10**9)
    bounds = mapdata.data_bounds(con)
    low = mapdata.layer_view(con, "hazard", bounds, 11, settings)
    assert low.mode == "hex" and low.res == 11 - settings.hex_zoom_offset
    high = mapdata.layer_view(con, "hazard", bounds, settings.point_cluster_zoom, settings)
    assert high.mode == "points" and len(_fc(high.geojson)["features"]) == high.count
    capped = mapdata.layer_view(con, "hazard", bounds, 16, settings.with_overrides(viewport_max_points=10))
    assert capped.mode == "hex" and capped.res == 10
    # the other half of a map asks for the mode it draws and gets nothing
    assert _fc(mapdata.layer_view(con, "hazard", bounds, 11, settings, want="points").geojson)["features"] == []
    # sparse layers are points at any zoom
    assert mapdata.layer_view(con, "fire_station", bounds, 9, Settings()).mode == "points"


def test_filters_bind_values_and_reject_unknown_fields(con):
    flt = mapdata.MapFilter({"severity": ["重大"]})
    n = mapdata.count_points(con, "hazard", None, flt)
    assert n == con.execute("SELECT count(*) FROM hazard WHERE severity = '重大'").fetchone()[0]
    start = con.execute("SELECT CAST(median(discovered_at) AS DATE) FROM hazard").fetchone()[0]
    later = mapdata.count_points(con, "hazard", None, mapdata.MapFilter(start=str(start)))
    assert 0 < later < mapdata.count_points(con, "hazard", None)
    # a value cannot break out of its parameter
    assert mapdata.count_points(con, "hazard", None, mapdata.MapFilter({"severity": ["重大' OR 1=1 --"]})) == 0
    with pytest.raises(ValidationError, match="no field 'nonsense'"):
        mapdata.count_points(con, "hazard", None, mapdata.MapFilter({"nonsense": ["x"]}))
    with pytest.raises(ValidationError, match="not JSON"):
        mapdata.MapFilter.parse("{severity")
    with pytest.raises(ValidationError, match="bbox"):
        mapdata.parse_bbox("1,2,3")


def test_amap_shift_moves_points_to_gcj02_and_back(con):
    fc_wgs = _fc(mapdata.point_features(con, "fire_station", None))
    fc_gcj = _fc(mapdata.point_features(con, "fire_station", None, tiles="amap"))
    a = np.array([f["geometry"]["coordinates"] for f in fc_wgs["features"]])
    b = np.array([f["geometry"]["coordinates"] for f in fc_gcj["features"]])
    exp_lon, exp_lat = crs.wgs84_to_gcj02(a[:, 0], a[:, 1])
    assert np.allclose(b[:, 0], exp_lon, atol=2e-6) and np.allclose(b[:, 1], exp_lat, atol=2e-6)
    shift_m = np.hypot((b[:, 0] - a[:, 0]) * 95_000, (b[:, 1] - a[:, 1]) * 111_000)
    assert (shift_m > 100).all()  # GCJ-02 offsets are hundreds of metres in Shanghai
    lon, lat = mapdata.from_display(b[:, 0], b[:, 1], "amap")
    assert np.allclose(lon, a[:, 0], atol=1e-5) and np.allclose(lat, a[:, 1], atol=1e-5)
    poly = _fc(mapdata.polygon_features(con, "admin_area", tiles="amap"))
    assert poly["features"]


def test_polygons_roads_and_bounds(con):
    grids = _fc(mapdata.polygon_features(con, "grid"))
    assert len(grids["features"]) == con.execute("SELECT count(*) FROM grid").fetchone()[0]
    w, s, e, n = mapdata.data_bounds(con)
    assert 120.9 < w < e < 121.5 and 30.8 < s < n < 31.3  # Songjiang
    settings = Settings()
    major = _fc(mapdata.road_features(con, (w, s, e, n), 10, settings))
    detail = _fc(mapdata.road_features(con, (w, s, e, n), 16, settings))
    assert all(f["properties"]["highway"] in settings.map_major_roads for f in major["features"])
    assert len(detail["features"]) > len(major["features"])
    # one merged feature per road class: a handful of canvas paths, not one layer per segment
    classes = con.execute("SELECT count(DISTINCT highway) FROM road_edges").fetchone()[0]
    assert len(detail["features"]) == classes
    assert {f["geometry"]["type"] for f in detail["features"]} == {"MultiLineString"}
    n_lines = sum(len(f["geometry"]["coordinates"]) for f in detail["features"])
    n_edges = con.execute("SELECT count(*) FROM road_edges").fetchone()[0]
    assert 0 < n_lines < n_edges  # directed edges drawn once per street segment


def test_popup_details_and_ticker(con):
    row = con.execute("SELECT id, category FROM hazard LIMIT 1").fetchone()
    details = dict(mapdata.feature_details(con, "hazard", row[0], "zh"))
    assert details["编号"] == row[0] and details["隐患类别"] == row[1]
    assert dict(mapdata.feature_details(con, "hazard", row[0], "en"))["Category"] == row[1]
    with pytest.raises(ValidationError, match="no feature"):
        mapdata.feature_details(con, "hazard", "no-such-id")
    latest = mapdata.latest_rows(con, "hazard", 5)
    assert len(latest) == 5 and latest["discovered_at"].is_monotonic_decreasing


def test_map_outlines_carry_only_label_fields_and_still_tile_the_district(con):
    """The map's outlines (``fields=map``): id, name, level, to ~1 m; the grids still cover the
    district without gaps (rounding moves shared vertices together) and nothing else leaves."""
    import shapely

    from layers.registry import get_spec

    full = _fc(mapdata.polygon_features(con, "grid"))
    slim = _fc(mapdata.polygon_features(con, "grid", fields=mapdata.map_fields(get_spec("grid")), ndigits=5))
    assert len(slim["features"]) == len(full["features"])
    assert {k for f in slim["features"] for k in f["properties"]} == {"id", "name"}
    assert "phone" in full["features"][0]["properties"]  # the full view keeps every field
    coords = np.array([c for f in slim["features"] for c in shapely.get_coordinates(
        shapely.from_geojson(json.dumps(f["geometry"])))])
    assert np.allclose(coords, np.round(coords, 5), atol=1e-9)
    union_full = shapely.union_all(shapely.from_geojson([json.dumps(f["geometry"]) for f in full["features"]]))
    union_slim = shapely.union_all(shapely.from_geojson([json.dumps(f["geometry"]) for f in slim["features"]]))
    assert abs(union_slim.area - union_full.area) / union_full.area < 1e-3
    # no slivers opened between neighbouring grids: the union has no more holes than before
    holes = lambda g: sum(len(p.interiors) for p in getattr(g, "geoms", [g]))  # noqa: E731
    assert holes(union_slim) <= holes(union_full)
    admin = _fc(mapdata.polygon_features(con, "admin_area", fields=mapdata.map_fields(get_spec("admin_area"))))
    assert {k for f in admin["features"] for k in f["properties"]} == {"id", "name", "level"}
    with pytest.raises(ValidationError, match="no field"):
        mapdata.polygon_features(con, "grid", fields=["id", "nonsense"])


def test_merged_outlines_keep_every_area_its_name_and_its_shape(con):
    """The map's merged outlines: one MultiPolygon per level; polygon i is area ``id[i]`` named
    ``name[i]``, drawn where the one-feature-per-area form draws it (not dissolved into its
    neighbours), and a level's features all carry that level."""
    import shapely

    from layers.registry import get_spec

    for layer in ("grid", "admin_area"):
        fields = mapdata.map_fields(get_spec(layer))
        single = _fc(mapdata.polygon_features(con, layer, fields=fields, ndigits=5))["features"]
        merged = _fc(mapdata.polygon_features(con, layer, fields=fields, ndigits=5, merged=True))["features"]
        shapes = {f["properties"]["id"]: shapely.from_geojson(json.dumps(f["geometry"])) for f in single}
        names = {f["properties"]["id"]: f["properties"]["name"] for f in single}
        seen: dict[str, float] = {}
        for f in merged:
            parts = shapely.get_parts(shapely.from_geojson(json.dumps(f["geometry"])))
            assert len(parts) == len(f["properties"]["id"]) == len(f["properties"]["name"])
            for part, fid, name in zip(parts, f["properties"]["id"], f["properties"]["name"], strict=True):
                assert names[fid] == name
                assert shapes[fid].contains(part.representative_point())
                seen[fid] = seen.get(fid, 0.0) + part.area
        assert seen.keys() == shapes.keys()
        assert all(abs(seen[k] - shapes[k].area) <= 1e-3 * shapes[k].area for k in shapes)
        if "level" in fields:
            levels = {f["properties"]["level"] for f in single}
            assert sorted(f["properties"]["level"] for f in merged) == sorted(levels)
        else:
            assert len(merged) == 1


def test_zones_are_simplified_for_display_within_the_tolerance() -> None:
    """A zone with a vertex every ~1 m draws with far fewer vertices, never more than the
    tolerance away from the exact ring; with no tolerance it is kept as it is."""
    import pandas as pd
    import shapely
    from shapely.geometry import mapping

    t = np.linspace(0, 2 * np.pi, 3000, endpoint=False)
    ring = np.c_[121.2 + 0.01 * np.cos(t) * (1 + 0.02 * np.sin(40 * t)), 31.0 + 0.01 * np.sin(t)]
    exact = shapely.Polygon(ring)
    props = pd.DataFrame({"minutes": ["3"]})
    tol_m = Settings().map_zone_simplify_m
    kept = json.loads(mapdata.geometries_features([mapping(exact)], props))["features"][0]
    shown = json.loads(mapdata.geometries_features([mapping(exact)], props, simplify_m=tol_m))["features"][0]
    kept_shape, shown_shape = shapely.from_geojson(json.dumps(kept["geometry"])), shapely.from_geojson(json.dumps(shown["geometry"]))
    assert shapely.get_num_coordinates(kept_shape) == 3001
    assert shapely.get_num_coordinates(shown_shape) < 3001 / 3
    assert shapely.hausdorff_distance(exact, shown_shape) <= tol_m / mapdata.M_PER_DEG_LAT * 1.01
    assert shown["properties"] == {"minutes": "3"}
