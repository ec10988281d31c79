"""Layers and analysis results to GeoPackage, GeoParquet and CSV (UTF-8 with BOM).

Conventions of every export (the README documents them for users):

- H3 cells (``h3_r7`` ... ``h3_r10``, ``cell``) are written as the usual 15-digit hex strings
  (``8a309a...``), which h3-py, kepler.gl and Excel all keep intact (a 64-bit integer would
  lose digits in Excel).
- Timestamps are written to the second; date fields as dates.
- CSV is UTF-8 with a byte-order mark so Excel opens Chinese correctly, with CRLF line ends
  (RFC 4180). Points carry their geometry as ``lon``/``lat`` columns (WGS-84), other
  geometries as a ``wkt`` column with full precision (``csv_geometry`` chooses).
- ``zh=True`` writes Chinese headers from the layer spec (``编号``, ``隐患类别`` ...);
  ``read_export`` maps them back.
- CSV text cells (and headers) that start with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
  return get a leading ``'`` so Excel/WPS show them as text instead of running them as a
  formula (OWASP, CSV injection); a text cell that itself starts with ``'`` gets one more.
  Numbers are never touched (``-3.5`` stays a number). ``read_export`` drops that one quote.

``read_export`` reads any of the three formats back into a GeoDataFrame with the layer's
types restored, so an export round-trips: same rows, same values, same geometry.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo import h3index, store
from geo.errors import ConfigError, ReadError
from geo.settings import Settings
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
# A CSV text cell starting with one of these gets a leading quote (OWASP CSV injection: = + - @
# tab CR start a formula in Excel/WPS; the quote itself, so that read_export can drop one).
CSV_QUOTE = "'"
_CSV_FORMULA_START = r"^[=+\-@\t\r']"
# CRLF line ends (RFC 4180, as Excel writes): a cell holding CR or LF is then always quoted, so a
# carriage return inside a name cannot start a new row (whose first cell would be a formula).
_CSV_WRITE: dict[str, Any] = {"index": False, "date_format": "%Y-%m-%d %H:%M:%S",
                              "lineterminator": "\r\n"}

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
    if "cell" in out and out["cell"].dtype == np.uint64 and "h3" in out:
        out = out.drop(columns="h3")  # the same cell as hex text: written once, as ``cell``
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
        neutralise_formulas(table).to_csv(out_path, encoding=CSV_ENCODING, **_CSV_WRITE)
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
    # Keep each geometry as it is (no promotion of polygons to multipolygons): exact round trip.
    data.to_file(out_path, layer=name, driver="GPKG", engine="pyogrio", promote_to_multi=False)
    return out_path


def _text_cells_to_quote(series: pd.Series) -> pd.Series:
    """True where a cell is text starting a formula (or a quote); never a number or a missing value."""
    none = pd.Series(False, index=series.index)
    if not (series.dtype == object or isinstance(series.dtype, pd.StringDtype)):
        return none
    try:
        return series.str.contains(_CSV_FORMULA_START, regex=True, na=False).astype(bool)
    except AttributeError:  # an object column without any text (booleans, dates, lists)
        return none


def neutralise_formulas(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with a ``'`` before each text cell and header a spreadsheet would run as a formula.

    The OWASP rule for CSV injection: a cell starting with ``=``, ``+``, ``-``, ``@``, tab or
    carriage return is prefixed with a single quote, so Excel and WPS show it as text. A text cell
    already starting with a quote gets one more, so ``read_export`` can drop exactly one from
    every quoted cell. Numeric columns are left alone (a negative number stays a number).
    """
    out = table.copy()
    for col in out.columns:
        quote = _text_cells_to_quote(out[col])
        if quote.any():
            out[col] = out[col].astype(object).where(~quote, CSV_QUOTE + out[col].astype(str))
    headers = pd.Series([str(c) for c in out.columns], dtype=object)
    quote = _text_cells_to_quote(headers)
    if quote.any():
        out.columns = list(headers.where(~quote, CSV_QUOTE + headers))
    return out


def csv_text(table: pd.DataFrame) -> str:
    """``table`` as CSV text written the way every export writes it (formulas neutralised, CRLF).

    For a download built in memory (the dashboard's); prefix the BOM (``"\\ufeff"``) for Excel.
    """
    return neutralise_formulas(table).to_csv(**_CSV_WRITE)


