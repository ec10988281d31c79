"""Ingestion: a user's file → validated canonical rows in the store, bad rows in ``rejected``.

``ingest_file`` reads any supported format (see ``geo.readers``), maps headers through the
layer spec's aliases, converts coordinates to WGS-84, validates every row (``geo.validate``),
assigns points to grids, and writes one new snapshot of the database. Nothing is dropped
or altered silently: a failing row goes to ``rejected`` with its row number, field, reason,
value and raw content; a repair or derived value is written to ``ingest_notes``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from geo import assign, h3index, ingest_stream, store, units
from geo.crs import normalise_crs
from geo.errors import CRSError, ReadError, ValidationError
from geo.readers import RawTable, read_any, text_table, to_text
from geo.settings import Settings
from geo.validate import (
    REASONS,
    Rejections,
    as_text,
    check_coordinates,
    clean_text,
    enum_text,
    interval_limits,
    parse_field,
    parse_number,
    polygons_to_wgs84,
    present,
    repair_polygons,
    time_order,
)
from layers.base import LAT_ALIASES, LON_ALIASES, Field, LayerSpec, normalise_header
from layers.registry import get_spec

PROGRESS_MIN_ROWS = 50_000  # show a progress bar from this many rows on
WKT_ALIASES = ("wkt", "geometry", "geom", "shape", "几何", "边界", "范围", "图形")
GRID_FIELDS = ("grid_id", "community", "town")
GRID_SOURCE = {"grid_id": "id", "community": "community", "town": "town"}


@dataclass(frozen=True)
class IngestResult:
    """What one ingest did: counts, reasons, how columns were read, and where it went."""

    file: str
    layer: str
    crs: str
    fmt: str
    rows_read: int
    accepted: int
    rejected: int
    rejected_by_reason: dict[str, int]
    repaired: int
    assigned_to_grid: int
    column_map: dict[str, str]
    unmapped_columns: tuple[str, ...]
    notes: tuple[str, ...]
    sha256: str
    encoding: str | None
    seconds: float
    db: str | None = None
    # Wall seconds per stage: read, validate, store (H3 wait, grid assignment, inserts),
    # snapshot (copy, checkpoint, fsync and swap of the database file).
    stages: dict[str, float] = field(default_factory=dict)
    # Responder units named by the rows (出动力量, incidents): None when the file has no such
    # column, else {"responders": n in the database, "named": n, "matched": n,
    # "unmatched": [{"unit_text", "reason" (unknown | ambiguous), "count", "rows"}, ...]}.
    units: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the schema of `onemap ingest --json`)."""
        return asdict(self)


@dataclass
class Prepared:
    """A validated table, ready to store."""

    accepted: (
        pa.Table | gpd.GeoDataFrame
    )  # typed fields + lon, lat (points, Arrow) or geometry (polygons)
    rejected: pd.DataFrame  # rows of the `rejected` table
    notes: pd.DataFrame  # rows of the `ingest_notes` table
    rows_read: int
    rejected_rows: int
    rejected_by_reason: dict[str, int]
    repaired: int
    column_map: dict[str, str]
    unmapped: list[str]
    file_notes: list[str] = field(default_factory=list)
    # H3 cells of the accepted points (computed in a background thread during validation).
    cells: Callable[[], dict[int, np.ndarray]] | None = None
    # The unit report (``IngestResult.units``), made while storing.
    units: dict[str, Any] | None = None
    # Per field, rows whose value an alias mapped: {(spelling, canonical): rows}.
    value_counts: dict[str, dict[tuple[str, str], int]] = field(default_factory=dict)


# --------------------------------------------------------------------------- headers


def _match(headers: list[str], wanted: str) -> str | None:
    """The header equal to ``wanted`` (exactly, else after normalising)."""
    if wanted in headers:
        return wanted
    key = normalise_header(wanted)
    return next((h for h in headers if normalise_header(h) == key), None)


def _alias_ranks(spec: LayerSpec) -> dict[str, tuple[str, int]]:
    """Normalised header → (field, rank): the rank is the header's place in ``Field.all_names``."""
    out: dict[str, tuple[str, int]] = {}
    for f in spec.fields:
        for rank, name in enumerate(f.all_names()):
            out.setdefault(normalise_header(name), (f.name, rank))
    return out


