"""Chunked readers: a big file as a sequence of ``RawTable`` chunks, in bounded memory.

``onemap ingest`` of a file larger than one chunk reads it chunk by chunk (``open_chunks``)
so its peak memory does not grow with the file. Each chunk is a ``RawTable`` whose row
numbers are the file's own (header = row 1), exactly as ``geo.readers.read_any`` numbers the
whole file, so a streaming ingest rejects the same rows under the same numbers.

- CSV/TSV: pyarrow's serial streaming reader (one block of bytes per chunk); the encoding
  (UTF-8, UTF-8 with BOM, GB18030) and whether the file has blank lines or quotes are found
  by one scan of the bytes first. Row numbers: consecutive from 2 while no row was skipped;
  once a blank line or a malformed record shifts them, Python's ``csv`` module numbers the
  records in step with the chunks (as the whole-file reader's second pass does).
- XLSX: openpyxl's read-only mode, rows in batches.
- GeoParquet and Parquet: record batches of the row groups (pyarrow), each turned into text
  the way ``geo.readers.read_parquet`` turns the whole file.
- GeoJSON, GeoPackage, Shapefile, OSM PBF: read whole (GDAL), then validated and written in
  chunks; their reading is not bounded (documented in README).
"""

from __future__ import annotations

import codecs
import csv
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from geo.errors import ReadError
from geo.readers import (
    EXCEL,
    PARQUET,
    TABULAR,
    RawTable,
    _cell_text,
    _crs_name,
    _first_line,
    _split_geometry,
    _unique_headers,
    find_header_row,
    is_utf8,
    read_any,
    read_xlsx,
    text_table,
    to_text,
)
from layers.base import LayerSpec

SCAN_BLOCK = 1 << 20  # bytes per read of the encoding / blank-line scan (small: glibc keeps big freed blocks)
MIN_BLOCK = 1 << 10  # smallest CSV block handed to pyarrow (a record must fit in one block)
MAX_BLOCK = 1 << 22  # largest: a record (row) of a CSV read in chunks is at most 4 MB


@dataclass
class Chunked:
    """A file opened for chunked reading: its format, encoding and an iterator of chunks."""

    fmt: str
    encoding: str | None
    chunks: Iterator[RawTable]
    size: int  # bytes of the file (progress)
    position: Any = None  # callable → bytes consumed so far (progress), or None
    notes: list[str] = field(default_factory=list)


def open_chunks(
    path: Path,
    spec: LayerSpec,
    chunk_rows: int,
    sheet: str | int | None = None,
    encoding: str | None = None,
) -> Chunked:
    """Open ``path`` for reading in chunks of about ``chunk_rows`` rows."""
    ext = path.suffix.lower()
    size = path.stat().st_size
    if ext in TABULAR:
        return _csv_chunks(path, chunk_rows, encoding, size)
    if ext in EXCEL:
        return _xlsx_chunks(path, spec, sheet, chunk_rows, size)
    if ext in PARQUET:
        return _parquet_chunks(path, chunk_rows, size)
    raw = read_any(path, spec, sheet=sheet, encoding=encoding)
    return Chunked(raw.fmt, raw.encoding, split(raw, chunk_rows), size)


def split(raw: RawTable, chunk_rows: int) -> Iterator[RawTable]:
    """A whole table in chunks of ``chunk_rows`` rows (reader malformed rows and notes ride on the first)."""
    n = raw.n_rows
    for start in range(0, max(n, 1), chunk_rows):
        stop = min(n, start + chunk_rows)
        yield RawTable(
            table=raw.table.slice(start, stop - start),
            row_numbers=raw.row_numbers[start:stop],
            fmt=raw.fmt,
            geometry=None if raw.geometry is None else raw.geometry[start:stop],
            file_crs=raw.file_crs,
            encoding=raw.encoding,
            malformed=raw.malformed if start == 0 else [],
            notes=raw.notes if start == 0 else [],
        )


# --------------------------------------------------------------------------- CSV


@dataclass
class _Scan:
    encoding: str
    blank_lines: bool
    quotes: bool
    first_line: str
    bytes_per_row: float


