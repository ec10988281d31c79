"""Layers and analysis results to GeoPackage, GeoParquet and CSV (UTF-8 with BOM).

Conventions of every export (the README documents them for users):

- H3 cells (``h3_r7`` ... ``h3_r10``, ``cell``) are written as the usual 15-digit hex strings
  (``8a309a...``), which h3-py, kepler.gl and Excel all keep intact (a 64-bit integer would
  lose digits in Excel).
- Timestamps are written to the second; date fields as dates.
- CSV is UTF-8 with a byte-order mark so Excel opens Chinese correctly. Points carry their
  geometry as ``lon``/``lat`` columns (WGS-84), other geometries as a ``wkt`` column with
  full precision (``csv_geometry`` chooses).
- ``zh=True`` writes Chinese headers from the layer spec (``编号``, ``隐患类别`` ...);
  ``read_export`` maps them back.

``read_export`` reads any of the three formats back into a GeoDataFrame with the layer's
types restored, so an export round-trips: same rows, same values, same geometry.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import duckdb
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo import h3index, store
from geo.errors import ConfigError, ReadError
from layers.base import LayerSpec
from layers.registry import LAYERS, get_spec

Format = Literal["gpkg", "parquet", "csv"]
CsvGeometry = Literal["auto", "lonlat", "wkt", "none"]

FORMATS: dict[str, Format] = {".gpkg": "gpkg", ".parquet": "parquet", ".geoparquet": "parquet", ".csv": "csv"}
CSV_ENCODING = "utf-8-sig"
WKT_COLUMN = "wkt"
_H3_COLUMN = re.compile(r"^(h3_r\d{1,2}|cell|h3|h3_cell)$")
_HEX = np.array(list("0123456789abcdef"))
_SHIFTS = np.arange(56, -4, -4, dtype=np.uint64)  # 15 nibbles: bits 56..0 (the top nibble of a cell is 0)

# Chinese/English headers of the columns every layer table adds to its fields.
EXTRA_LABELS: dict[str, tuple[str, str]] = {
    "lon": ("经度", "Longitude"),
    "lat": ("纬度", "Latitude"),
    "area_km2": ("面积(km²)", "Area (km²)"),
    "source_file": ("来源文件", "Source file"),
    "source_row": ("来源行号", "Source row"),
    "ingested_at": ("入库时间", "Ingested at"),
    WKT_COLUMN: ("几何(WKT)", "Geometry (WKT)"),
    "cell": ("H3单元", "H3 cell"),
    **{h3index.cell_column(r): (f"H3({r}级)", f"H3 res {r}") for r in store.POINT_RESOLUTIONS},
}


# --------------------------------------------------------------------------- helpers


def export_format(path: str | os.PathLike[str]) -> Format:
    """The format of ``path`` from its suffix (.gpkg, .parquet/.geoparquet, .csv)."""
    suffix = Path(path).suffix.lower()
    try:
        return FORMATS[suffix]
    except KeyError:
        msg = f"cannot export to {Path(path).name!r}: unknown suffix {suffix!r}; use one of {', '.join(FORMATS)}"
        raise ConfigError(msg) from None


def h3_to_hex(cells: np.ndarray) -> np.ndarray:
    """H3 cells (uint64) as 15-digit hex strings, vectorised; 0 (no cell) becomes ''."""
    arr = np.asarray(cells, dtype=np.uint64)
    nibbles = (arr[:, None] >> _SHIFTS[None, :]) & np.uint64(0xF)
    chars = np.ascontiguousarray(_HEX[nibbles.astype(np.intp)])
    out = chars.view("<U15").ravel() if len(arr) else np.array([], dtype="<U15")
    return np.where(arr == 0, "", out)


def hex_to_h3(strings: Sequence[str] | np.ndarray) -> np.ndarray:
    """15-digit hex strings back to uint64 cells, vectorised; '' or missing becomes 0."""
    s = pd.Series(strings, dtype=object).fillna("").astype(str).str.rjust(15, "0").to_numpy().astype("<U15")
    if not len(s):
        return np.array([], dtype=np.uint64)
    codes = s.view("<U1").reshape(-1, 15).view(np.int32)
    digits = np.where(codes >= ord("a"), codes - ord("a") + 10, codes - ord("0")).astype(np.uint64)
    return (digits << _SHIFTS[None, :]).sum(axis=1, dtype=np.uint64)


def column_labels(columns: Sequence[str], spec: LayerSpec | None = None, lang: str = "zh",
                  extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Header of each column in ``lang``: ``extra`` first, then the spec's fields, then shared columns.

    Without a spec, labels come from every layer spec where the name means one thing.
    Columns with no label keep their name.
    """
    idx = 0 if lang == "zh" else 1
    known: dict[str, str] = {}
    if spec is not None:
        known.update({f.name: (f.zh if lang == "zh" else f.en) for f in spec.fields})
    else:
        seen: dict[str, set[str]] = {}
        for s in LAYERS.values():
            for f in s.fields:
                seen.setdefault(f.name, set()).add(f.zh if lang == "zh" else f.en)
        known.update({n: next(iter(v)) for n, v in seen.items() if len(v) == 1})
    known.update({k: v[idx] for k, v in EXTRA_LABELS.items()})
    known.update(extra or {})
    labels = {c: known.get(c, c) for c in columns}
    used: dict[str, str] = {}
    for col, lab in labels.items():  # two columns must never share a header
        if lab in used and used[lab] != col:
            labels[col] = f"{lab}({col})"
        used[labels[col]] = col
    return labels


