"""Readers: one function per file format, each returning a ``RawTable`` of text values.

Every reader keeps the user's headers and values as text (the validator parses them, so
a bad value is reported, never coerced), the row number as the user sees it (header = row
1 in CSV/XLSX; feature number in vector files) and, for vector formats, the geometries
and the file's own CRS. Formats: CSV/TSV (UTF-8 with or without BOM, GBK/GB18030
detected), XLSX, GeoJSON, GeoPackage, Shapefile (also zipped), GeoParquet, OSM PBF.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from geo.errors import ReadError
from layers.base import LAT_ALIASES, LON_ALIASES, LayerSpec, normalise_header

TABULAR = {".csv", ".tsv", ".txt"}
EXCEL = {".xlsx", ".xlsm"}
VECTOR = {".geojson", ".json", ".gpkg", ".shp", ".zip", ".fgb"}
PARQUET = {".parquet", ".geoparquet"}
OSM = {".pbf"}
HEADER_SEARCH_ROWS = 10  # an Excel export may have a title row or two above the header

# OSM tags that select each layer (OpenStreetMap wiki: Tag:emergency=fire_hydrant,
# Tag:amenity=fire_station, Key:emergency) and how their tags map to spec values.
OSM_FILTERS: dict[str, dict[str, list[str]]] = {
    "hydrant": {"emergency": ["fire_hydrant"]},
    "fire_station": {"amenity": ["fire_station"]},
    "water_source": {"emergency": ["water_tank", "suction_point", "fire_water_pond"]},
}
OSM_HYDRANT_TYPE = {"pillar": "地上式", "underground": "地下式", "wall": "地上式"}
OSM_WATER_KIND = {
    "water_tank": "消防水箱",
    "suction_point": "天然水源取水点",
    "fire_water_pond": "消防水池",
}


@dataclass
class RawTable:
    """What a reader found: text columns under the file's own headers, and geometry if any.

    ``table`` holds every column as Arrow strings (null where the cell is empty); the
    validator works on it directly, so no value becomes a Python object unless its row is
    rejected.
    """

    table: pa.Table
    row_numbers: np.ndarray
    fmt: str
    geometry: np.ndarray | None = None
    file_crs: str | None = None
    encoding: str | None = None
    # Rows the reader itself could not split into fields: (row number, text).
    malformed: list[tuple[int | None, str]] = field(default_factory=list)
    # File-level notes (how OSM tags were mapped, which sheet was used, ...).
    notes: list[str] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        """Rows the reader split into fields."""
        return self.table.num_rows

    @property
    def headers(self) -> list[str]:
        """The file's headers, in file order."""
        return [str(c) for c in self.table.column_names]

    @property
    def frame(self) -> pd.DataFrame:
        """The text columns as a pandas frame (Arrow-backed strings)."""
        return self.table.to_pandas()


def text_table(frame: pd.DataFrame) -> pa.Table:
    """A frame of text columns (None where empty) as an Arrow table of strings."""
    arrays = [
        pa.array(
            frame[c].astype("str") if frame[c].dtype != "str" else frame[c],
            type=pa.string(),
            from_pandas=True,
        )
        for c in frame.columns
    ]
    return pa.Table.from_arrays(arrays, names=[str(c) for c in frame.columns])


