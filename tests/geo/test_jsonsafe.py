"""The one conversion to strict JSON: whatever an analysis returns, the output parses."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import shapely

from geo import jsonsafe


def strict_loads(text: str) -> Any:
    """``json.loads`` that fails on NaN/Infinity/-Infinity (what JSON.parse and jq do)."""

    def refuse(token: str) -> Any:
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


@dataclass(frozen=True)
class Result:
    name: str
    table: pd.DataFrame
    share: float


def test_hostile_numbers_become_null_and_the_rest_survives() -> None:
    value = {
        "nan": float("nan"),
        "inf": float("inf"),
        "ninf": -np.inf,
        "f32": np.float32("nan"),
        "i64": np.int64(7),
        "b": np.bool_(True),
        "nat": pd.NaT,
        "na": pd.NA,
        "np_nat": np.datetime64("NaT"),
        "stamp": pd.Timestamp("2024-05-01 10:00:00"),
        "aware": datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc),
        "day": date(2024, 5, 1),
        "dec": Decimal("1.5"),
        "dec_int": Decimal("12"),
        "dec_nan": Decimal("NaN"),
        "arr": np.array([1.0, np.nan, np.inf]),
        "dt_arr": np.array(["2024-05-01T10:00", "NaT"], dtype="datetime64[ns]"),
        "path": Path("/tmp/x"),
        "text": "{{7*7}} <script>alert(1)</script> '; DROP TABLE x; --",
        3.0: "numeric key",
    }
    data = strict_loads(jsonsafe.dumps(value))
    assert data["nan"] is None and data["inf"] is None and data["ninf"] is None
    assert data["f32"] is None and data["nat"] is None and data["na"] is None
    assert data["np_nat"] is None
    assert data["i64"] == 7 and data["b"] is True
    assert data["stamp"] == "2024-05-01T10:00:00"
    assert data["aware"] == "2024-05-01T10:00:00+00:00"
    assert data["day"] == "2024-05-01"
    assert data["dec"] == 1.5 and data["dec_int"] == 12 and data["dec_nan"] is None
    assert data["arr"] == [1.0, None, None]
    assert data["dt_arr"] == ["2024-05-01T10:00:00", None]
    assert data["path"] == "/tmp/x"
    assert data["text"] == value["text"]  # text is data, kept literally
    assert data["3.0"] == "numeric key"


def test_frames_and_dataclasses_become_records() -> None:
    table = pd.DataFrame(
        {
            "id": ["a", "b"],
            "n": pd.array([1, None], dtype="Int64"),
            "x": [0.5, np.nan],
            "ratio": [np.inf, 2.0],
            "when": pd.to_datetime(["2024-05-01 10:00", None]),
            "month": pd.to_datetime(["2024-05-01", "2024-06-01"]),
            "ok": [True, False],
            "route": [[[121.0, 31.0], [121.1, np.nan]], []],
        }
    )
    out = strict_loads(jsonsafe.dumps(Result("r", table, float("nan"))))
    assert out["name"] == "r" and out["share"] is None
    assert out["table"] == [
        {"id": "a", "n": 1, "x": 0.5, "ratio": None, "when": "2024-05-01T10:00:00",
         "month": "2024-05-01T00:00:00", "ok": True, "route": [[121.0, 31.0], [121.1, None]]},
        {"id": "b", "n": None, "x": None, "ratio": 2.0, "when": None,
         "month": "2024-06-01T00:00:00", "ok": False, "route": []},
    ]
    rows = jsonsafe.records(table, ["id", "month", "missing"], date_columns=("month",))
    assert rows == [{"id": "a", "month": "2024-05-01"}, {"id": "b", "month": "2024-06-01"}]
    assert jsonsafe.records(table.iloc[:0]) == []


def test_geometry_becomes_geojson() -> None:
    out = strict_loads(jsonsafe.dumps({"g": shapely.Point(121.0, 31.0)}))
    assert out["g"] == {"type": "Point", "coordinates": [121.0, 31.0]}


def test_unknown_types_and_deep_nesting_are_clear_errors() -> None:
    with pytest.raises(TypeError, match=r"\$\.rows\[1\]\.blob: a bytes value"):
        jsonsafe.dumps({"rows": [1, {"blob": b"\x00"}]})
    deep: list[Any] = []
    node = deep
    for _ in range(jsonsafe.MAX_DEPTH + 5):
        node.append([])
        node = node[0]
    with pytest.raises(ValueError, match="nested deeper than"):
        jsonsafe.dumps(deep)


def test_figure_rows_keep_their_formats_and_drop_infinities() -> None:
    """``aggregate.to_records`` (every figure table of the CLI and the wall) is the same conversion."""
    from geo.aggregate import to_records

    frame = pd.DataFrame(
        {
            "cell": np.array([1, 2], dtype=np.uint64),
            "month": pd.to_datetime(["2024-05-01", "2024-06-01"]),
            "at": pd.to_datetime(["2024-05-01 10:00:00.250", None]),
            "ratio": [np.inf, 1.5],
            "warn": pd.array([True, None], dtype="boolean"),
        }
    )
    rows = to_records(frame)
    assert rows == [
        {"month": "2024-05-01", "at": "2024-05-01T10:00:00", "ratio": None, "warn": True},
        {"month": "2024-06-01", "at": None, "ratio": 1.5, "warn": None},
    ]
    strict_loads(jsonsafe.dumps(rows))
