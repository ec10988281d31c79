"""Coordinate conversions: GCJ-02 / BD-09 inverses, EPSG zones, CRS names."""

from __future__ import annotations

import numpy as np
import pytest

from geo import crs
from geo.errors import CRSError


def metres(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    """Great-circle distance in metres (haversine, mean Earth radius)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * 6371008.8 * np.arcsin(np.sqrt(a))


@pytest.fixture(scope="module")
def china_points() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2024)
    return rng.uniform(73.6, 134.9, 10_000), rng.uniform(18.2, 53.4, 10_000)


@pytest.mark.parametrize("system", ["gcj02", "bd09"])
def test_round_trip_within_half_a_metre(
    china_points: tuple[np.ndarray, np.ndarray], system: str
) -> None:
    lon, lat = china_points
    olon, olat = crs.from_wgs84(lon, lat, system)
    offset = metres(lon, lat, olon, olat)
    assert offset.min() > 10 and np.median(offset) > 100  # the obfuscation really moves points
    back_lon, back_lat = crs.to_wgs84(olon, olat, system)
    error = metres(lon, lat, back_lon, back_lat)
    assert error.max() < 0.5
    assert error.max() < 0.01  # in practice the iteration converges to about a centimetre


def test_known_gcj02_offset_in_shanghai() -> None:
    # People's Square: the GCJ-02 shift in Shanghai is about 0.0045° east and -0.0020° north.
    glon, glat = crs.wgs84_to_gcj02(np.array([121.4737]), np.array([31.2304]))
    assert glon[0] - 121.4737 == pytest.approx(0.00446, abs=3e-4)
    assert glat[0] - 31.2304 == pytest.approx(-0.00198, abs=3e-4)


def test_gauss_kruger_zone_round_trip() -> None:
    lon, lat = np.array([121.2234, 119.5]), np.array([31.0321, 30.2])
    x, y = crs.from_wgs84(lon, lat, "EPSG:4549")  # CGCS2000 3-degree GK CM 120E
    assert (x > 100_000).all() and (y > 3_000_000).all()
    back = crs.to_wgs84(x, y, 4549)
    np.testing.assert_allclose(back[0], lon, atol=1e-8)
    np.testing.assert_allclose(back[1], lat, atol=1e-8)


@pytest.mark.parametrize(
    ("given", "name"),
    [
        ("WGS84", "wgs84"),
        ("epsg:4326", "wgs84"),
        ("4490", "cgcs2000"),
        ("GCJ-02", "gcj02"),
        ("bd09", "bd09"),
        ("EPSG:4527", "EPSG:4527"),
    ],
)
def test_normalise_crs(given: str, name: str) -> None:
    assert crs.normalise_crs(given) == name


def test_unknown_crs_names_the_choices() -> None:
    with pytest.raises(CRSError, match="use wgs84, cgcs2000, gcj02, bd09 or an EPSG code"):
        crs.normalise_crs("mars")
    with pytest.raises(CRSError, match="unknown EPSG code"):
        crs.normalise_crs("EPSG:999999")


def test_chinese_systems() -> None:
    assert crs.is_chinese("gcj02") and crs.is_chinese("EPSG:4527") and not crs.is_chinese("wgs84")
    assert not crs.is_chinese("EPSG:32651")  # UTM on WGS-84