def read_any(
    path: str | Path,
    spec: LayerSpec,
    sheet: str | int | None = None,
    encoding: str | None = None,
) -> RawTable:
    """Read ``path`` with the reader its extension calls for; ReadError if it cannot be read."""
    p = Path(path)
    if not p.exists():
        raise ReadError(f"{p}: file not found")
    if p.is_dir():
        raise ReadError(f"{p}: is a directory, not a file")
    ext = p.suffix.lower()
    try:
        if ext in TABULAR:
            return read_csv(p, encoding)
        if ext in EXCEL:
            return read_xlsx(p, spec, sheet)
        if ext == ".xls":
            raise ReadError(
                f"{p}: old .xls workbooks are not supported; save it as .xlsx or CSV in Excel/WPS"
            )
        if ext in PARQUET:
            return read_parquet(p)
        if ext in OSM:
            return read_osm(p, spec)
        if ext in VECTOR:
            return read_vector(p, spec, encoding)
    except ReadError:
        raise
    except (OSError, ValueError, pa.ArrowException, zipfile.BadZipFile, KeyError) as exc:
        raise ReadError(
            f"{p}: cannot be read as {ext or 'this format'}: {_first_line(exc)}"
        ) from exc
    known = sorted(TABULAR | EXCEL | PARQUET | OSM | VECTOR)
    raise ReadError(f"{p}: unknown file type {ext!r}; supported: {', '.join(known)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


# --------------------------------------------------------------------------- text values


def to_text(column: pd.Series) -> pd.Series:
    """Values as text the way a user typed them: integral floats without '.0', ISO dates; None if empty."""
    if column.dtype.kind == "f":
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        out = pd.Series(values.astype(str), index=column.index, dtype=object)
        integral = np.isfinite(values) & (np.floor(values) == values) & (np.abs(values) < 1e15)
        out[integral] = values[integral].astype(np.int64).astype(str)
        out[np.isnan(values)] = None
        return out.astype("str")
    if column.dtype.kind in "iub":
        out = column.astype("str")
        return out.where(column.notna(), None)
    if column.dtype.kind == "M":
        text = column.dt.strftime("%Y-%m-%d %H:%M:%S").str.removesuffix(" 00:00:00")
        return text.where(column.notna(), None)
    if column.dtype == object:
        return column.map(_cell_text, na_action="ignore").astype("str")
    return column.astype("str").where(column.notna(), None)


def _cell_text(value: Any) -> str | None:
    """One cell as text (XLSX cells, object columns)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value:
            return None
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ").removesuffix(" 00:00:00")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, (list, tuple, np.ndarray)):
        # GDAL reads a whole column as lists when one feature has a list: ["正常"] is 正常.
        if len(value) == 1:
            return _cell_text(value[0])
        return _json_text(list(value))
    if isinstance(value, dict):
        return _json_text(value)
    return str(value)


def _json_text(value: list[Any] | dict[str, Any]) -> str:
    """A nested value as JSON text (too deep to encode: its type and a note, never an error)."""
    try:
        return json.dumps(value, ensure_ascii=False, default=_cell_text)
    except (RecursionError, ValueError, TypeError):
        return f"<{type(value).__name__} nested too deeply to show>"


# --------------------------------------------------------------------------- CSV / TSV


def is_utf8(data: bytes) -> bool:
    """Whether ``data`` is valid UTF-8 (Arrow's vectorised validation: no decoded copy)."""
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int64))
    arr = pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        arr.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def detect_encoding(data: bytes, encoding: str | None = None) -> str:
    """'utf-8-sig', 'utf-8' or 'gb18030' (a superset of GBK, what Chinese Excel exports)."""
    if encoding:
        return encoding
    if data.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if is_utf8(data):
        return "utf-8"
    try:
        data.decode("gb18030")
        return "gb18030"
    except UnicodeDecodeError:
        return ""


def read_csv(path: Path, encoding: str | None = None) -> RawTable:
    """CSV/TSV as text columns; encoding detected (UTF-8, UTF-8 with BOM, GBK/GB18030)."""
    data = path.read_bytes()
    if not data[:65536].strip() and not data.strip():  # the full scan only when the head is blank
        raise ReadError(f"{path}: file is empty")
    if b"\x00" in data[:4096]:
        raise ReadError(f"{path}: looks like a binary file, not CSV text")
    enc = detect_encoding(data, encoding)
    if not enc:
        raise ReadError(
            f"{path}: text is neither UTF-8 nor GBK/GB18030; pass --encoding (e.g. --encoding big5)"
        )
    try:  # transcoded once, in bulk; UTF-8 is used as is
        text_data = data if enc in ("utf-8", "utf-8-sig") else data.decode(enc).encode("utf-8")
    except (UnicodeDecodeError, LookupError) as exc:
        raise ReadError(f"{path}: cannot decode as {enc}: {_first_line(exc)}") from exc
    start = 3 if text_data.startswith(b"\xef\xbb\xbf") else 0
    end = text_data.find(b"\n", start)
    first_line = (
        text_data[start : end if end >= 0 else None].decode("utf-8", errors="replace").rstrip("\r")
    )
    delimiter = max(["\t", ",", ";", "|"], key=first_line.count)
    if first_line.count(delimiter) == 0 and path.suffix.lower() == ".tsv":
        delimiter = "\t"
    headers = next(csv.reader([first_line], delimiter=delimiter))
    headers = _unique_headers(headers)
    malformed: list[tuple[int | None, str]] = []

    def on_invalid(row: Any) -> str:
        malformed.append((row.number, row.text))
        return "skip"

    try:
        table = pacsv.read_csv(
            pa.BufferReader(pa.py_buffer(text_data).slice(start)),  # no copy
            read_options=pacsv.ReadOptions(column_names=headers, skip_rows=1, block_size=1 << 24),
            # A newline can only sit inside a quoted cell; without quotes pyarrow parses in parallel.
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter,
                newlines_in_values=b'"' in text_data,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={h: pa.string() for h in headers},
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
                null_values=[""],
            ),
        )
    except pa.ArrowInvalid as exc:
        raise ReadError(f"{path}: not a readable CSV ({_first_line(exc)})") from exc
    # Row number as the user sees it in Excel: header is row 1, one row per record (a quoted
    # cell may hold a newline). pyarrow skips blank lines and malformed records without
    # knowing their record number, so such files are numbered by a second pass.
    rows = np.arange(2, table.num_rows + 2, dtype=np.int64)
    if malformed or b"\n\n" in text_data or b"\n\r\n" in text_data:
        good, bad = _number_records(
            text_data[start:].decode("utf-8", errors="replace"), delimiter, len(headers)
        )
        if len(good) == table.num_rows:
            rows = np.asarray(good, dtype=np.int64)
            malformed = bad
    return RawTable(table=table, row_numbers=rows, fmt="csv", encoding=enc, malformed=malformed)