def map_headers(
    spec: LayerSpec,
    headers: list[str],
    lon: str | None = None,
    lat: str | None = None,
    file: str = "",
    id_column: str | None = None,
) -> tuple[dict[str, str], str | None, str | None, str | None, list[str]]:
    """Map file headers to canonical fields: (header → field, lon column, lat column, WKT column, unmapped).

    ``lon``, ``lat`` and ``id_column`` name columns the user chose (``--lon/--lat/--id``).
    When several headers name one field, the one earliest in the field's names wins (the
    canonical name, the Chinese name, then the aliases in order: a register's own
    消火栓编号 before the shared 序号); on a tie, the first in the file. The others are unmapped.
    """
    for given, option in ((lon, "--lon"), (lat, "--lat"), (id_column, "--id")):
        if given is not None and _match(headers, given) is None:
            raise ReadError(
                f"{file}: column {given!r} ({option}) not found; headers seen: {', '.join(headers)}"
            )
    lon_col = _match(headers, lon) if lon is not None else None
    lat_col = _match(headers, lat) if lat is not None else None
    id_col = _match(headers, id_column) if id_column is not None else None
    lon_keys = {normalise_header(a) for a in LON_ALIASES}
    lat_keys = {normalise_header(a) for a in LAT_ALIASES}
    wkt_keys = {normalise_header(a) for a in WKT_ALIASES}
    ranks = _alias_ranks(spec)
    best: dict[str, tuple[int, int, str]] = {}  # field → (rank, position, header)
    wkt_col = None
    for position, h in enumerate(headers):
        if h in (lon_col, lat_col, id_col):
            continue
        key = normalise_header(h)
        if lon is None and lon_col is None and key in lon_keys:
            lon_col = h
            continue
        if lat is None and lat_col is None and key in lat_keys:
            lat_col = h
            continue
        target = ranks.get(key)
        if target and not (id_col is not None and target[0] == "id"):
            found = best.get(target[0])
            if found is None or (target[1], position) < found[:2]:
                best[target[0]] = (target[1], position, h)
        elif target is None and wkt_col is None and key in wkt_keys and spec.geometry != "point":
            wkt_col = h
    chosen = sorted((position, h, f) for f, (_, position, h) in best.items())
    mapping = {h: f for _, h, f in chosen}
    if id_col is not None:
        mapping = {id_col: "id", **mapping}
    used = set(mapping) | {lon_col, lat_col, wkt_col}
    return mapping, lon_col, lat_col, wkt_col, [h for h in headers if h not in used]


def resolve_crs(user_crs: str | int | None, file_crs: str | None, file: str) -> str:
    """The CRS of the coordinates: ``--crs`` if given (checked against the file's), else the file's, else WGS-84."""
    if user_crs is None:
        if file_crs is None:
            return "wgs84"
        try:
            return normalise_crs(file_crs)
        except CRSError:
            raise CRSError(
                f"{file}: the file's CRS has no EPSG code; pass --crs EPSG:<code>"
            ) from None
    name = normalise_crs(user_crs)
    if file_crs is not None:
        from pyproj import CRS

        declared = CRS.from_user_input(file_crs)
        if declared.is_projected and not name.startswith("EPSG:"):
            msg = (
                f"{file}: the file declares a projected CRS ({file_crs}, metres) but --crs {user_crs} is "
                f"lon/lat; drop --crs or pass the right EPSG code"
            )
            raise CRSError(msg)
    return name


# --------------------------------------------------------------------------- validation


