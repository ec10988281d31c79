"""Towns, communities and grids that tile the district (generated inside the real boundary).

Grids come first: a density-thinned hexagonal lattice of seeds (small grids in built-up
parts, larger ones in the countryside), Voronoi cells clipped to the boundary and relaxed
twice (Lloyd), then cells outside 0.2-1 km² are merged or split. Communities are k-means
clusters of a town's grids and towns are the grids nearest each real town's centre, so
the three levels nest exactly and tile the district with no gap and no overlap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely
from shapely.ops import split as split_polygon

from data.demo_names import person_names, phones, unique_words
from data.demo_space import Space

KM2 = 1e6


@dataclass
class Admin:
    """Generated admin levels in metres: grid table (with town and community) and polygons."""

    grids: pd.DataFrame  # id, name, town, community, grid_worker, phone, population, built_up, geometry_m
    communities: pd.DataFrame  # id, name, town, town_id, population, geometry_m
    towns: pd.DataFrame  # id, name, population, geometry_m


def _hex_lattice(bounds: tuple[float, float, float, float], spacing: float) -> np.ndarray:
    minx, miny, maxx, maxy = bounds
    dy = spacing * np.sqrt(3) / 2
    xs = np.arange(minx - spacing, maxx + spacing, spacing)
    ys = np.arange(miny - dy, maxy + dy, dy)
    gx, gy = np.meshgrid(xs, ys)
    gx = gx + (np.arange(len(ys))[:, None] % 2) * spacing / 2
    return np.column_stack([gx.ravel(), gy.ravel()])


def _clipped_voronoi(xy: np.ndarray, boundary: shapely.Geometry) -> np.ndarray:
    cells = shapely.voronoi_polygons(shapely.multipoints(xy), extend_to=boundary.envelope.buffer(5000), ordered=True)
    polys = np.asarray(shapely.get_parts(cells))
    shapely.prepare(boundary)
    cut = ~shapely.contains_properly(boundary, polys)  # only cells crossing the boundary need clipping
    polys[cut] = shapely.intersection(polys[cut], boundary)
    return polys


def _seed_points(space: Space, rng: np.random.Generator) -> np.ndarray:
    """Grid seeds: hex lattice at the urban grid size, thinned where grids should be larger."""
    p = space.profile
    spacing = np.sqrt(p.grid_km2_urban * KM2 * 2 / np.sqrt(3))
    pts = _hex_lattice(space.boundary.bounds, spacing)
    pts = pts + rng.normal(0.0, 0.15 * spacing, pts.shape)
    pts = pts[space.inside(pts[:, 0], pts[:, 1])]
    u = np.clip(space.urban(pts[:, 0], pts[:, 1]) / p.built_up_threshold, 0.0, 1.0)
    target = p.grid_km2_rural - (p.grid_km2_rural - p.grid_km2_urban) * u
    keep = rng.random(len(pts)) < p.grid_km2_urban / target
    return pts[keep]


def _shared_border(a: shapely.Geometry, b: shapely.Geometry) -> float:
    return float(shapely.length(shapely.intersection(shapely.boundary(a), shapely.boundary(b))))


def _merge_small(cells: list[shapely.Geometry], min_m2: float, max_m2: float) -> list[shapely.Geometry]:
    """Merge each cell smaller than ``min_m2`` into the neighbour sharing the longest border."""
    for _ in range(10):
        areas = shapely.area(np.asarray(cells, dtype=object))
        small = np.flatnonzero(areas < min_m2)
        if not len(small):
            break
        arr = np.asarray(cells, dtype=object)
        tree = shapely.STRtree(arr)
        dead: set[int] = set()
        for i in small[np.argsort(areas[small])]:  # only the few small cells
            if i in dead or areas[i] >= min_m2:  # merged away, or grown by a merge
                continue
            near = [j for j in tree.query(arr[i], predicate="intersects") if j != i and j not in dead]
            if not near:  # a small island: join the nearest cell
                dist = shapely.distance(arr[i], arr)
                dist[[i, *dead]] = np.inf
                near = [int(np.argmin(dist))] if np.isfinite(dist).any() else []
                if not near:
                    continue
                target = int(near[0])
            else:
                borders = [_shared_border(arr[i], arr[j]) for j in near]
                fits = [(b, -areas[j], j) for b, j in zip(borders, near, strict=True) if areas[j] + areas[i] <= max_m2]
                target = int(max(fits)[2]) if fits else int(min(near, key=lambda j: areas[j]))
            arr[target] = shapely.union(arr[target], arr[i])
            areas[target] += areas[i]
            dead.add(int(i))
        cells = [g for k, g in enumerate(arr) if k not in dead]
    return cells


def _split_large(cells: list[shapely.Geometry], max_m2: float) -> list[shapely.Geometry]:
    """Cut each cell larger than ``max_m2`` across its long axis until all fit."""
    out: list[shapely.Geometry] = []
    todo = list(cells)
    while todo:
        g = todo.pop()
        if g.area <= max_m2:
            out.append(g)
            continue
        rect = np.asarray(shapely.minimum_rotated_rectangle(g).exterior.coords)[:4]
        e1, e2 = rect[1] - rect[0], rect[2] - rect[1]
        axis = e1 if np.hypot(*e1) >= np.hypot(*e2) else e2
        axis = axis / np.hypot(*axis)
        c = np.asarray(g.centroid.coords[0])
        normal = np.array([-axis[1], axis[0]])
        span = 10 * np.sqrt(g.area) + 1000
        cut = shapely.linestrings([c - normal * span, c + normal * span])
        parts = list(shapely.get_parts(split_polygon(g, cut)))
        if len(parts) < 2:
            out.append(g)
            continue
        halves = [shapely.union_all([q for q in parts if (np.asarray(q.centroid.coords[0]) - c) @ axis < 0]),
                  shapely.union_all([q for q in parts if (np.asarray(q.centroid.coords[0]) - c) @ axis >= 0])]
        todo.extend(h for h in halves if not h.is_empty)
    return out


def make_grid_cells(space: Space, rng: np.random.Generator) -> np.ndarray:
    """Polygons (metres) tiling the district, each between the profile's min and max size."""
    p = space.profile
    seeds = _seed_points(space, rng)
    cells = _clipped_voronoi(seeds, space.boundary)
    for _ in range(p.lloyd_iterations):
        ok = ~shapely.is_empty(cells)
        seeds = shapely.get_coordinates(shapely.centroid(cells[ok]))
        cells = _clipped_voronoi(seeds, space.boundary)
    cells = shapely.get_parts(cells[~shapely.is_empty(cells)])
    cells = cells[shapely.area(cells) > 0]
    lo, hi = p.grid_km2_min * KM2, p.grid_km2_max * KM2
    margin = 0.02 * (hi - lo)
    out = list(cells)
    for _ in range(3):
        out = _merge_small(out, lo + margin, hi - margin)
        out = _split_large(out, hi - margin)
        areas = shapely.area(np.asarray(out, dtype=object))
        if areas.min() >= lo and areas.max() <= hi:
            break
    geoms = np.asarray(out, dtype=object)
    geoms = shapely.make_valid(shapely.normalize(geoms))
    # Sort west→east, south→north in bands so ids read like a map.
    c = shapely.get_coordinates(shapely.point_on_surface(geoms))
    order = np.lexsort((c[:, 0], np.floor(c[:, 1] / 2000.0)))
    return geoms[order]