def _is_h3_column(name: str, series: pd.Series) -> bool:
    return bool(_H3_COLUMN.match(name)) and series.dtype == np.uint64


def _to_geodataframe(frame: pd.DataFrame) -> gpd.GeoDataFrame | pd.DataFrame:
    """A GeoDataFrame for frames that carry a location: geometry, an H3 ``cell`` column, or lon/lat."""
    if isinstance(frame, gpd.GeoDataFrame) and frame.geometry.name in frame:
        return frame
    if "cell" in frame and frame["cell"].dtype == np.uint64:
        return gpd.GeoDataFrame(frame, geometry=h3index.cell_polygons(frame["cell"].to_numpy()), crs=4326)
    if "lon" in frame and "lat" in frame:
        return gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(frame["lon"], frame["lat"]), crs=4326)
    return frame


def _prepare(frame: pd.DataFrame, spec: LayerSpec | None) -> pd.DataFrame:
    """Values as written: H3 cells as hex, timestamps to the second."""
    out = frame.copy()
    for col in out.columns:
        if col == getattr(out, "_geometry_column_name", None):
            continue
        series = out[col]
        if _is_h3_column(str(col), series):
            out[col] = pd.array(h3_to_hex(series.to_numpy()), dtype="str")
        elif pd.api.types.is_datetime64_any_dtype(series):
            out[col] = series.dt.floor("s")
    return out


# --------------------------------------------------------------------------- writing