def prepare(
    spec: LayerSpec,
    raw: RawTable,
    crs: str | int | None,
    settings: Settings,
    file: str,
    lon: str | None = None,
    lat: str | None = None,
    id_column: str | None = None,
    seen: Callable[[pa.Array, np.ndarray], np.ndarray] | None = None,
) -> tuple[Prepared, str]:
    """Validate a raw table against ``spec``; returns the prepared rows and the CRS used.

    Every check runs on whole Arrow/numpy columns; only rejected rows become Python objects.
    ``seen`` (a chunked ingest) marks the rows, among those still valid, whose id an earlier
    chunk of the same file already stored: they are duplicates as in a one-chunk ingest.
    """
    table = raw.table
    n = table.num_rows
    headers = raw.headers
    cells_future: Future[dict[int, np.ndarray]] | None = None
    mapping, lon_col, lat_col, wkt_col, unmapped = map_headers(
        spec, headers, lon, lat, file, id_column
    )
    rej = Rejections(n)
    texts: dict[str, pa.Array] = {f: clean_text(table.column(h)) for h, f in mapping.items()}
    row_notes: list[tuple[np.ndarray, str, str]] = []  # (positions, field, note)
    use_columns = (
        spec.geometry == "point"
        and lon_col is not None
        and lat_col is not None
        and (raw.geometry is None or lon is not None)
    )
    used_crs = resolve_crs(crs, None if use_columns else raw.file_crs, file)
    geoms: np.ndarray | None = None
    repaired = np.zeros(n, dtype=bool)
    if use_columns:
        assert lon_col is not None and lat_col is not None
        xt, yt = clean_text(table.column(lon_col)), clean_text(table.column(lat_col))
        x, bad_x = parse_number(xt)
        y, bad_y = parse_number(yt)
        missing = ~present(xt) | ~present(yt)
        pair = None
        if (missing | bad_x | bad_y).any():
            pair = pc.binary_join_element_wise(pc.fill_null(xt, ""), pc.fill_null(yt, ""), ", ")
        rej.add(
            missing,
            f"{lon_col},{lat_col}",
            "missing_coordinates",
            pair,
            "经度或纬度为空 (lon or lat is empty)",
        )
        rej.add(
            (bad_x | bad_y) & ~missing,
            f"{lon_col},{lat_col}",
            "bad_coordinates",
            pair,
            "坐标不是有限数字 (not a finite number)",
        )
        ok = ~missing & ~bad_x & ~bad_y
        if not ok.all():
            x, y = np.where(ok, x, np.nan), np.where(ok, y, np.nan)
        wlon, wlat = check_coordinates(x, y, used_crs, settings, rej, lon_col, lat_col, xt, yt)
        cells_future = _index_in_background(wlon, wlat)
    elif raw.geometry is not None or wkt_col is not None:
        if raw.geometry is not None:
            src = np.asarray(raw.geometry, dtype=object)
        else:
            assert wkt_col is not None
            wkt_text = clean_text(table.column(wkt_col))
            wkt = wkt_text.to_numpy(zero_copy_only=False)
            src = shapely.from_wkt(wkt, on_invalid="ignore")
            rej.add(
                present(wkt_text) & shapely.is_missing(src),
                wkt_col,
                "invalid_geometry",
                wkt_text,
                "WKT 无法解析 (not readable WKT)",
            )
        missing = shapely.is_missing(src) | shapely.is_empty(src)
        rej.add(
            missing & ~rej.mask(),
            "geometry",
            "missing_geometry",
            None,
            "没有几何图形 (no geometry)",
        )
        kinds = shapely.get_type_id(src)
        if spec.geometry == "point":
            non_point = ~missing & (kinds != shapely.GeometryType.POINT)
            if non_point.any():
                src = src.copy()
                src[non_point] = shapely.point_on_surface(src[non_point])
                row_notes.append(
                    (
                        np.flatnonzero(non_point),
                        "geometry",
                        "面/线要素取面上一点作为位置 (area or line stored at a point on its surface)",
                    )
                )
            if missing.any():
                x = np.where(missing, np.nan, shapely.get_x(np.where(missing, None, src)))
                y = np.where(missing, np.nan, shapely.get_y(np.where(missing, None, src)))
            else:  # no object-array copies on the common path
                x, y = shapely.get_x(src), shapely.get_y(src)
            wlon, wlat = check_coordinates(x, y, used_crs, settings, rej, "geometry", "geometry")
            cells_future = _index_in_background(wlon, wlat)
        else:
            polygonal = np.isin(
                kinds, [shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON]
            )
            wrong = ~missing & ~polygonal
            type_names = np.full(n, None, dtype=object)
            type_names[wrong] = [g.geom_type for g in src[wrong]]  # only the rejected rows
            rej.add(
                wrong,
                "geometry",
                "wrong_geometry_type",
                type_names,
                f"{spec.name} 需要面要素 (needs polygons)",
            )
            good = ~missing & polygonal
            reps = np.full(n, None, dtype=object)
            reps[good] = shapely.point_on_surface(shapely.make_valid(src[good]))
            x = np.where(good, shapely.get_x(reps), np.nan)
            y = np.where(good, shapely.get_y(reps), np.nan)
            # rows without a usable polygon are already rejected; NaN keeps them out of the coordinate checks
            wlon, wlat = check_coordinates(x, y, used_crs, settings, rej, "geometry", "geometry")
            geoms = src if used_crs == "wgs84" else polygons_to_wgs84(src, used_crs)
            wgs84_polygons = geoms  # as read, before repair: what content ids are made of
            geoms, repaired, unrepairable = repair_polygons(np.where(good, geoms, None))
            rej.add(
                unrepairable,
                "geometry",
                "invalid_geometry",
                None,
                "make_valid 后没有面 (no polygon left after make_valid)",
            )
            if repaired.any():
                row_notes.append(
                    (
                        np.flatnonzero(repaired),
                        "geometry",
                        "无效面已用 make_valid 修复 (invalid polygon repaired with make_valid)",
                    )
                )
    else:
        hint = (
            "--lon COLUMN --lat COLUMN"
            if spec.geometry == "point"
            else "a WKT column (wkt/geometry/几何)"
        )
        raise ReadError(
            f"{file}: no coordinate columns found; headers seen: {', '.join(headers)}; pass {hint}"
        )

    values: dict[str, pa.Array] = {}
    mapped_notes: list[str] = []
    value_counts: dict[str, dict[tuple[str, str], int]] = {}
    for f in spec.fields:
        text = texts.get(f.name)
        if text is not None and f.value_aliases:
            text, counts = map_values(f, text)
            texts[f.name] = text
            if counts:
                value_counts[f.name] = counts
                mapped_notes.append(mapped_note(f.name, counts))
        if text is None:
            if f.required:
                rej.add(
                    np.ones(n, dtype=bool),
                    f.name,
                    "missing_required",
                    None,
                    f"文件中没有 {f.zh} 列 (no column for {f.name}; headers seen: {', '.join(headers)})",
                )
            continue
        if f.required:
            rej.add(
                ~present(text),
                f.name,
                "missing_required",
                text,
                f"{f.zh} 为必填项 ({f.name} is required)",
            )
        if f.choices:
            allowed = pc.is_in(enum_text(f, text), value_set=pa.array(f.choices, type=pa.string()))
            rej.add(
                present(text) & ~_true(allowed),
                f.name,
                "unknown_value",
                text,
                f"允许的取值 (allowed): {'/'.join(f.choices)}",
            )
        parsed, bad, reason = parse_field(f, text)
        rej.add(bad, f.name, reason, text, f"{f.zh} 应为 {f.type} ({f.name} must be a {f.type})")
        values[f.name] = parsed
    time_order(spec, values, texts, rej)
    interval_limits(spec, values, texts, rej, settings.response_max_interval_s)

    # ids: the source's own, else the spec's id_from field, else a stable hash of the row's
    # content (fields + WGS-84 position rounded to ID_POSITION_DECIMALS).
    ids = texts.get("id", pa.nulls(n, pa.string()))
    if spec.id_from is not None and spec.id_from in texts:
        from_field = ~present(ids) & present(texts[spec.id_from])
        if from_field.any():
            ids = pc.coalesce(ids, texts[spec.id_from])
            row_notes.append(
                (
                    np.flatnonzero(from_field),
                    "id",
                    f"编号取自 {spec.field(spec.id_from).zh} (id taken from {spec.id_from})",
                )
            )
    no_id = ~present(ids)
    if no_id.any():
        rows = np.flatnonzero(no_id)
        sel = pa.array(rows)
        where = (
            position_text(np.asarray(wlon)[rows], np.asarray(wlat)[rows])
            if spec.geometry == "point"
            else polygon_text(wgs84_polygons[rows])
        )
        material = pa.table(
            {**{k: v.take(sel) for k, v in sorted(texts.items()) if k != "id"}, "_where": where}
        )
        generated = pa.array(store.stable_ids(material, prefix=f"{spec.name}-"), type=pa.string())
        ids = pc.replace_with_mask(ids, pa.array(no_id), generated)
        row_notes.append(
            (rows, "id", "无编号，按内容生成稳定编号 (no id in file: stable id from content)")
        )
    values["id"] = ids
    valid = ~rej.mask()
    again = store.repeated(ids, valid)
    if seen is not None:
        again |= valid & seen(ids, valid)
    rej.add(
        again,
        "id",
        "duplicate_id",
        ids,
        "同一文件中编号重复，保留第一次出现的行 (duplicate id; the first row is kept)",
    )

    keep = ~rej.mask()
    everything = bool(keep.all())
    keep_arr = pa.array(keep)

    def kept(arr: pa.Array | np.ndarray) -> pa.Array | np.ndarray:
        if everything:
            return arr
        return arr.filter(keep_arr) if isinstance(arr, pa.Array) else arr[keep]

    columns: dict[str, Any] = {k: kept(v) for k, v in values.items()}
    columns["source_row"] = pa.array(kept(raw.row_numbers), type=pa.int64())
    if spec.geometry == "point":
        columns["lon"] = pa.array(kept(np.asarray(wlon, dtype=np.float64)))
        columns["lat"] = pa.array(kept(np.asarray(wlat, dtype=np.float64)))
        accepted: pa.Table | gpd.GeoDataFrame = pa.table(columns)
    else:
        assert geoms is not None
        frame = pa.table(columns).to_pandas(types_mapper=pd.ArrowDtype)
        accepted = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms[keep], crs=4326), crs=4326)

    rejected = _rejected_rows(rej, raw, file, spec)
    notes = _note_rows(row_notes, raw.row_numbers, ids, keep)
    prepared = Prepared(
        accepted=accepted,
        rejected=rejected,
        notes=notes,
        rows_read=n + len(raw.malformed),
        rejected_rows=int((~keep).sum()) + len(raw.malformed),
        rejected_by_reason=_with_malformed(rej.count_by_reason(), len(raw.malformed)),
        repaired=int((repaired & keep).sum()),
        column_map=mapping,
        unmapped=unmapped,
        file_notes=[*raw.notes, *mapped_notes],
        value_counts=value_counts,
    )
    if lon_col and lat_col and use_columns:
        prepared.column_map.update({lon_col: "lon", lat_col: "lat"})
    if cells_future is not None:
        future = cells_future

        def cells() -> dict[int, np.ndarray]:
            found = future.result()
            return found if everything else {r: c[keep] for r, c in found.items()}

        prepared.cells = cells
    return prepared, used_crs