def _unquote_csv(frame: pd.DataFrame) -> tuple[pd.DataFrame, set[str]]:
    """Undo ``neutralise_formulas`` on a CSV read as text; also the columns with quoted cells."""
    out = frame.rename(columns={c: c[1:] for c in frame.columns if str(c).startswith(CSV_QUOTE)})
    quoted: set[str] = set()
    for col in out.columns:
        starts = out[col].str.startswith(CSV_QUOTE, na=False).astype(bool)
        if starts.any():
            out[col] = out[col].where(~starts, out[col].str[1:])
            quoted.add(str(col))
    return out, quoted


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
    text_columns: set[str] = set()
    if fmt == "csv":
        frame: pd.DataFrame = pd.read_csv(p, encoding=CSV_ENCODING, dtype=str, keep_default_na=False)
        frame, text_columns = _unquote_csv(frame)
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
    renamed = {c: reverse[c] for c in cols if c in reverse and reverse[c] not in frame}
    frame = frame.rename(columns=renamed)
    text_columns = {renamed.get(c, c) for c in text_columns}
    frame = _restore_types(frame, spec, text=(fmt == "csv"), text_columns=text_columns)
    if fmt == "csv":
        frame = _csv_to_geo(frame, spec)
    return frame


def _all_names(spec: LayerSpec | None) -> list[str]:
    names = list(EXTRA_LABELS)
    for s in [spec] if spec else LAYERS.values():
        names += [f.name for f in s.fields if f.name not in names]
    return names


def _restore_types(frame: pd.DataFrame, spec: LayerSpec | None, text: bool,
                   text_columns: set[str] | None = None) -> pd.DataFrame:
    """Field types from the spec; shared columns (lon, lat, area, provenance) by name.

    A column of ``text_columns`` (a CSV column with a quoted text cell) stays text without a spec.
    """
    types: dict[str, str] = {"lon": "float", "lat": "float", "area_km2": "float", "source_row": "int",
                             "ingested_at": "datetime", "source_file": "str"}
    if spec:
        types.update({f.name: f.type for f in spec.fields})
    out = frame.copy()
    if "cell" in out and out["cell"].dtype == np.uint64 and "h3" in out:
        out = out.drop(columns="h3")  # the same cell as hex text: written once, as ``cell``
    for col in out.columns:
        kind = types.get(str(col))
        if kind is None:
            if text and not (isinstance(out, gpd.GeoDataFrame) and col == out.geometry.name):
                is_text = col in (text_columns or set())
                out[col] = out[col].replace("", None) if is_text else _infer_text(out[col])
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


# --------------------------------------------------------------------------- analysis results


@dataclass(frozen=True)
class ResultSpec:
    """An analysis result that ``onemap export`` can write: its names and how to compute it."""

    name: str
    zh: str
    en: str
    kind: Literal["coverage", "hotspot", "governance"]
    compute: Callable[[duckdb.DuckDBPyConnection, Settings, Any], pd.DataFrame]


def _flt(flt: Any) -> Any:
    from geo.aggregate import Filter

    return flt if flt is not None else Filter()


def _coverage(con: duckdb.DuckDBPyConnection, settings: Settings) -> Any:
    from geo import coverage
    from geo.coverage_inputs import load_scene

    scene = load_scene(con, settings)
    return scene, coverage.compute_coverage(scene)


def _hotspots(con: duckdb.DuckDBPyConnection, settings: Settings, flt: Any) -> pd.DataFrame:
    from geo.hotspots import hotspots

    return hotspots(con, _flt(flt), settings=settings).table


def _emerging(con: duckdb.DuckDBPyConnection, settings: Settings, flt: Any) -> pd.DataFrame:
    from geo.trends import emerging_hotspots

    return emerging_hotspots(con, _flt(flt), settings=settings)


def _warnings(con: duckdb.DuckDBPyConnection, settings: Settings, flt: Any) -> pd.DataFrame:
    from geo.trends import rate_warnings

    return rate_warnings(con, flt=_flt(flt), settings=settings)


def _closed_loop(con: duckdb.DuckDBPyConnection, settings: Settings, flt: Any) -> pd.DataFrame:
    from geo.governance import closed_loop

    return closed_loop(con, by=("town",), flt=_flt(flt), settings=settings)


def _overdue(con: duckdb.DuckDBPyConnection, settings: Settings, flt: Any) -> pd.DataFrame:
    from geo.governance import overdue_hazards

    return overdue_hazards(con, _flt(flt), settings=settings, limit=2**31 - 1)


def _inspection(con: duckdb.DuckDBPyConnection, settings: Settings, flt: Any) -> pd.DataFrame:
    from geo.governance import inspection_compliance

    return inspection_compliance(con, by=("town",), flt=_flt(flt), settings=settings)