def export_frame(
    frame: pd.DataFrame,
    path: str | os.PathLike[str],
    *,
    name: str = "data",
    spec: LayerSpec | None = None,
    zh: bool = False,
    labels: Mapping[str, str] | None = None,
    csv_geometry: CsvGeometry = "auto",
) -> Path:
    """Write a frame (layer rows or an analysis result) to ``path``; the suffix picks the format.

    Parameters
    ----------
    frame
        A GeoDataFrame, or a frame with an H3 ``cell`` column (written as hexagons) or
        ``lon``/``lat`` columns (written as points), or a plain table.
    path
        ``.gpkg``, ``.parquet`` (GeoParquet) or ``.csv`` (UTF-8 with BOM).
    name
        GeoPackage layer name.
    spec
        Layer spec of the rows, for Chinese headers and date fields.
    zh
        Write Chinese headers.
    labels
        Extra column → header entries (used with ``zh``).
    csv_geometry
        CSV only: ``lonlat`` (points), ``wkt``, ``none``, or ``auto`` (lon/lat for points, WKT otherwise).

    Returns
    -------
    The path written.
    """
    fmt = export_format(path)
    out_path = Path(path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    data = _prepare(_to_geodataframe(frame), spec)
    has_geom = isinstance(data, gpd.GeoDataFrame)
    if fmt == "csv":
        table = pd.DataFrame(data.drop(columns=data.geometry.name) if has_geom else data)
        if has_geom:
            table = _csv_geometry(table, data.geometry, csv_geometry)
        date_fields = [f.name for f in spec.fields if f.type == "date"] if spec else []
        for col in date_fields:
            if col in table and pd.api.types.is_datetime64_any_dtype(table[col]):
                table[col] = table[col].dt.strftime("%Y-%m-%d")
        if zh:
            table = table.rename(columns=column_labels(list(table.columns), spec, "zh", labels))
        out_path.unlink(missing_ok=True)
        table.to_csv(out_path, index=False, encoding=CSV_ENCODING, date_format="%Y-%m-%d %H:%M:%S")
        return out_path
    if zh:
        cols = [c for c in data.columns if not (has_geom and c == data.geometry.name)]
        data = data.rename(columns=column_labels(cols, spec, "zh", labels))
    if fmt == "parquet":
        if has_geom:
            data.to_parquet(out_path, index=False)
        else:
            pd.DataFrame(data).to_parquet(out_path, index=False)
        return out_path
    if not has_geom:
        msg = f"cannot write {out_path.name}: a GeoPackage needs geometry and these rows have none; export to .csv or .parquet"
        raise ConfigError(msg)
    out_path.unlink(missing_ok=True)
    data.to_file(out_path, layer=name, driver="GPKG", engine="pyogrio")
    return out_path


def _csv_geometry(table: pd.DataFrame, geometry: gpd.GeoSeries, mode: CsvGeometry) -> pd.DataFrame:
    geoms = geometry.to_numpy()
    all_points = bool(len(geoms)) and bool(np.all(shapely.get_type_id(geoms) == 0))
    if mode == "auto":
        mode = "lonlat" if all_points or not len(geoms) else "wkt"
    if mode == "lonlat":
        if not all_points and len(geoms):
            msg = "csv_geometry='lonlat' needs point geometries; these rows have polygons or lines: use 'wkt'"
            raise ConfigError(msg)
        table["lon"] = shapely.get_x(geoms)
        table["lat"] = shapely.get_y(geoms)
    elif mode == "wkt":
        table[WKT_COLUMN] = shapely.to_wkt(geoms, rounding_precision=-1)
    return table


def export_layer(
    con: duckdb.DuckDBPyConnection,
    layer: str,
    path: str | os.PathLike[str],
    *,
    where: str | None = None,
    params: Sequence[Any] | None = None,
    zh: bool = False,
    csv_geometry: CsvGeometry = "auto",
) -> tuple[Path, int]:
    """Write the rows of ``layer`` (all stored columns) to ``path``; returns (path, rows)."""
    spec = get_spec(layer)
    frame = store.read_layer(con, layer, where=where, params=params)
    return export_frame(frame, path, name=layer, spec=spec, zh=zh, csv_geometry=csv_geometry), len(frame)


# --------------------------------------------------------------------------- reading


def read_export(
    path: str | os.PathLike[str],
    *,
    layer: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> gpd.GeoDataFrame | pd.DataFrame:
    """Read an export back: Chinese headers mapped back, the layer's types and geometry restored.

    Parameters
    ----------
    path
        A file written by ``export_frame``/``export_layer``.
    layer
        The layer it holds (restores field types and maps its Chinese headers back).
    labels
        Extra column → header entries used when it was written with ``zh``.
    """
    p = Path(path)
    if not p.exists():
        raise ReadError(f"export file {p} not found")
    fmt = export_format(p)
    spec = get_spec(layer) if layer else None
    if fmt == "csv":
        frame: pd.DataFrame = pd.read_csv(p, encoding=CSV_ENCODING, dtype=str, keep_default_na=False)
    elif fmt == "parquet":
        try:
            frame = gpd.read_parquet(p)
        except ValueError:  # a plain table without geo metadata
            frame = pd.read_parquet(p)
    else:
        frame = gpd.read_file(p, engine="pyogrio")
    geom_name = frame.geometry.name if isinstance(frame, gpd.GeoDataFrame) else None
    cols = [c for c in frame.columns if c != geom_name]
    reverse = {v: k for k, v in column_labels(_all_names(spec), spec, "zh", labels).items()}
    frame = frame.rename(columns={c: reverse[c] for c in cols if c in reverse and reverse[c] not in frame})
    frame = _restore_types(frame, spec, text=(fmt == "csv"))
    if fmt == "csv":
        frame = _csv_to_geo(frame, spec)
    return frame


def _all_names(spec: LayerSpec | None) -> list[str]:
    names = list(EXTRA_LABELS)
    for s in [spec] if spec else LAYERS.values():
        names += [f.name for f in s.fields if f.name not in names]
    return names


def _restore_types(frame: pd.DataFrame, spec: LayerSpec | None, text: bool) -> pd.DataFrame:
    """Field types from the spec; shared columns (lon, lat, area, provenance) by name."""
    types: dict[str, str] = {"lon": "float", "lat": "float", "area_km2": "float", "source_row": "int",
                             "ingested_at": "datetime", "source_file": "str"}
    if spec:
        types.update({f.name: f.type for f in spec.fields})
    out = frame.copy()
    for col in out.columns:
        kind = types.get(str(col))
        if kind is None:
            if text and not (isinstance(out, gpd.GeoDataFrame) and col == out.geometry.name):
                out[col] = _infer_text(out[col])
            continue
        series = out[col]
        if text:
            series = series.replace("", None)
        out[col] = _cast(series, kind)
    for col in out.columns:
        if _H3_COLUMN.match(str(col)) and not (isinstance(out, gpd.GeoDataFrame) and col == out.geometry.name):
            out[col] = out[col].astype("str")
    return out


def _cast(series: pd.Series, kind: str) -> pd.Series:
    if kind == "str":
        return series.astype(object).where(series.notna(), None)
    if kind == "int":
        return pd.to_numeric(series).astype("Int64")
    if kind == "float":
        return pd.to_numeric(series).astype("float64")
    if kind == "bool":
        mapped = series.map(lambda v: v if v is None or isinstance(v, bool) else _BOOL_TEXT.get(str(v), v),
                            na_action="ignore")
        return mapped.astype("boolean")
    return pd.to_datetime(series).astype("datetime64[us]")


_BOOL_TEXT = {"True": True, "False": False, "true": True, "false": False, "1": True, "0": False,
              "1.0": True, "0.0": False, "是": True, "否": False}


def _infer_text(series: pd.Series) -> pd.Series:
    """A CSV column of a result without a spec: numbers where every value is one, else text."""
    values = series.replace("", None)
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().sum() == values.notna().sum() and values.notna().any():
        return numeric
    return values


def _csv_to_geo(frame: pd.DataFrame, spec: LayerSpec | None) -> gpd.GeoDataFrame | pd.DataFrame:
    if WKT_COLUMN in frame:
        geoms = shapely.from_wkt(frame[WKT_COLUMN].to_numpy())
        return gpd.GeoDataFrame(frame.drop(columns=WKT_COLUMN), geometry=geoms, crs=4326)
    if "lon" in frame and "lat" in frame:
        lon = pd.to_numeric(frame["lon"]).to_numpy(dtype=float)
        lat = pd.to_numeric(frame["lat"]).to_numpy(dtype=float)
        return gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(lon, lat), crs=4326)
    return frame