# Content ids hash the WGS-84 position rounded to this many decimals of a degree: 1e-6 deg is
# 0.11 m north-south (less east-west), finer than any register locates a hydrant, and a
# million times coarser than the float noise of a CRS conversion (about 1e-12 deg for a
# Gauss-Kruger shapefile read back), so the same record gets the same id from any CRS.
# A technical choice, not a domain number: no setting. Coordinates the source itself
# rounded differently (GK to 1 mm vs degrees to 6 decimals) may still differ in the last
# decimal; such registers need their own id column (``--id``).
ID_POSITION_DECIMALS = 6


def position_text(lon: np.ndarray, lat: np.ndarray) -> pa.Array:
    """Positions as text for content ids: integer units of ``1e-ID_POSITION_DECIMALS`` degrees.

    Rows without a finite position (rejected anyway) give an empty string.
    """
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    with np.errstate(invalid="ignore"):  # out-of-range rows are rejected; they give ""
        ok = (np.abs(lon) <= 180) & (np.abs(lat) <= 90)
    scale = 10.0**ID_POSITION_DECIMALS
    units = [
        pa.array(np.rint(np.where(ok, v, 0.0) * scale).astype(np.int64)).cast(pa.string())
        for v in (lon, lat)
    ]
    joined = pc.binary_join_element_wise(units[0], units[1], ",")
    return joined if ok.all() else pc.if_else(pa.array(ok), joined, pa.scalar("", pa.string()))


def polygon_text(polygons: np.ndarray) -> pa.Array:
    """WGS-84 polygons as text for content ids: normalised (ring order and start vertex, which
    shapefiles and GeoJSON store differently), 2-D, rounded to ``ID_POSITION_DECIMALS``."""
    shapes = shapely.normalize(shapely.force_2d(np.asarray(polygons, dtype=object)))
    wkt = shapely.to_wkt(shapes, rounding_precision=ID_POSITION_DECIMALS, trim=True)
    return pa.array([w or "" for w in wkt], type=pa.string())


# Spatial extension load, file hash and H3 run side by side while the main thread reads and validates.
_BACKGROUND = ThreadPoolExecutor(3, thread_name_prefix="onemap-ingest")


