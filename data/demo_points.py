"""Point layers of the demo placed along the generated roads: hydrants, water, stations, places."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import shapely

from data.demo_admin import Admin
from data.demo_names import ids, person_names, phones, words
from data.demo_roads import Roads
from data.demo_space import Space
from geo.settings import Settings

# Inspection class of each key-place category (三级网格化排查, seed 000): class 1 residential
# (committees), class 2 street frontage and small premises (town patrol), class 3 large units,
# sites, important buildings, underground spaces (town fire-safety office).
INSPECTION_CLASS: dict[str, int] = {
    "住宅小区": 1, "自建出租房": 1, "规模租赁公寓": 1,
    "沿街商铺": 2, "九小场所": 2, "三合一场所": 2, "宾馆民宿": 2, "其他": 2,
    "高层建筑": 3, "厂房仓库": 3, "建筑工地": 3, "地下空间": 3, "文物古建筑": 3, "养老机构": 3,
    "学校": 3, "医院": 3, "商场市场": 3, "易燃易爆场所": 3,
}
# Share of each category among key places, and whether it sits in built-up (1), mixed (0.5)
# or outlying (0) parts: (weight, urban affinity).
PLACE_MIX: dict[str, tuple[float, float]] = {
    "住宅小区": (0.20, 1.0), "自建出租房": (0.13, 0.3), "规模租赁公寓": (0.03, 0.8),
    "沿街商铺": (0.17, 1.0), "九小场所": (0.12, 0.9), "三合一场所": (0.05, 0.3), "宾馆民宿": (0.03, 0.8),
    "高层建筑": (0.04, 1.0), "厂房仓库": (0.10, 0.1), "建筑工地": (0.03, 0.5), "地下空间": (0.02, 1.0),
    "文物古建筑": (0.01, 0.9), "养老机构": (0.015, 0.7), "学校": (0.02, 0.7), "医院": (0.007, 0.9),
    "商场市场": (0.015, 1.0), "易燃易爆场所": (0.005, 0.1), "其他": (0.008, 0.5),
}
PLACE_SUFFIX: dict[str, tuple[str, ...]] = {
    "住宅小区": ("小区", "花园", "苑", "新村"), "自建出租房": ("出租房",), "规模租赁公寓": ("公寓",),
    "沿街商铺": ("便利店", "饭店", "五金店", "理发店", "水果店"), "九小场所": ("小饭馆", "小网吧", "小旅馆", "小作坊"),
    "三合一场所": ("加工点",), "宾馆民宿": ("宾馆", "民宿"), "高层建筑": ("大厦", "中心"),
    "厂房仓库": ("厂", "仓库", "物流园"), "建筑工地": ("项目工地",), "地下空间": ("地下车库", "地下商场"),
    "文物古建筑": ("古建筑", "老宅"), "养老机构": ("敬老院", "养老院"), "学校": ("小学", "中学", "幼儿园"),
    "医院": ("医院", "社区卫生服务中心"), "商场市场": ("农贸市场", "商场"), "易燃易爆场所": ("加油站", "液化气站"),
    "其他": ("场所",),
}


def along_roads(space: Space, roads: Roads, weight: np.ndarray, n: int, rng: np.random.Generator,
                offset_m: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` points on road edges chosen ∝ length × ``weight``, set back up to ``offset_m``.

    Returns x, y (metres) and the edge index of each point; a point pushed outside the
    district stays on its road.
    """
    w = roads.length_m * np.clip(weight, 0.0, None)
    e = rng.choice(len(w), size=n, p=w / w.sum())
    t = rng.random(n)
    x0, y0 = roads.x[roads.u[e]], roads.y[roads.u[e]]
    dx, dy = roads.x[roads.v[e]] - x0, roads.y[roads.v[e]] - y0
    x, y = x0 + t * dx, y0 + t * dy
    if offset_m > 0:
        norm = np.hypot(dx, dy) + 1e-9
        side = rng.choice(np.array([-1.0, 1.0]), n) * rng.uniform(0.3, 1.0, n) * offset_m
        ox, oy = x - dy / norm * side, y + dx / norm * side
        ok = space.inside(ox, oy)
        x, y = np.where(ok, ox, x), np.where(ok, oy, y)
    return x, y, e