def _scan_csv(path: Path, encoding: str | None) -> _Scan:
    """One pass over the bytes: encoding, blank lines, quotes, first line, bytes per row."""
    utf8, blank, quotes, newlines, total = True, False, False, 0, 0
    head = b""
    tail = b""
    with open(path, "rb") as fh:
        carry = b""
        while block := fh.read(SCAN_BLOCK):
            if not head:
                head = block[: 1 << 16]
            total += len(block)
            joined = tail + block
            blank = blank or b"\n\n" in joined or b"\n\r\n" in joined
            quotes = quotes or b'"' in block
            newlines += block.count(b"\n")
            tail = block[-2:]
            if utf8 and not encoding:
                data = carry + block
                cut = _utf8_boundary(data)
                utf8 = is_utf8(data[:cut])
                carry = data[cut:]
        if utf8 and carry:
            utf8 = is_utf8(carry)
    if not head.strip() and total < (1 << 16):
        raise ReadError(f"{path}: file is empty")
    if b"\x00" in head[:4096]:
        raise ReadError(f"{path}: looks like a binary file, not CSV text")
    enc = encoding or ("utf-8-sig" if head.startswith(b"\xef\xbb\xbf") else "utf-8" if utf8 else "")
    if not enc:
        enc = _gb18030_or_nothing(path)
    if not enc:
        raise ReadError(
            f"{path}: text is neither UTF-8 nor GBK/GB18030; pass --encoding (e.g. --encoding big5)"
        )
    try:
        codecs.lookup(enc)
    except LookupError as exc:
        raise ReadError(f"{path}: cannot decode as {enc}: {_first_line(exc)}") from exc
    start = 3 if head.startswith(b"\xef\xbb\xbf") else 0
    end = head.find(b"\n", start)
    line = head[start : end if end >= 0 else None]
    try:
        first = line.decode(enc if enc != "utf-8-sig" else "utf-8", errors="replace").rstrip("\r")
    except LookupError as exc:  # pragma: no cover - checked above
        raise ReadError(f"{path}: cannot decode as {enc}") from exc
    return _Scan(enc, blank, quotes, first, total / max(newlines, 1))


def _utf8_boundary(data: bytes) -> int:
    """Length of ``data`` without a multi-byte UTF-8 character cut at its end."""
    i = len(data)
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # a lead byte or ASCII: cut before it if incomplete
            need = 1 if byte < 0x80 else 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 else 4
            return i if need <= back else i - back
    return i


def _gb18030_or_nothing(path: Path) -> str:
    """'gb18030' if the whole file decodes as GB18030 (streamed), else ''."""
    decoder = codecs.getincrementaldecoder("gb18030")()
    try:
        with open(path, "rb") as fh:
            while block := fh.read(SCAN_BLOCK):
                decoder.decode(block)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return ""
    return "gb18030"