def _index_in_background(lon: np.ndarray, lat: np.ndarray) -> Future[dict[int, np.ndarray]]:
    """H3 cells of every row, computed while validation goes on (h3ronpy releases the GIL).

    Rows without usable coordinates get a dummy cell; they are rejected and dropped.
    """
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    usable = np.isfinite(lon) & np.isfinite(lat)
    if not usable.all():
        lon, lat = np.where(usable, lon, 0.0), np.where(usable, lat, 0.0)
    return _BACKGROUND.submit(h3index.index_points, lon, lat, store.POINT_RESOLUTIONS)


def map_values(f: Field, text: pa.Array) -> tuple[pa.Array, dict[tuple[str, str], int]]:
    """Replace a field's accepted spellings by its canonical values (``Field.value_aliases``).

    Returns the mapped text and, per (spelling, canonical) pair, how many rows it changed.
    """
    spellings = [a for a, _ in f.value_aliases]
    canonical = pa.array([c for _, c in f.value_aliases], type=pa.string())
    where = pc.index_in(text, value_set=pa.array(spellings, type=pa.string()))
    if where.null_count == len(where):
        return text, {}
    found = where.filter(pc.is_valid(where)).to_numpy(zero_copy_only=False)
    hits = np.bincount(found, minlength=len(spellings))
    counts = {f.value_aliases[i]: int(k) for i, k in enumerate(hits) if k}
    return pc.coalesce(canonical.take(where), text), counts


def mapped_note(name: str, counts: dict[tuple[str, str], int]) -> str:
    """The file note saying which value aliases of field ``name`` were mapped, and how often."""
    pairs = ", ".join(f"{a}→{b} ×{k}" for (a, b), k in counts.items())
    return f"{name}: 取值按别名换为标准值 (value aliases mapped to canonical values): {pairs}"