def _recurring(con: duckdb.DuckDBPyConnection, settings: Settings, flt: Any) -> pd.DataFrame:
    from geo.governance import recurring_places

    return recurring_places(con, _flt(flt), settings=settings)


def _coverage_cells(con: duckdb.DuckDBPyConnection, settings: Settings, flt: Any) -> pd.DataFrame:
    return _coverage(con, settings)[1].cells


def _coverage_areas(con: duckdb.DuckDBPyConnection, settings: Settings, flt: Any) -> pd.DataFrame:
    from geo import coverage

    return coverage.figures(_coverage(con, settings)[1], level="town")


def _first_due(con: duckdb.DuckDBPyConnection, settings: Settings, flt: Any) -> pd.DataFrame:
    from geo import coverage

    return coverage.first_due_areas(_coverage(con, settings)[1])


def _uncovered(con: duckdb.DuckDBPyConnection, settings: Settings, flt: Any) -> pd.DataFrame:
    from geo import coverage

    frame = coverage.uncovered_clusters(_coverage(con, settings)[1], top=2**31 - 1)
    return _geojson_column(frame)


def _isochrones(con: duckdb.DuckDBPyConnection, settings: Settings, flt: Any) -> pd.DataFrame:
    from geo import coverage

    result = _coverage(con, settings)[1]
    rows = []
    for layer in result.responders["layer"].unique():
        for minutes, geom in coverage.isochrones(result, layer=layer).items():
            if geom is None:  # nothing reached within these minutes
                continue
            rows.append({"layer": layer, "minutes": float(minutes), "geometry": shapely.geometry.shape(geom)})
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=4326) if rows else pd.DataFrame(columns=["layer", "minutes"])


def _geojson_column(frame: pd.DataFrame, column: str = "geometry") -> pd.DataFrame:
    """A frame whose ``column`` holds GeoJSON geometry dicts as a GeoDataFrame (one per cluster: few rows)."""
    if column not in frame or isinstance(frame, gpd.GeoDataFrame):
        return frame
    geoms = [shapely.geometry.shape(g) if isinstance(g, dict) else g for g in frame[column]]
    return gpd.GeoDataFrame(frame.drop(columns=column), geometry=geoms, crs=4326)


def _blind_cells(con: duckdb.DuckDBPyConnection, settings: Settings, flt: Any) -> pd.DataFrame:
    from geo import water

    return water.hydrant_blind_spots(_coverage(con, settings)[0]).blind_cells.reset_index(drop=True)


def _blind_places(con: duckdb.DuckDBPyConnection, settings: Settings, flt: Any) -> pd.DataFrame:
    from geo import water

    return water.hydrant_blind_spots(_coverage(con, settings)[0]).blind_places.reset_index(drop=True)


def _spacing(con: duckdb.DuckDBPyConnection, settings: Settings, flt: Any) -> pd.DataFrame:
    from geo import water

    return water.hydrant_spacing(_coverage(con, settings)[0])


def _nearest_water(con: duckdb.DuckDBPyConnection, settings: Settings, flt: Any) -> pd.DataFrame:
    from geo import water

    return water.nearest_water(_coverage(con, settings)[0])


RESULTS: dict[str, ResultSpec] = {r.name: r for r in (
    ResultSpec("hotspots", "隐患热点(Gi*)", "Hazard hotspots (Gi*)", "hotspot", _hotspots),
    ResultSpec("emerging_hotspots", "新兴热点趋势", "Emerging hotspots", "hotspot", _emerging),
    ResultSpec("rate_warnings", "隐患预警", "Hazard rate warnings", "hotspot", _warnings),
    ResultSpec("closed_loop", "闭环处置", "Closed loop by town", "governance", _closed_loop),
    ResultSpec("overdue_hazards", "超期隐患", "Overdue hazards", "governance", _overdue),
    ResultSpec("inspection_compliance", "排查合规率", "Inspection compliance", "governance", _inspection),
    ResultSpec("recurring_places", "反复发生场所", "Recurring places", "governance", _recurring),
    ResultSpec("coverage_cells", "响应覆盖单元", "Coverage per H3 cell", "coverage", _coverage_cells),
    ResultSpec("coverage_areas", "街镇覆盖率", "Coverage per town", "coverage", _coverage_areas),
    ResultSpec("first_due", "责任区", "First-due areas", "coverage", _first_due),
    ResultSpec("uncovered", "未覆盖片区", "Uncovered clusters", "coverage", _uncovered),
    ResultSpec("isochrones", "等时圈", "Isochrones", "coverage", _isochrones),
    ResultSpec("hydrant_blind_spots", "消火栓盲区", "Hydrant blind-spot cells", "coverage", _blind_cells),
    ResultSpec("hydrant_blind_places", "消火栓盲区场所", "Key places in hydrant blind spots", "coverage", _blind_places),
    ResultSpec("hydrant_spacing", "消火栓间距", "Hydrant spacing", "coverage", _spacing),
    ResultSpec("nearest_water", "最近水源", "Nearest water source per key place", "coverage", _nearest_water),
)}