def _csv_chunks(path: Path, chunk_rows: int, encoding: str | None, size: int) -> Chunked:
    """CSV/TSV as chunks of about ``chunk_rows`` records (pyarrow's serial streaming reader)."""
    scan = _scan_csv(path, encoding)
    delimiter = max(["\t", ",", ";", "|"], key=scan.first_line.count)
    if scan.first_line.count(delimiter) == 0 and path.suffix.lower() == ".tsv":
        delimiter = "\t"
    headers = _unique_headers(next(csv.reader([scan.first_line], delimiter=delimiter)))
    # Blocks of at most MAX_BLOCK (pyarrow's streaming reader holds a dozen blocks read
    # ahead); a chunk gathers blocks until it has chunk_rows rows.
    block = int(min(max(chunk_rows * scan.bytes_per_row / 2, MIN_BLOCK), MAX_BLOCK))
    stream = pa.input_stream(str(path))
    enc = scan.encoding
    malformed: list[tuple[int | None, str]] = []

    def on_invalid(row: Any) -> str:
        malformed.append((row.number, row.text))
        return "skip"

    try:
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(
                column_names=headers,
                skip_rows=1,
                block_size=block,
                use_threads=False,  # serial: a block's malformed rows are known when it is returned
                encoding="utf8" if enc in ("utf-8", "utf-8-sig") else enc,
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, newlines_in_values=scan.quotes, invalid_row_handler=on_invalid
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={h: pa.string() for h in headers},
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
                null_values=[""],
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        stream.close()
        raise ReadError(f"{path}: not a readable CSV ({_first_line(exc)})") from exc
    numbers = _Numbers(path, enc, delimiter, len(headers), scan.blank_lines)
    batches = _csv_batches(path, reader, stream, malformed, numbers, chunk_rows)
    return Chunked("csv", enc, batches, size, position=stream.tell)


def _csv_batches(
    path: Path,
    reader: Any,
    stream: Any,
    malformed: list[tuple[int | None, str]],
    numbers: _Numbers,
    chunk_rows: int,
) -> Iterator[RawTable]:
    try:
        done = False
        while not done:
            batches: list[pa.RecordBatch] = []
            have = 0
            while have < chunk_rows:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    done = True
                    break
                except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
                    raise ReadError(f"{path}: not a readable CSV ({_first_line(exc)})") from exc
                batches.append(batch)
                have += batch.num_rows
            if not batches:
                break
            found, malformed[:] = list(malformed), []
            rows, bad = numbers.take(have, found)
            yield RawTable(
                table=pa.Table.from_batches(batches, schema=reader.schema),
                row_numbers=rows,
                fmt="csv",
                encoding=numbers.encoding,
                malformed=bad,
            )
        trailing = numbers.drain(list(malformed))
        if trailing:  # malformed records after the last good one: a chunk of no rows
            empty = pa.table({h: pa.array([], pa.string()) for h in reader.schema.names})
            yield RawTable(
                table=empty,
                row_numbers=np.array([], dtype=np.int64),
                fmt="csv",
                encoding=numbers.encoding,
                malformed=trailing,
            )
    finally:
        numbers.close()
        stream.close()


class _Numbers:
    """Row numbers of the records pyarrow returns, as the whole-file reader gives them.

    Consecutive from 2 until a record is skipped (blank line, malformed record); from then
    on Python's csv reader walks the text in step and numbers every record, as the
    whole-file reader's second pass does.
    """

    def __init__(self, path: Path, encoding: str, delimiter: str, width: int, blank: bool) -> None:
        self.path, self.encoding, self.delimiter, self.width = path, encoding, delimiter, width
        self.given = 0  # good records numbered so far
        self.reader: Iterator[list[str]] | None = None
        self.text: TextIO | None = None
        self.row = 1  # record number of the last record read by the csv reader
        if blank:
            self._start()

    def _start(self) -> None:
        enc = "utf-8-sig" if self.encoding in ("utf-8", "utf-8-sig") else self.encoding
        self.text = open(self.path, encoding=enc, errors="replace", newline="")  # noqa: SIM115
        self.reader = csv.reader(self.text, delimiter=self.delimiter)
        next(self.reader, None)
        skip, self.given = self.given, 0
        if skip:
            self._walk(skip)

    def _walk(self, m: int) -> tuple[np.ndarray, list[tuple[int | None, str]]]:
        assert self.reader is not None
        good = np.empty(m, dtype=np.int64)
        bad: list[tuple[int | None, str]] = []
        k = 0
        while k < m:
            record = next(self.reader, None)
            if record is None:
                raise ReadError(f"{self.path}: records could not be numbered (CSV dialect mismatch)")
            self.row += 1
            if not record:
                continue
            if len(record) != self.width:
                bad.append((self.row, self.delimiter.join(record)))
            else:
                good[k] = self.row
                k += 1
        self.given += m
        return good, bad

    def take(
        self, m: int, malformed: list[tuple[int | None, str]]
    ) -> tuple[np.ndarray, list[tuple[int | None, str]]]:
        """Numbers of the next ``m`` good records and the malformed records among them."""
        if self.reader is None and malformed:
            self._start()
        if self.reader is None:
            rows = np.arange(self.given + 2, self.given + 2 + m, dtype=np.int64)
            self.given += m
            return rows, []
        good, bad = self._walk(m)
        return good, bad

    def drain(self, malformed: list[tuple[int | None, str]]) -> list[tuple[int | None, str]]:
        """The malformed records after the last good one (read to the end of the file)."""
        if self.reader is None and malformed:
            self._start()
        if self.reader is None:
            return []
        bad: list[tuple[int | None, str]] = []
        for record in self.reader:
            self.row += 1
            if record and len(record) != self.width:
                bad.append((self.row, self.delimiter.join(record)))
        return bad

    def close(self) -> None:
        if self.text is not None:
            self.text.close()


# --------------------------------------------------------------------------- XLSX


def _xlsx_chunks(
    path: Path, spec: LayerSpec, sheet: str | int | None, chunk_rows: int, size: int
) -> Chunked:
    """An XLSX sheet in row batches (openpyxl read-only); whole-sheet reading when the sheet
    does not declare its width (its rows could then differ in length)."""
    import openpyxl

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning)
            wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise ReadError(f"{path}: not an Excel .xlsx workbook ({_first_line(exc)})") from exc
    names = wb.sheetnames
    ws = _sheet(wb, path, sheet, names)
    width = ws.max_column if ws.max_column and ws.max_column > 0 else None
    if width is None:
        wb.close()
        raw = read_xlsx(path, spec, sheet)
        return Chunked(raw.fmt, None, split(raw, chunk_rows), size)
    return Chunked("xlsx", None, _xlsx_batches(path, wb, ws, spec, sheet, names, chunk_rows), size)


def _sheet(wb: Any, path: Path, sheet: str | int | None, names: list[str]) -> Any:
    if sheet is None:
        return wb.worksheets[0]
    if str(sheet) in names:
        return wb[str(sheet)]
    if isinstance(sheet, int) or str(sheet).isdigit():
        idx = int(sheet)
        if not 0 <= idx < len(names):
            wb.close()
            raise ReadError(f"{path}: no sheet number {idx} (0-based); sheets: {', '.join(names)}")
        return wb.worksheets[idx]
    wb.close()
    raise ReadError(f"{path}: no sheet {sheet!r}; sheets: {', '.join(names)}")


