"""Coordinate systems used in China, converted to and from WGS-84, vectorised.

- WGS-84 (EPSG:4326) is what onemap stores.
- CGCS2000 (EPSG:4490) differs from WGS-84 by centimetres: taken as equal for lon/lat.
- Any EPSG code (projected CGCS2000 Gauss-Kruger zones such as EPSG:4527) goes through pyproj.
- GCJ-02 (AMap, Tencent) and BD-09 (Baidu) are the published obfuscation formulas; their
  inverses iterate the forward transform (fixed point). Each step divides the error by
  ~150; iteration stops when the last correction is below 1e-6°, and since that correction
  is applied, the remaining error is ~1e-8° (about 1 mm; 0.5 m is required).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError as PyprojCRSError

from geo.errors import CRSError

_A = 6378245.0  # Krasovsky 1940 semi-major axis used by GCJ-02
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0
_INVERSE_TOL_DEG = 1e-6  # last correction; the error left is ~1/150 of it
_INVERSE_MAX_ITER = 30

NAMED = {
    "wgs84": "wgs84",
    "epsg:4326": "wgs84",
    "4326": "wgs84",
    "cgcs2000": "cgcs2000",
    "epsg:4490": "cgcs2000",
    "4490": "cgcs2000",
    "gcj02": "gcj02",
    "gcj-02": "gcj02",
    "bd09": "bd09",
    "bd-09": "bd09",
}
CHINESE = {"cgcs2000", "gcj02", "bd09"}


def _offsets(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The published GCJ-02 offset polynomials (lat, lon) of x = lon - 105, y = lat - 35.

    Written to compute each shared term once (the sines of 6πx and 2πx appear in both).
    """
    px, py = np.pi * x, np.pi * y
    shared = (20.0 * np.sin(6.0 * px) + 20.0 * np.sin(2.0 * px)) * (2.0 / 3.0)
    xy = 0.1 * x * y
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + xy + 0.2 * np.sqrt(np.abs(x)) + shared
    dlat += (20.0 * np.sin(py) + 40.0 * np.sin(py / 3.0)) * (2.0 / 3.0)
    dlat += (160.0 * np.sin(py / 12.0) + 320.0 * np.sin(py / 30.0)) * (2.0 / 3.0)
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + xy + 0.1 * np.sqrt(np.abs(x)) + shared
    dlon += (20.0 * np.sin(px) + 40.0 * np.sin(px / 3.0)) * (2.0 / 3.0)
    dlon += (150.0 * np.sin(px / 12.0) + 300.0 * np.sin(px / 30.0)) * (2.0 / 3.0)
    return dlat, dlon


def wgs84_to_gcj02(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """WGS-84 → GCJ-02 (the published forward formula)."""
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    dlat, dlon = _offsets(lon - 105.0, lat - 35.0)
    radlat = lat / 180.0 * np.pi
    magic = 1 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrtmagic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * np.cos(radlat) * np.pi)
    return lon + dlon, lat + dlat


def _invert(
    forward: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    x: np.ndarray,
    y: np.ndarray,
    x0: np.ndarray,
    y0: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``forward(u, v) == (x, y)`` by fixed-point iteration from (x0, y0).

    The offsets of GCJ-02 and BD-09 change slowly with position, so subtracting the
    forward error converges in a few steps to well under 1 cm.
    """
    u, v = x0, y0
    for _ in range(_INVERSE_MAX_ITER):
        fu, fv = forward(u, v)
        eu, ev = fu - x, fv - y
        u, v = u - eu, v - ev
        if (
            np.nanmax(np.abs(eu), initial=0.0) < _INVERSE_TOL_DEG
            and np.nanmax(np.abs(ev), initial=0.0) < _INVERSE_TOL_DEG
        ):
            break
    return u, v


def gcj02_to_wgs84(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 → WGS-84 by fixed-point iteration of the forward formula (error ~1 mm)."""
    glon = np.asarray(lon, dtype=np.float64)
    glat = np.asarray(lat, dtype=np.float64)
    return _invert(wgs84_to_gcj02, glon, glat, glon.copy(), glat.copy())


def gcj02_to_bd09(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 → BD-09 (Baidu's published formula)."""
    x = np.asarray(lon, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def bd09_to_gcj02(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BD-09 → GCJ-02 by fixed-point iteration of the forward formula."""
    blon = np.asarray(lon, dtype=np.float64)
    blat = np.asarray(lat, dtype=np.float64)
    return _invert(gcj02_to_bd09, blon, blat, blon - 0.0065, blat - 0.006)


def wgs84_to_bd09(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """WGS-84 → BD-09."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BD-09 → WGS-84."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def normalise_crs(crs: str | int | None) -> str:
    """'wgs84', 'cgcs2000', 'gcj02', 'bd09' or 'EPSG:<code>' for any other EPSG code."""
    if crs is None:
        return "wgs84"
    key = str(crs).strip().lower()
    if key in NAMED:
        return NAMED[key]
    code = key.removeprefix("epsg:")
    if code.isdigit():
        try:
            CRS.from_epsg(int(code))
        except PyprojCRSError as exc:
            raise CRSError(f"unknown EPSG code {crs!r}: {exc}") from None
        return f"EPSG:{code}"
    msg = f"unknown CRS {crs!r}; use wgs84, cgcs2000, gcj02, bd09 or an EPSG code such as EPSG:4527"
    raise CRSError(msg)


def is_chinese(crs: str) -> bool:
    """Whether points in ``crs`` must lie in China (CGCS2000, GCJ-02, BD-09, CGCS2000 zones)."""
    name = normalise_crs(crs)
    if name in CHINESE:
        return True
    if name.startswith("EPSG:"):
        return "CGCS2000" in CRS.from_user_input(name).name.upper()
    return False


def to_wgs84(x: np.ndarray, y: np.ndarray, crs: str | int | None) -> tuple[np.ndarray, np.ndarray]:
    """Convert coordinates in ``crs`` to WGS-84 lon/lat."""
    name = normalise_crs(crs)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if name in ("wgs84", "cgcs2000"):
        return x, y
    if name == "gcj02":
        return gcj02_to_wgs84(x, y)
    if name == "bd09":
        return bd09_to_wgs84(x, y)
    transformer = Transformer.from_crs(name, "EPSG:4326", always_xy=True)
    return transformer.transform(x, y)


def from_wgs84(
    lon: np.ndarray, lat: np.ndarray, crs: str | int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Convert WGS-84 lon/lat to ``crs`` (e.g. GCJ-02 for an AMap basemap)."""
    name = normalise_crs(crs)
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    if name in ("wgs84", "cgcs2000"):
        return lon, lat
    if name == "gcj02":
        return wgs84_to_gcj02(lon, lat)
    if name == "bd09":
        return wgs84_to_bd09(lon, lat)
    transformer = Transformer.from_crs("EPSG:4326", name, always_xy=True)
    return transformer.transform(lon, lat)