def edge_midpoints(roads: Roads) -> tuple[np.ndarray, np.ndarray]:
    """Midpoints (metres) of the undirected edges."""
    return (roads.x[roads.u] + roads.x[roads.v]) / 2, (roads.y[roads.u] + roads.y[roads.v]) / 2


def addresses(roads: Roads, edge: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """House addresses on the road of each point (road name + number)."""
    no = rng.integers(1, 999, len(edge))
    return np.char.add(np.char.add(roads.name[edge].astype(str), no.astype(str)), "号").astype(object)


def _dates_before(end: datetime, days: np.ndarray) -> np.ndarray:
    """Dates ``days`` before ``end`` as datetime64[D] (NaT where days is NaN)."""
    base = np.datetime64(end.date(), "D")
    out = np.full(len(days), np.datetime64("NaT"), dtype="datetime64[D]")
    ok = np.isfinite(days)
    out[ok] = base - days[ok].astype(np.int64).astype("timedelta64[D]")
    return out


def hydrants(space: Space, roads: Roads, settings: Settings, scale: float, rng: np.random.Generator,
             end: datetime) -> pd.DataFrame:
    """Municipal hydrants every ``hydrant_max_spacing_m`` along roads in built-up parts.

    Spacing is divided by ``scale`` above 1 so benchmarks get more points.
    """
    p = space.profile
    spacing = settings.hydrant_max_spacing_m / max(scale, 1.0)
    mx, my = edge_midpoints(roads)
    e_all = np.flatnonzero(space.built_up(mx, my))
    per = np.ceil(roads.length_m[e_all] / spacing).astype(np.int64)
    e = np.repeat(e_all, per)
    k = np.arange(len(e)) - np.repeat(np.cumsum(per) - per, per)
    t = (k + 0.5) / np.repeat(per, per)
    x0, y0 = roads.x[roads.u[e]], roads.y[roads.u[e]]
    dx, dy = roads.x[roads.v[e]] - x0, roads.y[roads.v[e]] - y0
    norm = np.hypot(dx, dy) + 1e-9
    side = np.where(rng.random(len(e)) < 0.5, -1.0, 1.0) * 6.0  # kerbside, a few metres off the centre line
    x, y = x0 + t * dx - dy / norm * side, y0 + t * dy + dx / norm * side
    ok = space.inside(x, y)
    x, y, e = x[ok], y[ok], e[ok]
    n = len(x)
    bad = np.asarray(p.hydrant_bad_shares)
    status = rng.choice(np.array(["正常", "损坏", "水压不足", "停用"], dtype=object), n, p=[1 - bad.sum(), *bad])
    kind = rng.choice(np.array(["地上式", "地下式", "室外消防水鹤"], dtype=object), n, p=[0.8, 0.19, 0.01])
    diameter = rng.choice(np.array([100.0, 150.0]), n, p=[0.75, 0.25])
    pressure = np.round(rng.normal(0.28, 0.05, n), 2)
    low = status == "水压不足"
    pressure[low] = np.round(rng.uniform(0.05, settings.hydrant_min_pressure_mpa - 0.01, low.sum()), 2)
    pressure = np.maximum(pressure, 0.0)
    pressure[status == "停用"] = np.nan
    days = rng.uniform(0, 400, n)
    days[rng.random(n) < 0.03] = np.nan
    return pd.DataFrame({
        "id": ids("XHS", n, 7),
        "name": np.char.add(roads.name[e].astype(str), "消火栓").astype(object),
        "status": status, "hydrant_type": kind, "pipe_diameter_mm": diameter, "pressure_mpa": pressure,
        "last_inspection": _dates_before(end, days), "address": addresses(roads, e, rng),
        "x": x, "y": y,
    })


def rivers(space: Space, rng: np.random.Generator) -> list[shapely.LineString]:
    """A few meandering synthetic rivers across the district (metres), clipped to it."""
    p = space.profile
    minx, miny, maxx, maxy = space.boundary.bounds
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    span = np.hypot(maxx - minx, maxy - miny)
    out: list[shapely.LineString] = []
    for _ in range(p.rivers):  # a handful of rivers
        ang = rng.uniform(0, np.pi)
        off = rng.uniform(-0.3, 0.3) * span
        s = np.linspace(-span / 2, span / 2, 400)
        wiggle = 0.03 * span * np.sin(s / span * rng.uniform(6, 14) + rng.uniform(0, 6)) + rng.normal(0, 0.002 * span, len(s)).cumsum() * 0.1
        lx, ly = s, off + wiggle
        x = cx + lx * np.cos(ang) - ly * np.sin(ang)
        y = cy + lx * np.sin(ang) + ly * np.cos(ang)
        clipped = shapely.intersection(shapely.linestrings(np.column_stack([x, y])), space.boundary)
        parts = [g for g in shapely.get_parts(clipped) if g.geom_type == "LineString" and g.length > 1000]
        out.extend(parts)
    return out


def _near_road_on_river(roads: Roads, line: shapely.LineString, d: np.ndarray, stretch_m: float,
                        step_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Per position ``d`` along ``line``, the point of its stretch (± ``stretch_m``/2) nearest a road node.

    Returns the points (metres) and their distances to that node.
    """
    from scipy.spatial import cKDTree

    half = max(stretch_m / 2 - step_m, 0.0)
    k = int(half // step_m)
    offsets = np.arange(-k, k + 1) * step_m
    cand = np.clip(d[:, None] + offsets[None, :], 0.0, line.length)  # (n, 2k+1) positions along the river
    xy = shapely.get_coordinates(shapely.line_interpolate_point(line, cand.ravel()))
    dist = cKDTree(np.column_stack([roads.x, roads.y])).query(xy)[0].reshape(cand.shape)
    pick = dist.argmin(axis=1)
    best = cand[np.arange(len(d)), pick]
    return shapely.get_coordinates(shapely.line_interpolate_point(line, best)), dist[np.arange(len(d)), pick]


def water_sources(space: Space, roads: Roads, river_lines: list[shapely.LineString], rng: np.random.Generator,
                  end: datetime) -> pd.DataFrame:
    """Fire pools (villages, factories, old centres), intake points and docks on rivers, water cranes."""
    p = space.profile
    parts: list[pd.DataFrame] = []
    # Fire pools: in the countryside and in each old centre (seed 003: ≥ 500 m³ in ancient towns).
    n_rural = max(2, int(round(space.boundary.area / 1e6 * p.fire_pool_per_km2_rural)))
    mx, my = edge_midpoints(roads)
    x, y, _ = along_roads(space, roads, (~space.built_up(mx, my)).astype(float) + 0.05, n_rural, rng, 60.0)
    cap = np.round(rng.uniform(100, 800, n_rural), -1)
    parts.append(pd.DataFrame({"kind": "消防水池", "capacity_m3": cap, "x": x, "y": y}))
    old = space.town_xy[space.old_centre]
    if len(old):
        k = p.fire_pool_per_old_centre
        ox = np.repeat(old[:, 0], k) + rng.normal(0, 300, len(old) * k)
        oy = np.repeat(old[:, 1], k) + rng.normal(0, 300, len(old) * k)
        ok = space.inside(ox, oy)
        ox, oy = by_road(space, roads, nearest_nodes(roads, ox[ok], oy[ok]), ox[ok], oy[ok], p.pool_setback_m)
        parts.append(pd.DataFrame({"kind": "消防水池", "capacity_m3": np.round(rng.uniform(500, 800, ok.sum()), -1),
                                   "x": ox, "y": oy}))
    # Natural intake points every few km along the rivers, each where its stretch of river comes
    # closest to a road (an engine must reach the bank); docks at a couple of them.
    for line in river_lines:  # a handful of rivers
        n = max(1, int(line.length // p.intake_spacing_m))
        d = (np.arange(n) + rng.uniform(0.2, 0.8, n)) * line.length / n
        pts, dist = _near_road_on_river(roads, line, d, line.length / n, p.intake_step_m)
        pts = pts[dist <= p.intake_reach_m]  # a stretch no road comes near has no intake
        n = len(pts)
        if not n:
            continue
        kinds = np.array(["天然水源取水点"] * n, dtype=object)
        kinds[rng.choice(n, size=min(n, p.docks_per_river), replace=False)] = "取水码头"
        parts.append(pd.DataFrame({"kind": kinds, "capacity_m3": np.nan, "x": pts[:, 0], "y": pts[:, 1]}))
    # A few water cranes (消防水鹤) on urban arterials.
    urban_art = space.built_up(mx, my) & np.isin(roads.highway, ["primary", "secondary"])
    if urban_art.any():
        n = max(1, int(urban_art.sum() // 400))
        x, y, _ = along_roads(space, roads, urban_art.astype(float), n, rng, 8.0)
        parts.append(pd.DataFrame({"kind": "消防水鹤", "capacity_m3": np.nan, "x": x, "y": y}))
    df = pd.concat(parts, ignore_index=True)
    n = len(df)
    df["status"] = rng.choice(np.array(["正常", "损坏", "停用"], dtype=object), n, p=[0.92, 0.05, 0.03])
    days = rng.uniform(0, 300, n)
    days[rng.random(n) < 0.05] = np.nan
    df["last_inspection"] = _dates_before(end, days)
    df["name"] = words(rng, n) + df["kind"].to_numpy()
    df["id"] = ids("SY", n, 5)
    return df


def nearest_nodes(roads: Roads, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Index of the road node nearest each point (metres)."""
    from scipy.spatial import cKDTree

    return cKDTree(np.column_stack([roads.x, roads.y])).query(np.column_stack([x, y]))[1]


def by_road(space: Space, roads: Roads, node: np.ndarray, toward_x: np.ndarray, toward_y: np.ndarray,
            setback_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Points ``setback_m`` from road ``node`` towards a target (the plot), kept inside the district.

    Stations sit on a street: the coverage engine snaps them to this node.
    """
    nx, ny = roads.x[node], roads.y[node]
    dx, dy = np.asarray(toward_x) - nx, np.asarray(toward_y) - ny
    d = np.hypot(dx, dy)
    step = np.minimum(setback_m, d) / np.maximum(d, 1e-9)
    x, y = nx + dx * step, ny + dy * step
    ok = space.inside(x, y)
    return np.where(ok, x, nx), np.where(ok, y, ny)


def _on_street(space: Space, roads: Roads, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move points to the street at their nearest road node (the station's gate)."""
    return by_road(space, roads, nearest_nodes(roads, x, y), x, y, space.profile.station_setback_m)


def _nearest_node_within(roads: Roads, polygons: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per polygon, the road node inside it nearest to (x, y); the nearest node anywhere if it has none."""
    tree = shapely.STRtree(np.asarray(polygons, dtype=object))
    pt, poly = tree.query(shapely.points(roads.x, roads.y), predicate="within")
    d = np.hypot(roads.x[pt] - x[poly], roads.y[pt] - y[poly])
    best = pd.DataFrame({"poly": poly, "node": pt, "d": d}).sort_values(["poly", "d", "node"]).drop_duplicates("poly")
    out = nearest_nodes(roads, x, y)
    out[best["poly"].to_numpy()] = best["node"].to_numpy()
    return out


def fire_stations(space: Space, roads: Roads, admin: Admin, rng: np.random.Generator) -> pd.DataFrame:
    """2-4 national stations (一级/二级) at the main centres, brigades in rural towns, one planned."""
    p = space.profile
    area = space.area
    n_nat = int(np.clip(round(space.boundary.area / 1e6 / p.rescue_station_km2), 2, 4))
    town_names = [t.name for t in area.towns]
    town_pop = admin.towns.set_index("name")["population"].reindex(town_names).fillna(0).to_numpy()
    street_first = np.argsort(-(town_pop * np.where(space.is_street, 3.0, 1.0)))
    chosen: list[int] = []
    for t in street_first:  # a few dozen towns: keep national stations ≥ 4 km apart
        if all(np.hypot(*(space.town_xy[t] - space.town_xy[c])) > 4000 for c in chosen):
            chosen.append(int(t))
        if len(chosen) == n_nat:
            break
    rows = []
    for k, t in enumerate(chosen):
        rows.append({"name": f"{area.towns[t].name.removesuffix('街道').removesuffix('镇')}消防救援站",
                     "kind": "消防救援站", "station_class": "一级" if k < 2 else "二级", "staff": int(rng.integers(30, 45)),
                     "vehicles": int(rng.integers(5, 9)), "status": "在役", "t": t})
    rural = [i for i in range(len(area.towns)) if not area.towns[i].is_street and i not in chosen]
    n_brig = max(1, int(round(len(rural) * p.brigade_share_rural_towns)))
    for t in rng.choice(rural, size=min(n_brig, len(rural)), replace=False) if rural else []:
        rows.append({"name": f"{area.towns[t].name.removesuffix('镇').removesuffix('乡')}政府专职消防队",
                     "kind": "政府专职消防队", "station_class": "小型", "staff": int(rng.integers(10, 20)),
                     "vehicles": int(rng.integers(2, 4)), "status": "在役", "t": int(t)})
    if rural:
        t = int(rng.choice(rural))
        rows.append({"name": f"{area.towns[t].name.removesuffix('镇').removesuffix('乡')}乡镇消防队",
                     "kind": "乡镇消防队", "station_class": "小型", "staff": int(rng.integers(6, 10)),
                     "vehicles": 1, "status": "规划", "t": t})
    df = pd.DataFrame(rows)
    off = rng.normal(0, 500, (len(df), 2))
    xy = space.town_xy[df["t"].to_numpy()] + off
    x, y = _on_street(space, roads, xy[:, 0], xy[:, 1])
    df["x"], df["y"] = x, y
    df["phone"] = phones(rng, len(df))
    df["id"] = ids("XFZ", len(df), 3)
    return df.drop(columns="t")


def micro_stations(space: Space, roads: Roads, admin: Admin, places: pd.DataFrame, scale: float,
                   rng: np.random.Generator) -> pd.DataFrame:
    """One community micro station per community, key-unit stations, a high-spec one per street."""
    p = space.profile
    g = admin.grids
    # Community station: on the street of the community nearest its most populous grid.
    top = g.sort_values("population", ascending=False).drop_duplicates("community_id")
    rx, ry = top["rep_x"].to_numpy(), top["rep_y"].to_numpy()
    comm_geom = admin.communities.set_index("id")["geometry_m"].reindex(top["community_id"]).to_numpy()
    x, y = by_road(space, roads, _nearest_node_within(roads, comm_geom, rx, ry), rx, ry, p.station_setback_m)
    n = len(top)
    com = pd.DataFrame({"name": np.char.add(top["community"].to_numpy().astype(str), "微型消防站").astype(object),
                        "kind": "社区", "staff": rng.integers(3, 7, n), "duty_24h": rng.random(n) < 0.6,
                        "vehicles": rng.integers(0, 2, n), "x": x, "y": y})
    com["status"] = rng.choice(np.array(["在用", "建设中", "规划"], dtype=object), n, p=[0.88, 0.09, 0.03])
    # Key-unit stations at some class-3 places.
    c3 = places[places["inspection_class"] == 3]
    k = max(1, int(round(len(c3) / scale * p.key_unit_micro_share)))  # stations do not scale
    pick = c3.iloc[np.sort(rng.choice(len(c3), size=min(k, len(c3)), replace=False))]
    kx, ky = _on_street(space, roads, pick["x"].to_numpy(), pick["y"].to_numpy())  # at the unit's gate
    key = pd.DataFrame({"name": np.char.add(pick["name"].to_numpy().astype(str), "微型消防站").astype(object),
                        "kind": "重点单位", "staff": rng.integers(4, 9, len(pick)), "duty_24h": True,
                        "vehicles": rng.integers(0, 2, len(pick)), "x": kx, "y": ky, "status": "在用"})
    # High-spec (高配版) station at each street's centre.
    st = np.flatnonzero(space.is_street)
    hx, hy = _on_street(space, roads, space.town_xy[st, 0] + 200, space.town_xy[st, 1] - 200)
    high = pd.DataFrame({"name": [f"{space.area.towns[t].name}高配版微型消防站" for t in st], "kind": "高配版",
                         "staff": rng.integers(8, 13, len(st)), "duty_24h": True, "vehicles": rng.integers(1, 3, len(st)),
                         "x": hx, "y": hy, "status": "在用"})
    df = pd.concat([com, key, high], ignore_index=True)
    df["phone"] = phones(rng, len(df))
    df["staff"] = df["staff"].astype(np.int64)
    df["vehicles"] = df["vehicles"].astype(np.int64)
    df["duty_24h"] = df["duty_24h"].astype(bool)
    df["id"] = ids("WXZ", len(df), 5)
    return df


def key_places(space: Space, roads: Roads, settings: Settings, scale: float, rng: np.random.Generator,
               end: datetime, town_of_point) -> pd.DataFrame:
    """About 2,000 × scale key places with categories, inspection classes and last inspections.

    ``town_of_point(x, y)`` returns the town index of points; towns differ in how well
    they keep up with inspections, so some lag behind (the committee's scorecard).
    """
    p = space.profile
    n = max(1, int(round(p.key_places * scale)))
    cats = np.array(list(PLACE_MIX), dtype=object)
    share = np.array([PLACE_MIX[c][0] for c in cats])
    cat = rng.choice(cats, n, p=share / share.sum())
    mx, my = edge_midpoints(roads)
    urban = np.clip(space.urban(mx, my) / space.profile.built_up_threshold, 0, 1)
    x = np.empty(n)
    y = np.empty(n)
    edge = np.empty(n, dtype=np.int64)
    for c in cats:  # per category (18), vectorised inside
        sel = np.flatnonzero(cat == c)
        if not len(sel):
            continue
        aff = PLACE_MIX[c][1]
        w = aff * urban + (1 - aff) * (1 - urban) + 0.02 + 0.6 * space.old(mx, my) * aff
        x[sel], y[sel], edge[sel] = along_roads(space, roads, w, len(sel), rng, 40.0)
    cls = np.array([INSPECTION_CLASS[c] for c in cat], dtype=np.int64)
    interval = np.array([settings.inspection_interval_days[str(k)] for k in cls], dtype=np.float64)
    # Each town keeps up to a different degree: share of places inspected within the interval.
    towns = town_of_point(x, y)
    town_keep = rng.uniform(0.6, 0.97, len(space.area.towns))
    within = rng.random(n) < town_keep[towns]
    days = np.where(within, rng.uniform(0, 1, n) * interval, interval * rng.uniform(1.05, 3.0, n))
    days[rng.random(n) < p.never_inspected_share] = np.nan
    suffix = np.empty(n, dtype=object)
    for c, options in PLACE_SUFFIX.items():  # per category
        sel = cat == c
        suffix[sel] = rng.choice(np.asarray(options, dtype=object), sel.sum())
    risk_p = {1: [0.5, 0.4, 0.1], 2: [0.4, 0.45, 0.15], 3: [0.2, 0.5, 0.3]}
    risk = np.empty(n, dtype=object)
    for k, probs in risk_p.items():
        sel = cls == k
        risk[sel] = rng.choice(np.array(["低", "中", "高"], dtype=object), sel.sum(), p=probs)
    return pd.DataFrame({
        "id": ids("ZD", n, 6),
        "name": words(rng, n) + suffix, "category": cat, "inspection_class": cls,
        "last_inspection": _dates_before(end, days), "risk_level": risk,
        "contact": person_names(rng, n), "phone": phones(rng, n),
        "address": addresses(roads, edge, rng), "x": x, "y": y, "edge": edge,
    })