def _xlsx_batches(
    path: Path,
    wb: Any,
    ws: Any,
    spec: LayerSpec,
    sheet: str | int | None,
    names: list[str],
    chunk_rows: int,
) -> Iterator[RawTable]:
    from geo.readers import HEADER_SEARCH_ROWS

    try:
        rows = ws.iter_rows(min_row=1, values_only=True)
        top: list[tuple[Any, ...]] = []
        for r in rows:
            top.append(tuple(_cell_text(v) for v in r))
            if len(top) >= HEADER_SEARCH_ROWS:
                break
        header_at = find_header_row(top, spec)
        if header_at is None:
            raise ReadError(f"{path}: sheet {ws.title!r} is empty")
        width = max([ws.max_column, *(len(r) for r in top)])
        header = top[header_at]
        headers = _unique_headers(
            [(header[i] if i < len(header) else None) or "" for i in range(width)]
        )
        notes = [f"sheet {ws.title!r}, header on row {header_at + 1}"]
        if len(names) > 1 and sheet is None:
            notes.append(f"workbook has sheets {names}; read the first (choose with --sheet)")
        number = header_at + 2
        body: list[tuple[Any, ...]] = []
        numbers: list[int] = []

        def feed(r: tuple[Any, ...]) -> None:
            nonlocal number
            if len(r) > width:
                raise ReadError(f"{path}: row {number} is wider than the sheet's declared width")
            if any(v is not None and str(v).strip() for v in r):
                body.append(r + (None,) * (width - len(r)))
                numbers.append(number)
            number += 1

        for r in top[header_at + 1 :]:
            feed(r)
        first = True
        for r in rows:
            feed(tuple(_cell_text(v) for v in r))
            if len(body) >= chunk_rows:
                yield _xlsx_table(body, numbers, headers, notes if first else [])
                body, numbers, first = [], [], False
        if body or first:
            yield _xlsx_table(body, numbers, headers, notes if first else [])
    finally:
        wb.close()


def _xlsx_table(
    body: list[tuple[Any, ...]], numbers: list[int], headers: list[str], notes: list[str]
) -> RawTable:
    columns = list(zip(*body, strict=True)) if body else [()] * len(headers)
    table = pa.Table.from_arrays(
        [pa.array(list(col), type=pa.string()) for col in columns], names=headers
    )
    return RawTable(
        table=table, row_numbers=np.asarray(numbers, dtype=np.int64), fmt="xlsx", notes=notes
    )


# --------------------------------------------------------------------------- (Geo)Parquet


def _parquet_chunks(path: Path, chunk_rows: int, size: int) -> Chunked:
    """GeoParquet or Parquet in record batches of ``chunk_rows`` rows (row group by row group)."""
    import json

    import pyarrow.parquet as pq

    try:
        source = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise ReadError(f"{path}: cannot be read as .parquet: {_first_line(exc)}") from exc
    meta = source.schema_arrow.metadata or {}
    geo = json.loads(meta[b"geo"]) if b"geo" in meta else None
    return Chunked("parquet", None, _parquet_batches(path, source, geo, chunk_rows), size)


def _parquet_batches(
    path: Path, source: Any, geo: dict[str, Any] | None, chunk_rows: int
) -> Iterator[RawTable]:
    import geopandas as gpd
    import shapely
    from pyproj import CRS

    column = crs = None
    if geo is not None:
        column = geo.get("primary_column", "geometry")
        info = geo.get("columns", {}).get(column, {})
        if info.get("encoding", "WKB").upper() != "WKB":
            raise ReadError(f"{path}: GeoParquet geometry encoding {info['encoding']!r} is not WKB")
        # GeoParquet: a geometry column without "crs" is OGC:CRS84 (as geopandas reads it).
        crs = CRS.from_user_input(info["crs"]) if info.get("crs") is not None else CRS("OGC:CRS84")
    start = 1
    try:
        for batch in source.iter_batches(batch_size=chunk_rows):
            frame = batch.to_pandas()
            if column is not None:
                wkb = frame.pop(column)
                geoms = shapely.from_wkb(np.asarray(wkb, dtype=object))
                gdf = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=crs), crs=crs)
                table, geometry, file_crs = _split_geometry(gdf)
                file_crs = _crs_name(crs)
            else:
                columns = {str(c): to_text(frame[c]) for c in frame.columns}
                table = text_table(pd.DataFrame(columns, index=range(len(frame))))
                geometry, file_crs = None, None
            rows = np.arange(start, start + table.num_rows, dtype=np.int64)
            start += table.num_rows
            yield RawTable(
                table=table, row_numbers=rows, fmt="parquet", geometry=geometry, file_crs=file_crs
            )
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise ReadError(f"{path}: cannot be read as .parquet: {_first_line(exc)}") from exc