def _number_records(
    text: str, delimiter: str, n_columns: int
) -> tuple[list[int], list[tuple[int | None, str]]]:
    """Row numbers of the well-formed records and (row, text) of the malformed ones."""
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    next(reader, None)
    good: list[int] = []
    bad: list[tuple[int | None, str]] = []
    for row, record in enumerate(reader, start=2):
        if not record:
            continue
        if len(record) != n_columns:
            bad.append((row, delimiter.join(record)))
        else:
            good.append(row)
    return good, bad


def _unique_headers(headers: list[str]) -> list[str]:
    """Headers made unique (a repeated header gets a suffix) and never empty."""
    out: list[str] = []
    seen: dict[str, int] = {}
    for i, h in enumerate(headers):
        name = h.strip() or f"column_{i + 1}"
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 0
        out.append(name)
    return out


# --------------------------------------------------------------------------- XLSX


def read_xlsx(path: Path, spec: LayerSpec, sheet: str | int | None = None) -> RawTable:
    """First (or ``sheet``) worksheet as text; the header row is found among the first rows."""
    import openpyxl

    try:
        with warnings.catch_warnings():
            # Workbooks saved by WPS and older Excel versions: harmless, not the user's problem.
            warnings.filterwarnings(
                "ignore", message="Workbook contains no default style", category=UserWarning
            )
            warnings.filterwarnings(
                "ignore", message=".*extension is not supported", category=UserWarning
            )
            wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise ReadError(f"{path}: not an Excel .xlsx workbook ({_first_line(exc)})") from exc
    try:
        names = wb.sheetnames
        if sheet is None:
            ws = wb.worksheets[0]
        elif str(sheet) in names:  # a sheet named "2024" is a name, not a number
            ws = wb[str(sheet)]
        elif isinstance(sheet, int) or str(sheet).isdigit():
            idx = int(sheet)
            if not 0 <= idx < len(names):
                raise ReadError(
                    f"{path}: no sheet number {idx} (0-based); sheets: {', '.join(names)}"
                )
            ws = wb.worksheets[idx]
        else:
            raise ReadError(f"{path}: no sheet {sheet!r}; sheets: {', '.join(names)}")
        rows = [tuple(_cell_text(v) for v in r) for r in ws.iter_rows(min_row=1, values_only=True)]
        sheet_name = ws.title
    finally:
        wb.close()
    header_at = find_header_row(rows, spec)
    if header_at is None:
        raise ReadError(f"{path}: sheet {sheet_name!r} is empty")
    width = max((len(r) for r in rows), default=0)
    headers = _unique_headers(
        [(rows[header_at][i] if i < len(rows[header_at]) else None) or "" for i in range(width)]
    )
    body = [r + (None,) * (width - len(r)) for r in rows[header_at + 1 :]]
    numbers = np.arange(header_at + 2, header_at + 2 + len(body), dtype=np.int64)
    keep = np.array([any(v is not None and str(v).strip() for v in r) for r in body], dtype=bool)
    body = [r for r, k in zip(body, keep, strict=True) if k]
    columns = list(zip(*body, strict=True)) if body else [()] * len(headers)
    table = pa.Table.from_arrays(
        [pa.array(list(col), type=pa.string()) for col in columns], names=headers
    )
    notes = [f"sheet {sheet_name!r}, header on row {header_at + 1}"]
    if len(names) > 1 and sheet is None:
        notes.append(f"workbook has sheets {names}; read the first (choose with --sheet)")
    return RawTable(table=table, row_numbers=numbers[keep], fmt="xlsx", notes=notes)


