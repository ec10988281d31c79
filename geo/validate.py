"""Pure, vectorised checks of rows against a layer spec.

Each parser takes a column of text (None where empty) and returns the parsed values and a
mask of the rows whose text could not be parsed. ``Rejections`` collects (row, field,
reason, value, detail) for every failure; a row with any failure is rejected, never fixed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from geo.crs import is_chinese, to_wgs84
from geo.settings import Settings
from layers.base import Field, LayerSpec

# Reason codes stored in `rejected.reason`, with the Chinese label the CLI prints.
REASONS: dict[str, str] = {
    "malformed_row": "行格式错误（列数不符）",
    "missing_coordinates": "缺少坐标",
    "bad_coordinates": "坐标无法解析或超出经纬度范围",
    "swapped_lat_lon": "经纬度颠倒",
    "outside_china": "坐标不在中国境内",
    "outside_area_of_interest": "坐标不在关注区域内",
    "missing_geometry": "缺少几何图形",
    "wrong_geometry_type": "几何类型不符",
    "invalid_geometry": "几何图形无效且无法修复",
    "missing_required": "缺少必填字段",
    "unknown_value": "取值不在允许范围内",
    "bad_number": "数字无法解析",
    "bad_date": "日期时间无法解析",
    "bad_bool": "是/否无法解析",
    "duplicate_id": "编号重复",
    "time_order": "时间先后顺序错误",
    "interval_too_long": "时间间隔超过上限",
    "negative_interval": "时长为负",
}

TRUE_WORDS = ("是", "有", "true", "t", "yes", "y", "1", "√", "✓", "对", "在岗")
FALSE_WORDS = ("否", "无", "false", "f", "no", "n", "0", "×", "✗", "不是")
_WORLD = (-180.0, -90.0, 180.0, 90.0)


Values = pa.Array | pa.ChunkedArray | pd.Series | np.ndarray


def as_text(values: Values) -> pa.Array:
    """Values as one contiguous Arrow string array (null where missing)."""
    if isinstance(values, pa.ChunkedArray):
        arr = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    elif isinstance(values, pa.Array):
        arr = values
    else:
        arr = pa.array(values, from_pandas=True)
    if not pa.types.is_string(arr.type):
        if isinstance(values, (pa.Array, pa.ChunkedArray)):
            arr = pc.cast(arr, pa.string())
        else:
            arr = pa.array(pd.Series(values).astype("str"), type=pa.string(), from_pandas=True)
    return arr


def _take(values: Values, idx: np.ndarray) -> np.ndarray:
    """``values`` at positions ``idx`` as Python objects (only rejected rows become objects)."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return np.asarray(values.take(pa.array(idx, type=pa.int64())).to_pylist(), dtype=object)
    if isinstance(values, pd.Series):
        return values.iloc[idx].to_numpy(dtype=object)
    return np.asarray(values, dtype=object)[idx]


@dataclass
class Rejections:
    """Failures found so far: positions (0-based row positions), field, reason, value, detail."""

    n_rows: int
    pos: list[np.ndarray] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def add(
        self,
        mask: np.ndarray,
        field_name: str,
        reason: str,
        values: Values | None,
        detail: str = "",
    ) -> None:
        """Record ``reason`` for the rows where ``mask`` is true."""
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        idx = np.flatnonzero(mask)
        self.pos.append(idx)
        self.fields.append(field_name)
        self.reasons.append(reason)
        self.values.append(
            np.full(len(idx), None, dtype=object) if values is None else _take(values, idx)
        )
        self.details.append(detail)

    def mask(self) -> np.ndarray:
        """Rows with at least one failure."""
        out = np.zeros(self.n_rows, dtype=bool)
        for idx in self.pos:
            out[idx] = True
        return out

    def frame(self) -> pd.DataFrame:
        """One row per failure: pos, field, reason, value, detail (sorted by row)."""
        if not self.pos:
            return pd.DataFrame(
                {
                    "pos": np.array([], dtype=np.int64),
                    "field": [],
                    "reason": [],
                    "value": [],
                    "detail": [],
                }
            )
        lens = [len(p) for p in self.pos]
        out = pd.DataFrame(
            {
                "pos": np.concatenate(self.pos),
                "field": np.repeat(self.fields, lens),
                "reason": np.repeat(self.reasons, lens),
                "value": np.concatenate(self.values),
                "detail": np.repeat(self.details, lens),
            }
        )
        out["value"] = out["value"].map(lambda v: None if v is None or v != v else str(v))
        return out.sort_values("pos", kind="stable", ignore_index=True)

    def count_by_reason(self) -> dict[str, int]:
        """Rejected rows per reason (a row failing two checks counts under both)."""
        counts: dict[str, np.ndarray] = {}
        for idx, reason in zip(self.pos, self.reasons, strict=True):
            prev = counts.get(reason)
            counts[reason] = idx if prev is None else np.union1d(prev, idx)
        return {r: len(v) for r, v in sorted(counts.items(), key=lambda kv: -len(kv[1]))}