def _kmeans(xy: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 10) -> np.ndarray:
    """Labels 0..k'-1 of a small k-means (empty clusters vanish; labels stay consecutive)."""
    if k <= 1 or len(xy) <= 1:
        return np.zeros(len(xy), dtype=np.int64)
    centres = xy[rng.choice(len(xy), size=min(k, len(xy)), replace=False)]
    labels = np.zeros(len(xy), dtype=np.int64)
    for _ in range(iterations):
        d = ((xy[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        labels = d.argmin(axis=1)
        counts = np.bincount(labels, minlength=len(centres))
        sums = np.stack([np.bincount(labels, weights=xy[:, i], minlength=len(centres)) for i in (0, 1)], axis=1)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    _, labels = np.unique(labels, return_inverse=True)
    return labels


def make_admin(space: Space, rng: np.random.Generator) -> Admin:
    """Grids, communities and towns (metres) with names, workers and population."""
    p = space.profile
    area = space.area
    geoms = make_grid_cells(space, rng)
    rep = shapely.get_coordinates(shapely.point_on_surface(geoms))
    cen = shapely.get_coordinates(shapely.centroid(geoms))
    areas_km2 = shapely.area(geoms) / KM2
    urban = space.urban(cen[:, 0], cen[:, 1])
    built_up = urban >= p.built_up_threshold

    # Towns: the grids nearest each real town centre.
    d = ((cen[:, None, :] - space.town_xy[None, :, :]) ** 2).sum(axis=2)
    town_idx = d.argmin(axis=1)

    # Communities: k-means of each town's grids; 居委 where built-up, 村 elsewhere.
    comm_of_grid = np.empty(len(geoms), dtype=np.int64)
    comm_rows: list[dict] = []
    taken: set[str] = set()
    street_no, town_no = 0, 100
    town_ids: list[str] = []
    for t, town in enumerate(area.towns):  # per town (a few dozen)
        if town.is_street:
            street_no += 1
            town_ids.append(f"{area.adcode}{street_no:03d}")
        else:
            town_no += 1
            town_ids.append(f"{area.adcode}{town_no:03d}")
        members = np.flatnonzero(town_idx == t)
        if not len(members):
            continue
        share_urban = float(built_up[members].mean())
        per = p.grids_per_residents_committee if (town.is_street or share_urban > 0.5) else p.grids_per_village
        k = max(1, int(round(len(members) / per)))
        labels = _kmeans(cen[members], k, rng)
        n_comm = labels.max() + 1
        words = unique_words(rng, n_comm, taken)
        rc_no, village_no = 0, 200
        for c in range(n_comm):
            g = members[labels == c]
            is_rc = town.is_street or built_up[g].mean() >= 0.5
            if is_rc:
                rc_no += 1
                cid, cname = f"{town_ids[t]}{rc_no:03d}", f"{words[c]}居委"
            else:
                village_no += 1
                cid, cname = f"{town_ids[t]}{village_no:03d}", f"{words[c]}村"
            comm_of_grid[g] = len(comm_rows)
            comm_rows.append({"id": cid, "name": cname, "town": town.name, "town_id": town_ids[t]})
    comms = pd.DataFrame(comm_rows)

    # Grid ids and names: community id + number within the community.
    order_in_comm = pd.Series(np.arange(len(geoms))).groupby(comm_of_grid).cumcount().to_numpy() + 1
    comm_id = comms["id"].to_numpy()[comm_of_grid]
    comm_name = comms["name"].to_numpy()[comm_of_grid]
    density = p.people_per_km2_rural + (p.people_per_km2_urban - p.people_per_km2_rural) * np.clip(urban, 0, 1)
    population = np.round(areas_km2 * density * rng.lognormal(0.0, 0.25, len(geoms))).astype(np.int64)
    grids = pd.DataFrame({
        "id": np.char.add(comm_id.astype(str), np.char.zfill(order_in_comm.astype(str), 2)),
        "name": np.char.add(np.char.add(comm_name.astype(str), "第"), np.char.add(order_in_comm.astype(str), "网格")),
        "town": comms["town"].to_numpy()[comm_of_grid],
        "community": comm_name,
        "community_id": comm_id,
        "grid_worker": person_names(rng, len(geoms)),
        "phone": phones(rng, len(geoms)),
        "population": population,
        "built_up": built_up,
        "rep_x": rep[:, 0],
        "rep_y": rep[:, 1],
        "geometry_m": geoms,
    })
    grids["name"] = grids["name"].astype(object)
    grids["id"] = grids["id"].astype(object)

    # Community and town polygons: unions of their grids (one union per polygon).
    comm_geom = [shapely.union_all(geoms[comm_of_grid == c]) for c in range(len(comms))]
    comms["geometry_m"] = comm_geom
    comms["population"] = np.bincount(comm_of_grid, weights=population, minlength=len(comms)).astype(np.int64)
    town_rows = []
    for t, town in enumerate(area.towns):
        sel = comms["town_id"] == town_ids[t]
        if not sel.any():
            continue
        town_rows.append({
            "id": town_ids[t], "name": town.name,
            "population": int(comms.loc[sel, "population"].sum()),
            "geometry_m": shapely.union_all(geoms[np.isin(comm_of_grid, np.flatnonzero(sel.to_numpy()))]),
        })
    return Admin(grids=grids, communities=comms, towns=pd.DataFrame(town_rows))