def _true(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow column as numpy (null → False)."""
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def _with_malformed(counts: dict[str, int], malformed: int) -> dict[str, int]:
    return {"malformed_row": malformed, **counts} if malformed else counts


def _rejected_rows(rej: Rejections, raw: RawTable, file: str, spec: LayerSpec) -> pd.DataFrame:
    """Rows of the `rejected` table: one per failure, with the raw row as JSON."""
    fails = rej.frame()
    parts = []
    if len(fails):
        pos = fails["pos"].to_numpy()
        unique_pos, inverse = np.unique(pos, return_inverse=True)
        records = raw.table.take(pa.array(unique_pos)).to_pylist()  # only the rejected rows
        if raw.geometry is not None:
            wkt = shapely.to_wkt(
                np.asarray(raw.geometry, dtype=object)[unique_pos], rounding_precision=7
            )
            for record, w in zip(records, wkt, strict=True):
                record["geometry"] = w
        raw_json = np.asarray([json.dumps(r, ensure_ascii=False) for r in records], dtype=object)
        parts.append(
            pd.DataFrame(
                {
                    "row_number": raw.row_numbers[pos],
                    "field": fails["field"],
                    "reason": fails["reason"],
                    "value": fails["value"],
                    "detail": fails["detail"],
                    "raw": raw_json[inverse],
                }
            )
        )
    if raw.malformed:
        parts.append(
            pd.DataFrame(
                {
                    "row_number": [r for r, _ in raw.malformed],
                    "field": None,
                    "reason": "malformed_row",
                    "value": None,
                    "detail": "列数与表头不符 (number of fields differs from the header)",
                    "raw": [json.dumps({"_text": t}, ensure_ascii=False) for _, t in raw.malformed],
                }
            )
        )
    if not parts:
        return pd.DataFrame(
            columns=["layer", "file", "row_number", "field", "reason", "value", "detail", "raw"]
        )
    out = pd.concat(parts, ignore_index=True)
    out.insert(0, "file", file)
    out.insert(0, "layer", spec.name)
    out["row_number"] = out["row_number"].astype("Int64")
    return out


def _note_rows(
    row_notes: list[tuple[np.ndarray, str, str]],
    row_numbers: np.ndarray,
    ids: pa.Array,
    keep: np.ndarray,
) -> pd.DataFrame:
    parts = []
    for pos, fld, note in row_notes:
        pos = pos[keep[pos]]
        if len(pos):
            parts.append(
                pd.DataFrame(
                    {
                        "row_number": row_numbers[pos],
                        "id": np.asarray(ids.take(pa.array(pos)).to_pylist(), dtype=object),
                        "field": fld,
                        "note": note,
                    }
                )
            )
    if not parts:
        return pd.DataFrame(columns=["row_number", "id", "field", "note"])
    return pd.concat(parts, ignore_index=True)


# --------------------------------------------------------------------------- grid assignment


def assign_grids(
    con: duckdb.DuckDBPyConnection, spec: LayerSpec, rows: pa.Table
) -> tuple[pa.Table, int]:
    """Fill grid_id/community/town of points from the `grid` table where the file left them empty.

    Exact point in polygon (``geo.assign``); returns the table and the number of rows that
    received a value. The file's own values are kept.
    """
    if not spec.assign_to_grid or spec.geometry != "point" or not rows.num_rows:
        return rows, 0
    wanted = [f for f in GRID_FIELDS if f in spec.field_names]
    n = rows.num_rows
    present_cols = {
        f: as_text(rows.column(f)) if f in rows.column_names else pa.nulls(n, pa.string())
        for f in wanted
    }
    need = np.zeros(n, dtype=bool)
    for col in present_cols.values():
        need |= ~present(col)
    if not need.any():
        return rows, 0
    if not con.execute("SELECT count(*) FROM grid").fetchone()[0]:
        return rows, 0
    grids = store.read_layer(con, "grid", columns=["id", "town", "community"])
    # Cells lying entirely inside a grid, stored with the grid layer: their points need no geometric test.
    stored = store.query(con, f"SELECT id, cell FROM {store.interior_table('grid')}")
    position = pd.Series(np.arange(len(grids)), index=grids["id"].to_numpy())
    known = stored["id"].isin(position.index).to_numpy()
    interior = assign.lowest_index_per_cell(
        stored["cell"].to_numpy(dtype=np.uint64)[known],
        position[stored["id"].to_numpy()[known]].to_numpy(),
    )
    idx = np.flatnonzero(need)
    cell_col = h3index.cell_column(assign.ASSIGN_RES)
    cells = (
        np.asarray(rows.column(cell_col).to_numpy(), dtype=np.uint64)[idx]
        if cell_col in rows.column_names
        else None
    )
    hit = assign.points_in_polygons(
        rows.column("lon").to_numpy()[idx],
        rows.column("lat").to_numpy()[idx],
        grids.geometry.to_numpy(),
        cells=cells,
        interior=interior,
    )
    found = hit >= 0
    full = np.full(n, -1, dtype=np.int64)
    full[idx] = hit
    where = pa.array(full, mask=full < 0)  # no grid → null
    for f in wanted:
        # Through Arrow, not numpy objects: an empty cell of the grid register is a null
        # (pandas gives NaN, a float, for it), and the point simply gets no value.
        from_grid = as_text(pa.array(grids[GRID_SOURCE[f]], from_pandas=True)).take(where)
        filled = pc.coalesce(present_cols[f], from_grid)  # the file's own values are kept
        if f in rows.column_names:
            rows = rows.set_column(rows.column_names.index(f), f, filled)
        else:
            rows = rows.append_column(f, filled)
    return rows, int(found.sum())


# --------------------------------------------------------------------------- storing


def _store(
    con: duckdb.DuckDBPyConnection,
    spec: LayerSpec,
    prep: Prepared,
    file: str,
    crs: str,
    sha: str,
    started: datetime,
    note: str,
) -> int:
    """Write accepted rows, rejected rows, notes and the log into ``con``; returns rows assigned to grids."""
    rows = prep.accepted
    n_rows = len(rows) if isinstance(rows, pd.DataFrame) else rows.num_rows
    assigned = 0
    now = pd.Timestamp(datetime.now())
    if n_rows:
        if spec.geometry == "point":
            assert isinstance(rows, pa.Table)
            cells = (
                prep.cells()
                if prep.cells is not None
                else h3index.index_points(
                    rows.column("lon").to_numpy(),
                    rows.column("lat").to_numpy(),
                    store.POINT_RESOLUTIONS,
                )
            )
            for res, arr in cells.items():
                rows = rows.append_column(h3index.cell_column(res), pa.array(arr))
            rows, assigned = assign_grids(con, spec, rows)
            rows = rows.append_column("source_file", store.constant_text(file, n_rows))
        else:
            rows["source_file"] = file
        store.write_layer(con, spec.name, rows)
        prep.units = _unit_report(con, rows)
        if prep.units is not None and prep.units["named"] and not prep.units["responders"]:
            prep.file_notes.append(
                "数据库中还没有消防站或微型消防站，出动力量未匹配 (no fire stations or micro stations in "
                "the database yet: the units named were not matched; import them, then this file again)"
            )
        # Rows of this file replace their stored versions by id; what is left of an earlier
        # import of it are rows this file no longer has (or has under a new content id).
        left_out = _rows_from(con, spec.name, file) - n_rows
        if left_out:
            prep.file_notes.append(
                f"{left_out} 行为此文件以前导入、本次没有的行，已保留 ({left_out} rows an earlier "
                "import of this file stored are not among the rows accepted now; they are kept): "
                "a row edited in a register without ids gets a new id, so give the register an "
                "id column or --id"
            )
    con.execute("DELETE FROM rejected WHERE layer = ? AND file = ?", [spec.name, file])
    con.execute("DELETE FROM ingest_notes WHERE layer = ? AND file = ?", [spec.name, file])
    if len(prep.rejected):
        store.write_table(con, "rejected", prep.rejected.assign(ingested_at=now), replace=False)
    notes = prep.notes
    file_notes = list(prep.file_notes)
    if assigned:
        file_notes.append(
            f"{assigned} 行的网格/社区/街镇按网格面精确落点补全 (grid, community, town filled from the grid layer)"
        )
    if file_notes:
        notes = pd.concat(
            [
                notes,
                pd.DataFrame({"row_number": None, "id": None, "field": None, "note": file_notes}),
            ],
            ignore_index=True,
        )
    if len(notes):
        notes = notes.assign(layer=spec.name, file=file, ingested_at=now)
        notes["row_number"] = notes["row_number"].astype("Int64")
        store.write_table(con, "ingest_notes", notes, replace=False)
    log = pd.DataFrame(
        {
            "file": [file],
            "sha256": [sha],
            "layer": [spec.name],
            "crs": [crs],
            "started_at": [pd.Timestamp(started)],
            "finished_at": [pd.Timestamp(datetime.now())],
            "rows_read": [prep.rows_read],
            "accepted": [n_rows],
            "rejected": [prep.rejected_rows],
            "repaired": [prep.repaired],
            "note": [note],
        }
    )
    store.write_table(con, "ingest_log", log, replace=False)
    return assigned


UNMATCHED_LISTED = 50  # unmatched unit texts listed in an ingest result (the most frequent)
ROWS_LISTED = 10  # row numbers listed per unmatched unit text


def _unit_report(
    con: duckdb.DuckDBPyConnection, rows: pa.Table | pd.DataFrame
) -> dict[str, Any] | None:
    """Match the units (出动力量) of the accepted rows to the stations and micro stations of the
    database being written (``geo.units.match_units``); unmatched ones are reported, not rejected."""
    names = rows.column_names if isinstance(rows, pa.Table) else list(rows.columns)
    if "units" not in names:
        return None
    wanted = ["id", "units", "source_row"]
    if isinstance(rows, pa.Table):
        frame = rows.select(wanted).to_pandas()
    else:
        frame = pd.DataFrame(rows[wanted])
    frame = frame.rename(columns={"source_row": "row"})
    named = frame[frame["units"].notna()]
    responders = units.load_responders(con)
    report: dict[str, Any] = {
        "responders": len(responders), "named": 0, "matched": 0, "unmatched": [], "more": 0
    }
    if not len(named):
        return report
    match = units.match_units(named, responders)
    report["named"] = len(match.pairs) + len(match.unmatched)
    report["matched"] = len(match.pairs)
    if not len(responders):
        return report
    bad = match.unmatched.merge(
        named[["id", "row"]], left_on="incident_id", right_on="id", how="left"
    )
    grouped = bad.groupby(["unit_text", "reason"], sort=False)["row"]
    listed = grouped.agg(n="size", rows=lambda r: sorted(int(v) for v in r)[:ROWS_LISTED])
    listed = listed.reset_index()
    listed = listed.sort_values(["n", "unit_text"], ascending=[False, True], ignore_index=True)
    report["unmatched"] = [
        {"unit_text": str(text), "reason": str(reason), "count": int(n), "rows": list(rows_)}
        for text, reason, n, rows_ in listed.head(UNMATCHED_LISTED).itertuples(
            index=False, name=None
        )
    ]
    report["more"] = max(0, len(listed) - UNMATCHED_LISTED)
    return report


def _rows_from(con: duckdb.DuckDBPyConnection, layer: str, file: str) -> int:
    """Rows of ``layer`` stored from ``file``."""
    sql = f"SELECT count(*) FROM {layer} WHERE source_file = ?"
    return int(con.execute(sql, [file]).fetchone()[0])


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


@contextmanager
def _stages(label: str, show: bool) -> Iterator[Any]:
    """A tqdm bar over the ingest stages (read, validate, index and write) when ``show``."""
    if not show:
        yield lambda _name: None
        return
    from tqdm import tqdm

    bar = tqdm(total=3, desc=label, unit="step", leave=False)

    def step(name: str) -> None:
        bar.set_postfix_str(name)
        bar.update(1)

    try:
        yield step
    finally:
        bar.close()


def _spec(layer: str) -> LayerSpec:
    try:
        return get_spec(layer)
    except KeyError as exc:
        raise ValidationError(str(exc.args[0])) from None


def ingest_file(
    layer: str,
    path: str | os.PathLike[str],
    db: str | os.PathLike[str] | None = None,
    crs: str | int | None = None,
    lon: str | None = None,
    lat: str | None = None,
    sheet: str | int | None = None,
    encoding: str | None = None,
    settings: Settings | None = None,
    progress: bool = False,
    id_column: str | None = None,
) -> IngestResult:
    """Read, validate and store one file of ``layer`` in a new snapshot of the database.

    Parameters
    ----------
    layer
        Layer name (``onemap layers`` lists them).
    path
        CSV/TSV, XLSX, GeoJSON, GeoPackage, Shapefile (or .zip), GeoParquet or OSM PBF.
    db
        DuckDB file (default: ``ONEMAP_DB`` or the settings' ``db_path``).
    crs
        Source CRS: wgs84, cgcs2000, gcj02, bd09 or EPSG:<code>; default the file's own CRS, else wgs84.
    lon, lat
        Coordinate column names when the headers are not recognised.
    sheet
        XLSX sheet name or 0-based number (default the first).
    encoding
        Text encoding of CSV/Shapefile attributes (default: detected UTF-8 or GB18030).
    progress
        Show a progress bar for big files.
    id_column
        The column holding the register's own id when its header is not recognised; rows
        with the same id replace the stored ones, so an edited register updates its rows.

    Raises
    ------
    ReadError
        The file cannot be read at all (missing, wrong format, no coordinate columns).
    CRSError
        ``crs`` is unknown or contradicts the file.
    """
    settings = settings or Settings.load()
    spec = _spec(layer)
    p = Path(path)
    started = datetime.now()
    t0 = time.perf_counter()
    file = str(p.resolve())
    if crs is not None:
        normalise_crs(crs)
    # While the file is read and validated: load DuckDB's spatial extension and hash the
    # file (both release the GIL), so neither adds to the ingest time on a second core.
    warm = _BACKGROUND.submit(store.warm_up)
    sha_future = _BACKGROUND.submit(file_sha256, p) if p.is_file() else None
    chosen = ingest_stream.plan(p, spec, settings)
    if chosen.chunked:  # the whole file would not fit ingest_memory_mb: chunk by chunk
        options = {"crs": crs, "lon": lon, "lat": lat, "id_column": id_column,
                   "sheet": sheet, "encoding": encoding}
        db_path = store.resolve_db_path(db, settings)
        warm.result()
        tally, extra = ingest_stream.ingest_chunks(
            spec, p, file, db_path, chosen, prepare=prepare, options=options,
            settings=settings, sha=sha_future, progress=progress,
        )
        return _chunked_result(spec, tally, extra, file, time.perf_counter() - t0, db_path)
    raw = read_any(p, spec, sheet=sheet, encoding=encoding)
    t_read = time.perf_counter()
    with _stages(p.name, progress and raw.n_rows >= PROGRESS_MIN_ROWS) as step:
        step("read")
        prep, used_crs = prepare(spec, raw, crs, settings, file, lon, lat, id_column)
        t_valid = time.perf_counter()
        step("validated")
        sha = sha_future.result() if sha_future is not None else file_sha256(p)
        note = f"format {raw.fmt}" + (f", encoding {raw.encoding}" if raw.encoding else "")
        db_path = store.resolve_db_path(db, settings)
        warm.result()
        with store.writer(db_path) as con:
            began = time.perf_counter()
            assigned = _store(con, spec, prep, file, used_crs, sha, started, note)
            stored = time.perf_counter()
        step("written")
    t_end = time.perf_counter()
    stages = {
        "read": t_read - t0,
        "validate": t_valid - t_read,
        "store": stored - began,
        "snapshot": (began - t_valid) + (t_end - stored),
    }
    stages = {k: round(v, 3) for k, v in stages.items()}
    return _result(
        spec,
        prep,
        file,
        used_crs,
        raw.fmt,
        raw.encoding,
        sha,
        assigned,
        time.perf_counter() - t0,
        str(db_path),
        stages,
    )


def ingest_frame(
    con: duckdb.DuckDBPyConnection,
    layer: str,
    frame: pd.DataFrame,
    source_file: str,
    crs: str | int | None = None,
    lon: str | None = None,
    lat: str | None = None,
    settings: Settings | None = None,
    id_column: str | None = None,
) -> IngestResult:
    """Validate and store an in-memory frame through a writer connection (``store.writer``).

    ``frame`` may be a GeoDataFrame (its geometry and CRS are used) or a DataFrame with
    coordinate columns; headers are matched like a file's. Row numbers are 1-based positions.
    """
    settings = settings or Settings.load()
    spec = _spec(layer)
    t0 = time.perf_counter()
    started = datetime.now()
    geoms, file_crs = None, None
    if isinstance(frame, gpd.GeoDataFrame) and frame._geometry_column_name in frame:
        geoms = frame.geometry.to_numpy()
        file_crs = (
            f"EPSG:{frame.crs.to_epsg()}" if frame.crs is not None and frame.crs.to_epsg() else None
        )
        frame = pd.DataFrame(frame.drop(columns=[frame.geometry.name]))
    text = pd.DataFrame({str(c): to_text(frame[c]) for c in frame.columns}, index=range(len(frame)))
    raw = RawTable(
        table=text_table(text),
        row_numbers=np.arange(1, len(text) + 1, dtype=np.int64),
        fmt="frame",
        geometry=geoms,
        file_crs=file_crs,
    )
    prep, used_crs = prepare(spec, raw, crs, settings, source_file, lon, lat, id_column)
    assigned = _store(con, spec, prep, source_file, used_crs, "", started, "in-memory frame")
    return _result(
        spec,
        prep,
        source_file,
        used_crs,
        "frame",
        None,
        "",
        assigned,
        time.perf_counter() - t0,
        None,
    )


def _chunked_result(
    spec: LayerSpec, tally: Any, extra: dict[str, Any], file: str, seconds: float, db: Path
) -> IngestResult:
    """The result of a chunked ingest (``geo.ingest_stream``): the chunks' sums."""
    return IngestResult(
        file=file,
        layer=spec.name,
        crs=extra["crs"],
        fmt=extra["fmt"],
        rows_read=tally.rows_read,
        accepted=tally.accepted,
        rejected=tally.rejected_rows,
        rejected_by_reason=tally.by_reason(),
        repaired=0,
        assigned_to_grid=tally.assigned,
        column_map=dict(tally.column_map),
        unmapped_columns=tuple(tally.unmapped),
        notes=tuple(tally.file_notes),
        sha256=extra["sha256"],
        encoding=extra["encoding"],
        seconds=round(seconds, 3),
        db=str(db),
        stages=extra["stages"],
        units=tally.units,
    )


def _result(
    spec: LayerSpec,
    prep: Prepared,
    file: str,
    crs: str,
    fmt: str,
    encoding: str | None,
    sha: str,
    assigned: int,
    seconds: float,
    db: str | None,
    stages: dict[str, float] | None = None,
) -> IngestResult:
    return IngestResult(
        file=file,
        layer=spec.name,
        crs=crs,
        fmt=fmt,
        rows_read=prep.rows_read,
        accepted=len(prep.accepted)
        if isinstance(prep.accepted, pd.DataFrame)
        else prep.accepted.num_rows,
        rejected=prep.rejected_rows,
        rejected_by_reason=prep.rejected_by_reason,
        repaired=prep.repaired,
        assigned_to_grid=assigned,
        column_map=dict(prep.column_map),
        unmapped_columns=tuple(prep.unmapped),
        notes=tuple(prep.file_notes),
        sha256=sha,
        encoding=encoding,
        seconds=round(seconds, 3),
        db=db,
        stages=dict(stages or {}),
        units=prep.units,
    )


def reason_label(code: str) -> str:
    """Chinese label of a rejection reason code."""
    return REASONS.get(code, code)
