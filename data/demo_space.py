"""The demo district's space: metric projection, boundary, town centres and density fields.

Generation happens in a local transverse Mercator projection (metres); results are
converted back to WGS-84 lon/lat before they are stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import Transformer
from shapely.ops import nearest_points

from data.areas import Area, load_boundary
from data.demo_params import DemoProfile
from geo.store import local_metric_crs


def _random_waves(rng: np.random.Generator, profile: DemoProfile, k: int = 6) -> np.ndarray:
    wavelength = rng.uniform(*profile.noise_wavelength_m, k)
    angle = rng.uniform(0, np.pi, k)
    kx, ky = 2 * np.pi / wavelength * np.cos(angle), 2 * np.pi / wavelength * np.sin(angle)
    amp = np.full(k, 1.0 / np.sqrt(k * 0.5))
    return np.column_stack([kx, ky, rng.uniform(0, 2 * np.pi, k), amp])


@dataclass
class Space:
    """Boundary and town centres of one area in metres, with the fields that shape the demo."""

    area: Area
    profile: DemoProfile
    boundary_ll: shapely.Geometry
    boundary: shapely.Geometry  # metres
    town_xy: np.ndarray  # (n_towns, 2) metres
    is_street: np.ndarray  # bool per town
    old_centre: np.ndarray  # bool per town
    emerging: np.ndarray  # bool per town
    _fwd: Transformer
    _inv: Transformer
    _waves: np.ndarray  # (k, 4): kx, ky, phase, amplitude of the smooth noise that roughens built-up edges

    @classmethod
    def build(cls, area: Area, profile: DemoProfile, rng: np.random.Generator) -> Space:
        """Project the boundary and place town centres inside it (seeded fallback)."""
        boundary_ll = load_boundary(area.adcode)
        lon0, lat0 = shapely.get_coordinates(shapely.centroid(boundary_ll))[0]
        crs = local_metric_crs(np.array([lon0]), np.array([lat0]))
        fwd = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        inv = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)

        def to_m(coords: np.ndarray) -> np.ndarray:
            return np.column_stack(fwd.transform(coords[:, 0], coords[:, 1]))

        boundary = shapely.make_valid(shapely.transform(boundary_ll, to_m))
        shapely.prepare(boundary)
        lon = np.array([t.lon for t in area.towns])
        lat = np.array([t.lat for t in area.towns])
        xy = np.column_stack(fwd.transform(lon, lat))
        inner = boundary.buffer(-profile.town_inset_m)
        if inner.is_empty:
            inner = boundary
        pts = shapely.points(xy)
        outside = ~shapely.contains(boundary, pts)
        for i in np.flatnonzero(outside):  # a handful of towns at most
            near = nearest_points(inner, pts[i])[0]
            xy[i] = (near.x, near.y)
        return cls(
            area=area, profile=profile, boundary_ll=boundary_ll, boundary=boundary, town_xy=xy,
            is_street=np.array([t.is_street for t in area.towns]),
            old_centre=np.array([t.old_centre for t in area.towns]),
            emerging=np.array([t.emerging for t in area.towns]),
            _fwd=fwd, _inv=inv, _waves=_random_waves(rng, profile),
        )

    # ------------------------------------------------------------------ projection
    def to_lonlat(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Metres → WGS-84 lon/lat."""
        lon, lat = self._inv.transform(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
        return np.asarray(lon), np.asarray(lat)

    def geoms_to_lonlat(self, geoms: np.ndarray) -> np.ndarray:
        """Shapely geometries in metres → WGS-84."""
        def inv(coords: np.ndarray) -> np.ndarray:
            return np.column_stack(self._inv.transform(coords[:, 0], coords[:, 1]))

        return shapely.transform(np.asarray(geoms, dtype=object), inv)

    # ------------------------------------------------------------------ fields
    def _bumps(self, x: np.ndarray, y: np.ndarray, weight: np.ndarray, radius: np.ndarray) -> np.ndarray:
        out = np.zeros(np.shape(x), dtype=np.float64)
        for (cx, cy), w, r in zip(self.town_xy, weight, radius, strict=True):  # per town, not per point
            if w <= 0:
                continue
            d2 = (x - cx) ** 2 + (y - cy) ** 2
            np.maximum(out, w * np.exp(-d2 / (r * r)), out=out)
        return out

    def noise(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Smooth seeded noise in about [-1, 1] (a few plane waves of several km)."""
        out = np.zeros(np.shape(x), dtype=np.float64)
        for kx, ky, phase, amp in self._waves:  # a handful of waves
            out += amp * np.sin(kx * x + ky * y + phase)
        return out

    def urban(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Built-up intensity in [0, 1]: 1 at a street's centre, falling off with distance, rough edges."""
        p = self.profile
        weight = np.where(self.is_street, 1.0, p.town_centre_weight)
        radius = np.where(self.is_street, p.street_radius_m, p.town_radius_m)
        bumps = self._bumps(x, y, weight, radius)
        return np.clip(bumps * (1.0 + p.urban_noise * self.noise(x, y)), 0.0, 1.0)

    def old(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Old-neighbourhood intensity in [0, 1] (where hazards cluster)."""
        p = self.profile
        weight = self.old_centre.astype(np.float64)
        radius = np.full(len(weight), p.old_centre_radius_m)
        return self._bumps(x, y, weight, radius)

    def emerging_field(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Intensity of the emerging areas in [0, 1] (hazards grow there over the last months)."""
        p = self.profile
        weight = self.emerging.astype(np.float64)
        radius = np.full(len(weight), p.emerging_radius_m)
        return self._bumps(x, y, weight, radius)

    def built_up(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Whether a location is in a built-up part."""
        return self.urban(x, y) >= self.profile.built_up_threshold

    def inside(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Whether points lie inside the district."""
        return shapely.contains_xy(self.boundary, x, y)

    def random_points(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` uniform random points inside the district (rejection sampling, vectorised)."""
        minx, miny, maxx, maxy = self.boundary.bounds
        xs: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        got = 0
        while got < n:
            m = max(1024, 2 * (n - got))
            x = rng.uniform(minx, maxx, m)
            y = rng.uniform(miny, maxy, m)
            keep = self.inside(x, y)
            xs.append(x[keep])
            ys.append(y[keep])
            got += int(keep.sum())
        return np.concatenate(xs)[:n], np.concatenate(ys)[:n]