def find_header_row(rows: list[tuple[Any, ...]], spec: LayerSpec) -> int | None:
    """Index of the header row: the first of the top rows naming ≥ 2 known columns, else the first non-empty."""
    known = set(spec.alias_map()) | {normalise_header(a) for a in LON_ALIASES + LAT_ALIASES}
    first_nonempty = None
    for i, row in enumerate(rows[:HEADER_SEARCH_ROWS]):
        cells = [c for c in row if c is not None and str(c).strip()]
        if not cells:
            continue
        if first_nonempty is None:
            first_nonempty = i
        if sum(normalise_header(c) in known for c in cells) >= 2:
            return i
    return first_nonempty


# --------------------------------------------------------------------------- vector formats


def _crs_name(crs: Any) -> str | None:
    if crs is None:
        return None
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_wkt()


def _split_geometry(gdf: Any) -> tuple[pa.Table, np.ndarray | None, str | None]:
    """Attributes as text columns, geometries, CRS of a GeoDataFrame."""
    geom_name = (
        gdf.geometry.name if hasattr(gdf, "geometry") and gdf._geometry_column_name in gdf else None
    )
    geoms = gdf.geometry.to_numpy() if geom_name else None
    crs = _crs_name(gdf.crs) if geom_name else None
    attrs = pd.DataFrame(gdf.drop(columns=[geom_name]) if geom_name else gdf)
    frame = pd.DataFrame(
        {str(c): to_text(attrs[c]) for c in attrs.columns}, index=range(len(attrs))
    )
    return text_table(frame), geoms, crs


def read_vector(path: Path, spec: LayerSpec, encoding: str | None = None) -> RawTable:
    """GeoJSON, GeoPackage, Shapefile (also .zip) through pyogrio (GDAL)."""
    import pyogrio

    source = str(path)
    notes: list[str] = []
    if path.suffix.lower() == ".zip":
        with zipfile.ZipFile(path) as zf:
            inner = [
                n
                for n in zf.namelist()
                if n.lower().endswith((".shp", ".gpkg", ".geojson", ".json"))
            ]
        if not inner:
            raise ReadError(f"{path}: the zip holds no .shp, .gpkg or .geojson file")
        source = f"/vsizip/{path}/{inner[0]}"
        if len(inner) > 1:
            notes.append(f"zip holds {inner}; read {inner[0]}")
    layer_name = None
    try:
        layers = pyogrio.list_layers(source)
    except Exception as exc:  # GDAL raises its own DataSourceError types
        raise ReadError(f"{path}: not a readable {path.suffix} file ({_first_line(exc)})") from exc
    if len(layers) > 1:
        names = [str(n) for n in layers[:, 0]]
        layer_name = spec.name if spec.name in names else names[0]
        notes.append(f"file has layers {names}; read {layer_name!r}")
    kwargs: dict[str, Any] = {"layer": layer_name} if layer_name else {}
    if encoding:
        kwargs["encoding"] = encoding
    try:
        with warnings.catch_warnings():
            # A nested property GDAL cannot give back as JSON stays text: nothing to warn about.
            warnings.filterwarnings("ignore", "Could not parse column", UserWarning)
            gdf = pyogrio.read_dataframe(source, **kwargs)
    except Exception as exc:
        raise ReadError(f"{path}: not a readable {path.suffix} file ({_first_line(exc)})") from exc
    table, geoms, crs = _split_geometry(gdf)
    rows = np.arange(1, table.num_rows + 1, dtype=np.int64)
    return RawTable(
        table=table,
        row_numbers=rows,
        fmt=path.suffix.lower().lstrip("."),
        geometry=geoms,
        file_crs=crs,
        notes=notes,
    )