def compute_result(con: duckdb.DuckDBPyConnection, name: str, settings: Settings | None = None,
                   flt: Any = None) -> pd.DataFrame:
    """Compute the result ``name`` (see ``RESULTS``) on the database; ``flt`` a ``geo.aggregate.Filter``."""
    try:
        spec = RESULTS[name]
    except KeyError:
        msg = f"unknown result {name!r}; results: {', '.join(RESULTS)}; layers: {', '.join(LAYERS)}"
        raise ConfigError(msg) from None
    try:
        return spec.compute(con, settings or Settings(), flt)
    except ImportError as exc:
        msg = f"result {name!r} needs the {spec.kind} engine, which is not available in this build ({exc})"
        raise ConfigError(msg) from exc


def export_any(
    con: duckdb.DuckDBPyConnection,
    name: str,
    path: str | os.PathLike[str],
    *,
    settings: Settings | None = None,
    flt: Any = None,
    zh: bool = False,
    csv_geometry: CsvGeometry = "auto",
) -> tuple[Path, int]:
    """Export a layer (filtered by ``flt``'s towns and time window when given) or a result."""
    if name in LAYERS:
        where, params = (None, None)
        if flt is not None:
            where, params = flt.sql(name)
        return export_layer(con, name, path, where=where, params=params, zh=zh, csv_geometry=csv_geometry)
    frame = compute_result(con, name, settings, flt)
    labels = RESULT_LABELS if zh else None
    return export_frame(frame, path, name=name, zh=zh, labels=labels, csv_geometry=csv_geometry), len(frame)


# Chinese headers of result columns (layer fields come from the specs).
RESULT_LABELS: dict[str, str] = {
    "h3": "H3编号", "count": "数量", "n_neighbours": "邻域单元数", "z": "Z得分", "p": "P值", "q": "FDR校正P值",
    "bin": "Gi分级", "bin_fdr": "Gi分级(FDR)", "total": "总数", "months": "月数", "months_hot": "热点月数",
    "hot_last": "最近月为热点", "z_last": "最近月Z得分", "trend_z": "趋势Z", "trend_p": "趋势P值",
    "category_zh": "类别(中文)", "area": "区域", "current": "本期", "baseline": "基期", "expected": "期望",
    "ratio": "比值", "warn": "预警", "discovered": "发现数", "closed": "结案数", "open": "未结案",
    "rectification_rate": "整改率", "median_days_to_close": "结案天数中位数", "p90_days_to_close": "结案天数P90",
    "overdue": "超期", "open_major": "未结重大隐患", "listed_town": "街镇挂牌", "listed_district": "区级挂牌",
    "listed_open": "挂牌未结", "recurring_places": "反复场所数", "general_closed": "一般隐患结案",
    "general_closed_in_grid": "网格内结案", "in_grid_share": "不出网格率", "days_overdue": "超期天数",
    "places": "场所数", "inspected_in_interval": "按期排查", "never_inspected": "从未排查",
    "compliance": "合规率", "interval_days": "排查周期(天)", "hazards": "隐患数", "recurrences": "反复次数",
    "first": "首次", "last": "最近", "res": "H3级别", "eta_s": "到达时间(秒)", "responder_id": "首到力量",
    "responder_layer": "力量类型", "covered": "已覆盖", "area_km2": "面积(km²)", "covered_km2": "覆盖面积(km²)",
    "area_share": "面积覆盖率", "places_covered": "覆盖场所", "places_share": "场所覆盖率", "weight": "权重",
    "weight_covered": "覆盖权重", "weight_share": "权重覆盖率", "responder": "力量", "limit_km2": "面积上限(km²)",
    "over_limit": "超出上限", "rank": "排名", "cells": "单元数", "layer": "图层", "minutes": "分钟",
    "spacing_m": "间距(m)", "road_m": "道路距离(m)", "straight_m": "直线距离(m)", "score": "得分",
    "on_time_rate": "按期整改率", "significant": "显著", "inspection_compliance": "排查合规率", "no_recurrence_rate": "无反复率",
}
