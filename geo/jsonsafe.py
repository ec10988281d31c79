"""The one conversion of analysis results to strict JSON.

Every ``--json`` output (and any other JSON a user reads) goes through :func:`plain` and
:func:`dumps`: numpy scalars and arrays become Python numbers and lists, pandas
``Timestamp``/``NaT``/``NA`` become ISO 8601 text or ``null``, NaN and ±inf become ``null``
(RFC 8259 has no such numbers; ``json.dumps`` would print ``NaN``/``Infinity``, which
strict parsers such as ``JSON.parse`` and ``jq`` reject), frames become lists of records,
dataclasses become objects, ``Decimal`` becomes a number, dates and times become ISO text.
:func:`dumps` then serialises with ``allow_nan=False``, so a value that slipped through
fails loudly here instead of reaching a user as invalid JSON.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import PurePath
from typing import Any

import numpy as np
import pandas as pd

MAX_DEPTH = 64
"""Nesting deeper than this is refused (analysis results are a few levels deep)."""


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _decimal(value: Decimal) -> int | float | None:
    if not value.is_finite():
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def _timestamp(value: Any) -> str | None:
    """ISO 8601 text of a datetime-like value (``NaT`` → None); seconds unless it has a fraction."""
    stamp = pd.Timestamp(value)
    return None if pd.isna(stamp) else stamp.isoformat()


def _scalar(value: Any) -> tuple[bool, Any]:
    """``(True, converted)`` for a scalar this module knows, ``(False, None)`` otherwise."""
    if value is None or isinstance(value, (bool, str)):
        return True, value
    if isinstance(value, (np.datetime64, np.timedelta64)):
        if np.isnat(value):
            return True, None
        return _scalar(pd.Timestamp(value) if isinstance(value, np.datetime64) else pd.Timedelta(value))
    if isinstance(value, np.generic):
        return _scalar(value.item())
    if isinstance(value, int):
        return True, int(value)
    if isinstance(value, float):
        return True, _number(float(value))
    if value is pd.NaT or value is pd.NA:
        return True, None
    if isinstance(value, Decimal):
        return True, _decimal(value)
    if isinstance(value, datetime):  # pandas Timestamp included
        return True, _timestamp(value)
    if isinstance(value, (date, time)):
        return True, value.isoformat()
    if isinstance(value, timedelta):  # pandas Timedelta included
        return True, _number(value.total_seconds())
    if isinstance(value, enum.Enum):
        return _scalar(value.value)
    if isinstance(value, (PurePath, uuid.UUID)):
        return True, str(value)
    return False, None


def plain(value: Any, path: str = "$", depth: int = 0) -> Any:
    """``value`` as plain JSON data: dict, list, str, int, float (finite), bool or None.

    Parameters
    ----------
    value
        An analysis result: scalars (numpy, pandas, Decimal, dates), mappings, sequences,
        numpy arrays, pandas Series/DataFrame, dataclass instances, GeoJSON-like objects
        (``__geo_interface__``), or any nesting of them.
    path
        Where ``value`` sits in the whole document, for error messages.
    depth
        Current nesting depth (internal).

    Returns
    -------
    Any
        Data that ``json.dumps(..., allow_nan=False)`` accepts.

    Raises
    ------
    TypeError
        For a type with no JSON meaning (bytes, arbitrary objects), naming its path.
    ValueError
        For nesting deeper than ``MAX_DEPTH``.
    """
    known, converted = _scalar(value)
    if known:
        return converted
    if depth >= MAX_DEPTH:
        msg = f"{path}: nested deeper than {MAX_DEPTH} levels; cannot convert to JSON"
        raise ValueError(msg)
    deeper = depth + 1
    if isinstance(value, pd.DataFrame):
        return records(value, path=path)
    if isinstance(value, (pd.Series, pd.Index)):
        return [plain(v, f"{path}[{i}]", deeper) for i, v in enumerate(value.tolist())]
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "Mm" or value.ndim != 1:
            return [plain(v, f"{path}[{i}]", deeper) for i, v in enumerate(value)]
        return [plain(v, f"{path}[{i}]", deeper) for i, v in enumerate(value.tolist())]
    if isinstance(value, Mapping):
        return {_key(k, path): plain(v, f"{path}.{k}", deeper) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: plain(getattr(value, f.name), f"{path}.{f.name}", deeper)
            for f in dataclasses.fields(value)
        }
    if hasattr(value, "__geo_interface__"):
        return plain(value.__geo_interface__, path, depth)
    if isinstance(value, (set, frozenset)):
        items = [plain(v, f"{path}[]", deeper) for v in value]
        return sorted(items, key=lambda v: (str(type(v)), str(v)))
    if isinstance(value, (list, tuple)) or (
        isinstance(value, Iterable) and not isinstance(value, (bytes, bytearray, memoryview))
    ):
        return [plain(v, f"{path}[{i}]", deeper) for i, v in enumerate(value)]
    msg = (
        f"{path}: a {type(value).__name__} value ({value!r:.60}) has no JSON form; "
        "convert it to text or numbers before output"
    )
    raise TypeError(msg)


def _key(key: Any, path: str) -> str:
    """A JSON object key: text as is, numbers and dates as their JSON text."""
    if isinstance(key, str):
        return key
    known, converted = _scalar(key)
    if not known:
        msg = f"{path}: a {type(key).__name__} key ({key!r:.60}) has no JSON form"
        raise TypeError(msg)
    return "null" if converted is None else str(converted)


def _column(
    series: pd.Series, name: str, date_columns: Sequence[str], timespec: str, path: str
) -> list[Any]:
    """One frame column as JSON values (vectorised for numbers, bools and times)."""
    if pd.api.types.is_datetime64_any_dtype(series):
        if name in date_columns:
            return [None if pd.isna(v) else v.strftime("%Y-%m-%d") for v in series]
        return [None if pd.isna(v) else v.isoformat(timespec=timespec) for v in series]
    if pd.api.types.is_float_dtype(series):
        arr = series.to_numpy(dtype=np.float64, na_value=np.nan)
        out = arr.astype(object)
        out[~np.isfinite(arr)] = None
        return out.tolist()
    if pd.api.types.is_bool_dtype(series) and not series.hasnans:
        return [bool(v) for v in series.to_numpy(dtype=bool)]
    if pd.api.types.is_integer_dtype(series) and not series.hasnans:
        return [int(v) for v in series.to_numpy(dtype=np.int64)]
    return [plain(v, f"{path}[{i}].{name}", 1) for i, v in enumerate(series.tolist())]


def records(
    frame: pd.DataFrame,
    columns: Sequence[str] | None = None,
    date_columns: Sequence[str] = (),
    timespec: str = "auto",
    path: str = "$",
) -> list[dict[str, Any]]:
    """Rows of ``frame`` as JSON objects (column → value), every value through :func:`plain`.

    Parameters
    ----------
    frame
        Any frame; a geometry column should be dropped or converted first.
    columns
        Columns to keep, in this order (those missing from ``frame`` are skipped); default all.
    date_columns
        Datetime columns written as ``YYYY-MM-DD`` (days and months); others as ISO 8601.
    timespec
        Precision of the other datetime columns (``Timestamp.isoformat``): ``"auto"``
        keeps a fraction only where there is one, ``"seconds"`` drops it.
    path
        Where the frame sits in the whole document, for error messages.

    Returns
    -------
    list of dict
        One object per row.
    """
    names = [c for c in (columns if columns is not None else frame.columns) if c in frame.columns]
    if not names:
        return [{} for _ in range(len(frame))]
    values = {
        _key(c, path): _column(frame[c], str(c), date_columns, timespec, path) for c in names
    }
    return [dict(zip(values, row, strict=True)) for row in zip(*values.values(), strict=True)]


def dumps(value: Any, indent: int | None = 2) -> str:
    """Strict JSON text of ``value`` (after :func:`plain`; no NaN/Infinity, UTF-8 text kept).

    Parameters
    ----------
    value
        Anything :func:`plain` accepts.
    indent
        ``json.dumps`` indent; None for one line.

    Returns
    -------
    str
        Text that any RFC 8259 parser reads.
    """
    return json.dumps(plain(value), ensure_ascii=False, indent=indent, allow_nan=False)