# --------------------------------------------------------------------------- text


def clean_text(column: Values) -> pa.Array:
    """Text trimmed of surrounding whitespace (Unicode, so also the full-width U+3000); empty becomes None.

    Arrow compute on the whole column (no Python objects).
    """
    arr = as_text(column)
    if pc.all(pc.string_is_ascii(arr)).as_py() is not False:
        arr = pc.ascii_trim_whitespace(arr)
    else:
        arr = pc.utf8_trim_whitespace(arr)
    empty = pc.equal(pc.binary_length(arr), 0)
    if pc.any(empty).as_py():
        arr = pc.if_else(empty, pa.scalar(None, pa.string()), arr)
    return arr


def present(text: Values) -> np.ndarray:
    """Rows that hold a value."""
    if isinstance(text, (pa.Array, pa.ChunkedArray)):
        if text.null_count == 0:
            return np.ones(len(text), dtype=bool)
        return np.asarray(pc.is_valid(text).to_numpy(zero_copy_only=False), dtype=bool)
    return pd.Series(text).notna().to_numpy()


def _bool_numpy(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow result as numpy (null → False)."""
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


def _pandas(text: pa.Array) -> pd.Series:
    return pd.Series(text.to_pandas(), dtype="str")


def _ascii_digits(text: pd.Series) -> pd.Series:
    """Full-width digits and punctuation as ASCII (NFKC), only where the text is not ASCII."""
    if text.dropna().str.isascii().all():
        return text
    return text.str.normalize("NFKC")


# --------------------------------------------------------------------------- parsers


def parse_number(text: Values) -> tuple[np.ndarray, np.ndarray]:
    """Floats (NaN where empty or bad) and the mask of non-empty text that is not a finite number.

    Thousands separators (1,200) and full-width digits are accepted as parsing; ``nan``,
    ``inf`` and numbers beyond the float range (``1e400``) are bad: no stored figure is NaN or
    infinite.
    """
    arr = as_text(text)
    try:  # fast path: Arrow's parser on the whole column
        values = np.asarray(
            pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64
        )
    except pa.ArrowInvalid:
        series = _pandas(arr)
        cleaned = _ascii_digits(series).str.replace(",", "", regex=False)
        values = pd.to_numeric(cleaned, errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
    finite = np.isfinite(values)
    if finite.all():
        return values, np.zeros(len(arr), dtype=bool)
    bad = present(arr) & ~finite
    return np.where(finite, values, np.nan), bad


def parse_int(text: Values) -> tuple[pa.Array, np.ndarray]:
    """Integers (null where empty or bad) and the mask of values that are not whole numbers."""
    values, bad = parse_number(text)
    finite = np.isfinite(values)
    frac = finite & (np.floor(values) != values)
    bad = bad | frac | (present(text) & ~finite & ~bad)
    ok = finite & ~frac
    out = pa.array(np.where(ok, values, 0).astype(np.int64), mask=~ok)
    return out, bad


def parse_bool(text: Values) -> tuple[pa.Array, np.ndarray]:
    """Booleans from 是/否, 有/无, true/false, 1/0, √/× (any case); mask of other text."""
    low = pc.utf8_lower(as_text(text))
    is_true = _bool_numpy(pc.is_in(low, value_set=pa.array(TRUE_WORDS)))
    is_false = _bool_numpy(pc.is_in(low, value_set=pa.array(FALSE_WORDS)))
    out = pa.array(is_true, mask=~(is_true | is_false))
    bad = present(low) & ~(is_true | is_false)
    return out, bad


_DATE_SUBS = (
    ("年", "-"),
    ("月", "-"),
    ("日", " "),
    ("号", " "),
    ("/", "-"),
    (".", "-"),
    ("时", ":"),
    ("点", ":"),
    ("分", ":"),
    ("秒", ""),
    ("T", " "),
)


def parse_datetime(text: Values) -> tuple[pa.Array, np.ndarray]:
    """Timestamps from ISO and the usual Chinese forms (2024/3/5, 2024年3月5日 14时30分, 20240305).

    Returns naive local times (China Standard Time as written) as Arrow ``timestamp[us]``
    and the mask of unparsable text.
    """
    arr = as_text(text)
    try:  # fast path: every value is ISO 8601 (Arrow's parser, no Python objects)
        return pc.cast(arr, pa.timestamp("us")), np.zeros(len(arr), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    series = _pandas(arr)
    values = pd.to_datetime(series, format="ISO8601", errors="coerce")
    failed = present(arr) & values.isna().to_numpy()
    if failed.any():
        sub = _ascii_digits(series[failed])
        for a, b in _DATE_SUBS:
            sub = sub.str.replace(a, b, regex=False)
        sub = sub.str.replace(r"\s+", " ", regex=True).str.strip().str.rstrip(":-")
        values = values.copy()
        values[failed] = pd.to_datetime(sub, format="ISO8601", errors="coerce")
        failed = present(arr) & values.isna().to_numpy()
    out = pa.array(values.astype("datetime64[us]"), type=pa.timestamp("us"), from_pandas=True)
    return out, failed


def parse_field(f: Field, text: Values) -> tuple[pa.Array, np.ndarray, str]:
    """Parse one canonical field: (Arrow values, bad mask, reason code for bad rows)."""
    if f.type == "str":
        return as_text(text), np.zeros(len(text), dtype=bool), "bad_number"
    if f.type == "float":
        values, bad = parse_number(text)
        return pa.array(values, from_pandas=True), bad, "bad_number"
    if f.type == "int":
        ints, bad = parse_int(text)
        return ints, bad, "bad_number"
    if f.type == "bool":
        bools, bad = parse_bool(text)
        return bools, bad, "bad_bool"
    times, bad = parse_datetime(text)
    if f.type == "date":
        return pc.cast(pc.floor_temporal(times, unit="day"), pa.date32()), bad, "bad_date"
    return times, bad, "bad_date"


def enum_text(f: Field, text: Values) -> pa.Array:
    """Text compared with a field's choices: integral numbers lose a trailing '.0'."""
    arr = as_text(text)
    if f.type in ("int", "float"):
        return pc.replace_substring_regex(arr, r"\.0+$", "")
    return arr


# --------------------------------------------------------------------------- coordinates


def _inside(
    lon: np.ndarray, lat: np.ndarray, box: tuple[float, float, float, float] | list[float]
) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return (lon >= box[0]) & (lon <= box[2]) & (lat >= box[1]) & (lat <= box[3])


def check_coordinates(
    x: np.ndarray,
    y: np.ndarray,
    crs: str,
    settings: Settings,
    rejections: Rejections,
    x_field: str = "lon",
    y_field: str = "lat",
    x_text: Values | None = None,
    y_text: Values | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Convert source coordinates to WGS-84 and record every coordinate failure.

    Swapped coordinates are detected (the swapped pair lies inside the expected box and the
    given pair does not) and rejected with that reason, never swapped silently.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    finite = np.isfinite(x) & np.isfinite(y)
    with np.errstate(all="ignore"):
        lon, lat = to_wgs84(np.where(finite, x, 0.0), np.where(finite, y, 0.0), crs)
        lon = np.where(finite, lon, np.nan)
        lat = np.where(finite, lat, np.nan)
    world = finite & _inside(lon, lat, _WORLD)
    chinese = is_chinese(crs)
    aoi = settings.area_of_interest
    box = aoi if aoi else (settings.china_bounds if chinese else _WORLD)
    in_box = world & _inside(lon, lat, box)
    maybe_swapped = finite & ~in_box
    swapped = np.zeros(len(x), dtype=bool)
    if maybe_swapped.any():
        with np.errstate(all="ignore"):
            slon, slat = to_wgs84(y[maybe_swapped], x[maybe_swapped], crs)
        swapped[maybe_swapped] = np.isfinite(slon) & np.isfinite(slat) & _inside(slon, slat, box)
        if chinese and aoi:
            swapped[maybe_swapped] &= _inside(slon, slat, settings.china_bounds)

    def both(mask: np.ndarray) -> np.ndarray:
        out = np.full(len(x), None, dtype=object)
        idx = np.flatnonzero(mask)  # only the rejected rows are formatted
        if len(idx):
            xs = _take(x_text, idx) if x_text is not None else x[idx]
            ys = _take(y_text, idx) if y_text is not None else y[idx]
            out[idx] = [f"{a}, {b}" for a, b in zip(xs, ys, strict=True)]
        return out

    rejections.add(
        swapped,
        f"{x_field},{y_field}",
        "swapped_lat_lon",
        both(swapped),
        "经度与纬度颠倒：交换后落在范围内 (lon/lat swapped; fix the columns or pass --lon/--lat)",
    )
    # NaN/inf that no earlier check caught (a geometry with one NaN ordinate): never stored.
    rejections.add(
        ~finite & ~rejections.mask(),
        f"{x_field},{y_field}",
        "bad_coordinates",
        both(~finite & ~rejections.mask()),
        "坐标不是有限数字 (coordinates are NaN or infinite)",
    )
    bad_range = finite & ~world & ~swapped
    rejections.add(
        bad_range,
        f"{x_field},{y_field}",
        "bad_coordinates",
        both(bad_range),
        f"超出经纬度范围 (outside -180..180 / -90..90 after converting from {crs})",
    )
    rest = world & ~swapped
    if chinese:
        out_cn = rest & ~_inside(lon, lat, settings.china_bounds)
        rejections.add(
            out_cn,
            f"{x_field},{y_field}",
            "outside_china",
            both(out_cn),
            f"{crs} 坐标应在中国境内 {list(settings.china_bounds)} (is the CRS right?)",
        )
        rest = rest & ~out_cn
    if aoi:
        out_aoi = rest & ~_inside(lon, lat, aoi)
        rejections.add(
            out_aoi,
            f"{x_field},{y_field}",
            "outside_area_of_interest",
            both(out_aoi),
            f"不在关注区域 {list(aoi)} 内 (setting area_of_interest)",
        )
    return lon, lat


def polygons_to_wgs84(geoms: np.ndarray, crs: str) -> np.ndarray:
    """Every vertex of ``geoms`` converted from ``crs`` to WGS-84 (vectorised over all vertices)."""

    def convert(coords: np.ndarray) -> np.ndarray:
        lon, lat = to_wgs84(coords[:, 0], coords[:, 1], crs)
        return np.column_stack([lon, lat])

    with np.errstate(all="ignore"):
        return shapely.transform(geoms, convert)


def repair_polygons(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """make_valid invalid polygons, keeping their polygonal part.

    Returns (geometries, repaired mask, unrepairable mask).
    """
    geoms = np.asarray(geoms, dtype=object).copy()
    has = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
    invalid = has & ~shapely.is_valid(geoms)
    unrepairable = np.zeros(len(geoms), dtype=bool)
    for i in np.flatnonzero(invalid):  # few: a loop over invalid polygons only
        fixed = shapely.make_valid(geoms[i])
        parts = [p for p in shapely.get_parts(fixed) if p.geom_type in ("Polygon", "MultiPolygon")]
        if not parts:
            unrepairable[i] = True
            continue
        geoms[i] = shapely.union_all(parts) if len(parts) > 1 else parts[0]
    return geoms, invalid & ~unrepairable, unrepairable


def _times_ns(values: dict[str, pa.Array], name: str) -> tuple[np.ndarray, np.ndarray]:
    """(int64 microseconds, present mask) of a parsed datetime column."""
    t = pc.cast(values[name], pa.timestamp("us"))
    ok = present(t)
    return pc.fill_null(pc.cast(t, pa.int64()), 0).to_numpy(zero_copy_only=False), ok


def time_order(
    spec: LayerSpec,
    values: dict[str, pa.Array],
    texts: dict[str, pa.Array],
    rejections: Rejections,
) -> None:
    """Reject rows whose step times run backwards (a hazard closed before it was filed, an
    arrival before the call); the detail names both steps, e.g. 到场时间 早于 接警时间."""
    names = [n for n in spec.time_order if n in values]
    if len(names) < 2:
        return
    n = len(next(iter(values.values())))
    latest = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    latest_step = np.full(n, -1, dtype=np.int64)  # index in ``names`` of the step that set ``latest``
    order = " → ".join(f"{spec.field(k).zh}" for k in names)
    for i, name in enumerate(names):
        ns, ok = _times_ns(values, name)
        back = ok & (ns < latest)
        for j in range(i):
            earlier = spec.field(names[j])
            rejections.add(
                back & (latest_step == j),
                name,
                "time_order",
                texts[name],
                f"{spec.field(name).zh} 早于 {earlier.zh}；顺序应为 {order} "
                f"({name} is before {names[j]})",
            )
        newer = ok & (ns >= latest)
        latest = np.where(newer, ns, latest)
        latest_step = np.where(newer, i, latest_step)


def interval_limits(
    spec: LayerSpec,
    values: dict[str, pa.Array],
    texts: dict[str, pa.Array],
    rejections: Rejections,
    max_interval_s: float,
) -> None:
    """Reject rows of a layer with ``spec.limit_intervals`` whose consecutive step times
    (``spec.time_order``, skipping empty steps) lie more than ``max_interval_s`` apart, and
    whose durations (``spec.duration_fields``, seconds) are negative or over the limit.

    Backwards steps are ``time_order``'s; here only the too-long ones (a wrong date in a
    dispatch-system export). ``max_interval_s`` is ``Settings.response_max_interval_s``.
    """
    if not spec.limit_intervals:
        return
    limit_us = int(max_interval_s * 1_000_000)
    names = [n for n in spec.time_order if n in values]
    if names:
        n = len(values[names[0]])
        previous = np.zeros(n, dtype=np.int64)
        previous_step = np.full(n, -1, dtype=np.int64)
        for i, name in enumerate(names):
            ns, ok = _times_ns(values, name)
            for j in range(i):
                long = ok & (previous_step == j) & (ns - previous > limit_us)
                rejections.add(
                    long, name, "interval_too_long", texts[name],
                    f"{spec.field(names[j]).zh} → {spec.field(name).zh} 超过 {max_interval_s:g} 秒 "
                    f"({names[j]} → {name} is longer than {max_interval_s:g} s, "
                    "setting response_max_interval_s)",
                )
            previous = np.where(ok, ns, previous)
            previous_step = np.where(ok, i, previous_step)
    for name in spec.duration_fields:
        if name not in values:
            continue
        filled = pc.fill_null(pc.cast(values[name], pa.float64()), 0.0)
        seconds = np.asarray(filled.to_numpy(zero_copy_only=False))
        label = spec.field(name).zh
        rejections.add(seconds < 0, name, "negative_interval", texts.get(name),
                       f"{label} 为负数 ({name} is negative)")
        rejections.add(seconds > max_interval_s, name, "interval_too_long", texts.get(name),
                       f"{label} 超过 {max_interval_s:g} 秒 ({name} is longer than {max_interval_s:g} s, "
                       "setting response_max_interval_s)")