def read_parquet(path: Path) -> RawTable:
    """GeoParquet (geometry + CRS), or plain Parquet with coordinate columns."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    if b"geo" in meta:
        import geopandas as gpd

        gdf = gpd.read_parquet(path)
        table, geoms, crs = _split_geometry(gdf)
    else:
        df = pd.read_parquet(path)
        table = text_table(
            pd.DataFrame({str(c): to_text(df[c]) for c in df.columns}, index=range(len(df)))
        )
        geoms, crs = None, None
    rows = np.arange(1, table.num_rows + 1, dtype=np.int64)
    return RawTable(table=table, row_numbers=rows, fmt="parquet", geometry=geoms, file_crs=crs)


# --------------------------------------------------------------------------- OSM PBF


def read_osm(path: Path, spec: LayerSpec) -> RawTable:
    """Fire hydrants, fire stations or water sources from an OSM PBF extract (pyrosm).

    OSM tags are mapped to spec values; every mapping is stated in ``notes``.
    """
    if spec.name not in OSM_FILTERS:
        raise ReadError(
            f"{path}: OSM PBF import supports the layers {', '.join(OSM_FILTERS)}, not {spec.name!r}"
        )
    import pyrosm

    try:
        osm = pyrosm.OSM(str(path))
        pois = osm.get_pois(custom_filter=OSM_FILTERS[spec.name])
    except Exception as exc:  # pyrosm raises plain Exceptions on a bad file
        raise ReadError(f"{path}: not a readable OSM PBF file ({_first_line(exc)})") from exc
    notes = [f"OSM features with {OSM_FILTERS[spec.name]}"]
    if pois is None or len(pois) == 0:
        return RawTable(
            table=pa.table({"id": pa.array([], type=pa.string())}),
            row_numbers=np.array([], dtype=np.int64),
            fmt="osm",
            geometry=np.array([], dtype=object),
            file_crs="EPSG:4326",
            notes=notes,
        )
    tags = [json.loads(t) if isinstance(t, str) else {} for t in pois["tags"]]
    for col in pois.columns:  # pyrosm promotes some tags to columns
        if col not in (
            "tags",
            "geometry",
            "id",
            "lon",
            "lat",
            "version",
            "timestamp",
            "changeset",
            "visible",
        ):
            for t, v in zip(tags, pois[col], strict=True):
                if isinstance(v, str) and v:
                    t.setdefault(col, v)
    mapped = [_osm_row(spec.name, t) for t in tags]
    frame = pd.DataFrame(mapped)
    ids = [f"osm_{kind}_{i}" for kind, i in zip(pois["osm_type"], pois["id"], strict=True)]
    frame.insert(0, "id", ids)
    frame["osm_tags"] = [json.dumps(t, ensure_ascii=False) for t in tags]
    frame = frame.astype("str").where(frame.notna(), None)
    notes += _osm_notes(spec.name)
    return RawTable(
        table=text_table(frame),
        row_numbers=np.arange(1, len(frame) + 1, dtype=np.int64),
        fmt="osm",
        geometry=pois.geometry.to_numpy(),
        file_crs="EPSG:4326",
        notes=notes,
    )


def _osm_number(text: str | None) -> str | None:
    if not text:
        return None
    token = text.replace(",", ".").split(";")[0].strip().split(" ")[0]
    try:
        float(token)
    except ValueError:
        return None
    return token


def _osm_row(layer: str, t: dict[str, str]) -> dict[str, str | None]:
    """Spec fields from one OSM feature's tags."""
    street = " ".join(x for x in (t.get("addr:street"), t.get("addr:housenumber")) if x)
    row: dict[str, str | None] = {"name": t.get("name") or t.get("ref"), "address": street or None}
    if layer == "hydrant":
        disused = any(k.startswith("disused") for k in t) or t.get("operational_status") in (
            "out_of_order",
            "broken",
        )
        row["status"] = "停用" if disused else "正常"
        row["hydrant_type"] = OSM_HYDRANT_TYPE.get(t.get("fire_hydrant:type", ""))
        row["pipe_diameter_mm"] = _osm_number(t.get("fire_hydrant:diameter") or t.get("diameter"))
        bar = _osm_number(t.get("fire_hydrant:pressure") or t.get("pressure"))
        row["pressure_mpa"] = str(float(bar) / 10.0) if bar else None
    elif layer == "fire_station":
        row["phone"] = t.get("phone") or t.get("contact:phone")
    elif layer == "water_source":
        row["kind"] = OSM_WATER_KIND.get(t.get("emergency", ""))
        row["capacity_m3"] = _osm_number(t.get("water_tank:volume") or t.get("volume"))
    return row


def _osm_notes(layer: str) -> list[str]:
    if layer == "hydrant":
        return [
            "status: OSM has no status for most hydrants; 正常 unless a disused*/operational_status tag says 停用",
            "hydrant_type: fire_hydrant:type pillar/wall → 地上式, underground → 地下式",
            "pipe_diameter_mm: fire_hydrant:diameter or diameter; pressure_mpa: fire_hydrant:pressure (bar) / 10",
        ]
    if layer == "water_source":
        return [f"kind: emergency={k} → {v}" for k, v in OSM_WATER_KIND.items()]
    return ["fire stations mapped as areas are stored at a point on their surface"]
