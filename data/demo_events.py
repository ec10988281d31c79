"""Two years of hazards (隐患) with their closed loop, and incidents (警情), for the demo.

Hazards cluster in old neighbourhoods (so Gi* finds real hotspots), recur at some key
places, follow the seasons (winter peak, e-bike charging) and a rising trend, and grow in a
couple of emerging areas over the last months. Timestamps follow the closed loop
(发现 ≤ 立案 ≤ 派遣 ≤ 处置 ≤ 核查 ≤ 结案); stages after ``end`` have not happened yet, and
the status is the latest stage reached. On-the-spot fixes go 发现 → 核查 → 结案.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from data import demo_response as dr
from data.demo_names import ids
from data.demo_points import along_roads, edge_midpoints
from data.demo_roads import Roads
from data.demo_space import Space
from geo.settings import Settings
from layers.hazard import CATEGORIES, STATUSES

HOUR = np.timedelta64(3600, "s")
DAY = np.timedelta64(86400, "s")

# Share of each hazard category for hazards found at places of a category (default: street finds).
_DEFAULT_MIX = {"电动自行车违规停放充电": 0.22, "堵塞占用生命通道": 0.2, "易燃可燃物堆放": 0.16, "消防设施遮挡": 0.08,
                "消防设施损坏": 0.08, "电气线路私拉乱接": 0.08, "违规使用液化气": 0.05, "违规住人": 0.03,
                "违规动火作业": 0.03, "安全出口锁闭": 0.03, "其他": 0.04}
_PLACE_MIX: dict[str, dict[str, float]] = {
    "住宅小区": {"电动自行车违规停放充电": 0.4, "堵塞占用生命通道": 0.3, "易燃可燃物堆放": 0.15, "消防设施损坏": 0.1, "其他": 0.05},
    "自建出租房": {"电动自行车违规停放充电": 0.35, "电气线路私拉乱接": 0.25, "违规住人": 0.1, "违规使用液化气": 0.15, "易燃可燃物堆放": 0.15},
    "规模租赁公寓": {"电动自行车违规停放充电": 0.4, "电气线路私拉乱接": 0.2, "堵塞占用生命通道": 0.2, "消防设施损坏": 0.2},
    "沿街商铺": {"违规使用液化气": 0.25, "电气线路私拉乱接": 0.2, "易燃可燃物堆放": 0.2, "违规住人": 0.15, "消防设施遮挡": 0.2},
    "九小场所": {"违规住人": 0.2, "违规使用液化气": 0.25, "电气线路私拉乱接": 0.25, "安全出口锁闭": 0.1, "易燃可燃物堆放": 0.2},
    "三合一场所": {"违规住人": 0.45, "易燃可燃物堆放": 0.25, "电气线路私拉乱接": 0.2, "安全出口锁闭": 0.1},
    "厂房仓库": {"易燃可燃物堆放": 0.3, "违规动火作业": 0.2, "消防设施损坏": 0.2, "堵塞占用生命通道": 0.15, "违规住人": 0.15},
    "建筑工地": {"违规动火作业": 0.45, "易燃可燃物堆放": 0.3, "电气线路私拉乱接": 0.15, "违规住人": 0.1},
    "高层建筑": {"消防设施损坏": 0.3, "堵塞占用生命通道": 0.3, "消防设施遮挡": 0.2, "电动自行车违规停放充电": 0.2},
    "地下空间": {"安全出口锁闭": 0.3, "易燃可燃物堆放": 0.3, "消防设施损坏": 0.2, "电气线路私拉乱接": 0.2},
}
# Relative chance that a hazard of this category is major (重大).
_MAJOR_FACTOR = {"违规住人": 4.0, "安全出口锁闭": 3.0, "违规使用液化气": 2.0, "违规动火作业": 2.0, "易燃可燃物堆放": 1.2,
                 "电气线路私拉乱接": 1.0, "消防设施损坏": 1.0}
# Categories a patroller can usually fix on the spot (move the bike, clear the passage).
_ON_SPOT = {"电动自行车违规停放充电", "堵塞占用生命通道", "易燃可燃物堆放", "消防设施遮挡", "安全出口锁闭"}
_IOT = {"电动自行车违规停放充电", "电气线路私拉乱接"}
_DESCRIPTION = {
    "电动自行车违规停放充电": "楼道内电动自行车停放充电", "堵塞占用生命通道": "消防车通道被占用堵塞",
    "违规住人": "生产经营场所违规住人", "易燃可燃物堆放": "易燃可燃杂物堆放", "违规使用液化气": "违规使用瓶装液化气",
    "消防设施损坏": "灭火器失效、消火栓损坏", "消防设施遮挡": "消防设施被遮挡", "违规动火作业": "无证动火作业",
    "电气线路私拉乱接": "电气线路私拉乱接", "安全出口锁闭": "安全出口上锁", "其他": "其他火灾隐患",
}
# Month factors (Jan..Dec): winter and the Spring Festival are the peak (heating, charging, fireworks).
_MONTH = np.array([1.3, 1.25, 1.05, 0.95, 0.9, 0.85, 0.9, 0.9, 0.95, 1.0, 1.1, 1.25])
_WEEKDAY = np.array([1.15, 1.15, 1.1, 1.1, 1.05, 0.75, 0.7])  # patrols are fewer at weekends


def _pick_categories(rng: np.random.Generator, mix: dict[str, float], n: int) -> np.ndarray:
    cats = np.array(list(mix), dtype=object)
    w = np.array(list(mix.values()))
    return rng.choice(cats, n, p=w / w.sum())


def _day_weights(end: datetime, days: int, month: np.ndarray, weekday: np.ndarray, trend: float) -> np.ndarray:
    """Relative weight of each day ``0..days-1`` before ``end`` (season × weekday × trend)."""
    d = np.arange(days)
    dates = np.datetime64(end.date(), "D") - d.astype("timedelta64[D]")
    months = dates.astype("datetime64[M]").astype(np.int64) % 12
    dow = (dates.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    return month[months] * weekday[dow] * (1.0 + trend * (-d / 365.0))


def _times(rng: np.random.Generator, end: datetime, day_w: np.ndarray, n: int, day_hours: tuple[float, float],
           day_share: float) -> np.ndarray:
    """``n`` timestamps on days drawn by ``day_w`` (0 = the end's day) at plausible hours, all ≤ end."""
    d = rng.choice(len(day_w), n, p=day_w / day_w.sum())
    hour = np.where(rng.random(n) < day_share, rng.uniform(*day_hours, n), rng.uniform(0, 24, n))
    midnight = np.datetime64(end.date(), "s")
    t = midnight - d.astype("timedelta64[D]").astype("timedelta64[s]") + (hour * 3600).astype("timedelta64[s]")
    late = t > np.datetime64(end, "s")
    t[late] = t[late] - DAY
    return t


def _nearest_town(space: Space, x: np.ndarray, y: np.ndarray, towns: np.ndarray) -> np.ndarray:
    """Index (into the area's towns) of the nearest of ``towns`` to each point."""
    c = space.town_xy[towns]
    d = (x[:, None] - c[None, :, 0]) ** 2 + (y[:, None] - c[None, :, 1]) ** 2
    return towns[d.argmin(axis=1)]


def hazards(space: Space, roads: Roads, places: pd.DataFrame, settings: Settings, scale: float,
            rng: np.random.Generator, end: datetime) -> pd.DataFrame:
    """About 50,000 × scale hazards over the last ``hazard_years`` up to ``end``."""
    p = space.profile
    n = max(1, int(round(p.hazards * scale)))
    days = int(round(p.hazard_years * 365))
    mx, my = edge_midpoints(roads)
    urban = np.clip(space.urban(mx, my) / p.built_up_threshold, 0, 1)
    old_e = space.old(mx, my)

    # Which component each hazard comes from.
    comp = rng.choice(4, n, p=[p.place_linked_share, p.old_centre_hazard_share,
                               1 - p.place_linked_share - p.old_centre_hazard_share - p.emerging_hazard_share,
                               p.emerging_hazard_share])
    x = np.empty(n)
    y = np.empty(n)
    edge = np.full(n, -1, dtype=np.int64)
    place_id = np.full(n, None, dtype=object)
    place_cat = np.full(n, None, dtype=object)
    address = np.full(n, None, dtype=object)
    place_name = np.full(n, "", dtype=object)

    # 0: at key places; heavy-tailed weights make recurring places; old centres weigh more.
    sel = np.flatnonzero(comp == 0)
    px, py = places["x"].to_numpy(), places["y"].to_numpy()
    pw = rng.lognormal(0.0, 1.0, len(places))
    pw = np.minimum(pw, np.quantile(pw, 0.99)) * (1.0 + 3.0 * space.old(px, py))
    pw *= np.where(places["inspection_class"].to_numpy() == 3, 0.6, 1.0)
    k = rng.choice(len(places), len(sel), p=pw / pw.sum())
    x[sel] = px[k] + rng.normal(0, 6, len(sel))
    y[sel] = py[k] + rng.normal(0, 6, len(sel))
    place_id[sel] = places["id"].to_numpy()[k]
    place_cat[sel] = places["category"].to_numpy()[k]
    address[sel] = places["address"].to_numpy()[k]
    place_name[sel] = places["name"].to_numpy()[k]
    # 1: old neighbourhoods; 2: everywhere people are.
    for c, w in ((1, old_e + 0.002), (2, 0.2 + urban)):
        sel = np.flatnonzero(comp == c)
        if len(sel):
            x[sel], y[sel], edge[sel] = along_roads(space, roads, w, len(sel), rng, 25.0)
    # 3: emerging areas, each with hazards in proportion to how long it has been emerging.
    em_towns = np.flatnonzero(space.emerging)
    ramp_days = np.array([p.new_hotspot_days if r == 0 else int(p.emerging_months * 30) for r in range(len(em_towns))])
    em_town = np.full(n, -1, dtype=np.int64)
    em = np.flatnonzero(comp == 3)
    if len(em_towns):
        em_town[em] = rng.choice(em_towns, len(em), p=ramp_days / ramp_days.sum())
    else:
        em_town[em] = -2  # no emerging town in this area: plain street finds
    for t in np.unique(em_town[em]):  # a couple of towns
        sel = em[em_town[em] == t]
        if t >= 0:
            d2 = (mx - space.town_xy[t, 0]) ** 2 + (my - space.town_xy[t, 1]) ** 2
            w = np.exp(-d2 / p.emerging_radius_m**2) + 1e-6
        else:
            w = 0.2 + urban
        x[sel], y[sel], edge[sel] = along_roads(space, roads, w, len(sel), rng, 25.0)
    on_road = edge >= 0
    no = rng.integers(1, 999, n)
    address[on_road] = roads.name[edge[on_road]] + no[on_road].astype(np.str_).astype(object) + "号"

    # Time: season × weekday × trend; emerging ones ramp up over the last months.
    day_w = _day_weights(end, days, _MONTH, _WEEKDAY, p.yearly_trend)
    disc = _times(rng, end, day_w, n, (8.5, 18.0), 0.85)
    # Emerging areas: the first appears over the last weeks (a new hotspot), the others ramp up
    # over the last months. The intensifying old centre grows over the whole period.
    week = _day_weights(end, days, np.ones(12), _WEEKDAY, 0.0)
    for rank, t in enumerate(em_towns):  # a couple of towns
        sel = np.flatnonzero(em_town == t)
        ramp = np.clip(1.0 - np.arange(days) / ramp_days[rank], 0.0, None) * week
        disc[sel] = _times(rng, end, ramp + 1e-9, len(sel), (8.5, 18.0), 0.85)
    grow_towns = np.flatnonzero([t.intensifying for t in space.area.towns])
    old_i = np.flatnonzero(comp == 1)
    if len(old_i) and len(grow_towns):
        near = _nearest_town(space, x[old_i], y[old_i], np.flatnonzero(space.old_centre))
        sel = old_i[np.isin(near, grow_towns)]
        growth = _day_weights(end, days, _MONTH, _WEEKDAY, 0.0) * (1.0 - np.arange(days) / days) ** 2
        disc[sel] = _times(rng, end, growth + 1e-9, len(sel), (8.5, 18.0), 0.85)

    # Category by place category.
    cat = np.empty(n, dtype=object)
    linked = place_cat != None  # noqa: E711 (object array comparison)
    cat[~linked] = _pick_categories(rng, _DEFAULT_MIX, int((~linked).sum()))
    for pc in pd.unique(place_cat[linked]):  # per place category
        s = np.flatnonzero(place_cat == pc)
        cat[s] = _pick_categories(rng, _PLACE_MIX.get(pc, _DEFAULT_MIX), len(s))
    assert set(pd.unique(cat)) <= set(CATEGORIES)

    # Severity, source, on-the-spot fixes.
    factor = np.array([_MAJOR_FACTOR.get(c, 0.4) for c in CATEGORIES])[pd.Categorical(cat, CATEGORIES).codes]
    major = rng.random(n) < p.major_share * factor / factor.mean()
    severity = np.where(major, "重大", "一般").astype(object)
    source = rng.choice(np.array(["网格巡查", "委员会巡查", "城运巡查", "12345热线", "物联感知", "其他"], dtype=object), n,
                        p=[0.52, 0.1, 0.14, 0.12, 0.08, 0.04])
    iot_ok = np.isin(cat, list(_IOT))
    source[(source == "物联感知") & ~iot_ok] = "网格巡查"
    spot_cat = np.isin(cat, list(_ON_SPOT))
    on_spot = ~major & (source != "12345热线") & (rng.random(n) < np.where(spot_cat, p.on_spot_share * 1.6, 0.08))

    # The closed loop: durations between stages.
    stuck = rng.random(n) < p.stuck_share
    filed = disc + (rng.exponential(6.0, n) * 3600 + 600).astype("timedelta64[s]")
    disp = filed + (rng.exponential(8.0, n) * 3600 + 600).astype("timedelta64[s]")
    fix_days = np.where(major, rng.lognormal(np.log(20), 0.7, n), rng.lognormal(np.log(3), 0.9, n))
    fix_days = np.where(stuck, fix_days * 10, fix_days)
    handled = disp + (fix_days * 86400).astype("timedelta64[s]")
    verified = handled + (rng.uniform(0.2, 3.0, n) * 86400).astype("timedelta64[s]")
    closed = verified + (rng.uniform(0.02, 1.0, n) * 86400).astype("timedelta64[s]")
    sv = disc + (rng.uniform(10, 60, n) * 60).astype("timedelta64[s]")
    verified = np.where(on_spot, sv, verified)
    closed = np.where(on_spot, sv + (rng.uniform(1, 30, n) * 60).astype("timedelta64[s]"), closed)
    nat = np.datetime64("NaT", "s")
    filed[on_spot] = nat
    disp[on_spot] = nat
    handled[on_spot] = nat
    end64 = np.datetime64(end, "s")
    stages = [disc, filed, disp, handled, verified, closed]
    reached = np.zeros(n, dtype=np.int64)
    for i, t in enumerate(stages):  # six stages
        happened = ~np.isnat(t) & (t <= end64)
        t[~happened] = nat
        reached[happened] = i
    status = np.asarray(STATUSES, dtype=object)[reached]

    deadline_days = np.array([settings.hazard_deadline_days[s] for s in ("一般", "重大")])[major.astype(int)]
    deadline = disc.astype("datetime64[D]") + np.where(on_spot, 0, deadline_days).astype("timedelta64[D]")

    # Supervision: district level for long major cases, town level for other major ones and
    # for stuck cases at recurring places.
    pid = pd.Series(place_id)
    repeat = pid.map(pid.value_counts()).fillna(0).to_numpy() >= 3
    sup = np.full(n, "无", dtype=object)
    sup[major & (rng.random(n) < 0.5)] = "街镇挂牌"
    sup[stuck & repeat & ~on_spot & (rng.random(n) < 0.6)] = "街镇挂牌"
    sup[major & (stuck | (fix_days > 40))] = "区级挂牌"
    handled_by = np.where(rng.random(n) < 0.74, "网格", np.where(rng.random(n) < 0.85, "社区", "街镇")).astype(object)
    handled_by[major] = np.where(rng.random(int(major.sum())) < 0.7, "街镇", "区")
    handled_by[sup == "街镇挂牌"] = "街镇"
    handled_by[sup == "区级挂牌"] = "区"
    handled_by[on_spot] = "网格"

    desc_map = np.array([_DESCRIPTION[c] for c in CATEGORIES], dtype=object)
    description = place_name + desc_map[pd.Categorical(cat, CATEGORIES).codes]
    order = np.argsort(disc, kind="stable")
    df = pd.DataFrame({
        "category": cat, "severity": severity, "status": status, "source": source, "supervision": sup,
        "handled_by": handled_by, "on_spot": on_spot,
        "discovered_at": disc, "filed_at": filed, "dispatched_at": disp, "handled_at": handled,
        "verified_at": verified, "closed_at": closed, "deadline": deadline,
        "place_id": place_id, "description": description, "address": address, "x": x, "y": y,
    }).iloc[order].reset_index(drop=True)
    df.insert(0, "id", ids("YH", n, 8))
    return df


def incidents(space: Space, roads: Roads, road_edges: pd.DataFrame, places: pd.DataFrame, fire_st: pd.DataFrame,
              micro: pd.DataFrame, settings: Settings, scale: float, rng: np.random.Generator,
              end: datetime) -> pd.DataFrame:
    """Fire calls and IoT alarms over the hazard period with the times and units a dispatch
    system records (``data.demo_response``); some today, a few still open at ``end``."""
    p = space.profile
    n_hist = max(1, int(round(p.incidents * scale)))
    n_today = max(1, int(round(p.incidents_today * max(scale, 0.5))))
    n = n_hist + n_today
    kinds = np.array(["火灾", "烟感报警", "电动车充电报警", "电气火灾监测", "燃气泄漏", "其他"], dtype=object)
    kind = rng.choice(kinds, n, p=[0.2, 0.35, 0.2, 0.15, 0.05, 0.05])
    src = np.where(np.isin(kind, ["烟感报警", "电动车充电报警", "电气火灾监测"]), "物联感知",
                   np.where(rng.random(n) < 0.85, "119接警", "12345热线")).astype(object)
    src[kind == "其他"] = "其他"
    # Where: IoT alarms and half the fires at key places, the rest along roads.
    at_place = (src == "物联感知") | (rng.random(n) < 0.5)
    x = np.empty(n)
    y = np.empty(n)
    place_id = np.full(n, None, dtype=object)
    address = np.full(n, None, dtype=object)
    sel = np.flatnonzero(at_place)
    px, py = places["x"].to_numpy(), places["y"].to_numpy()
    pw = 1.0 + 3.0 * space.old(px, py) + (places["inspection_class"].to_numpy() == 1)
    k = rng.choice(len(places), len(sel), p=pw / pw.sum())
    x[sel], y[sel] = px[k], py[k]
    place_id[sel] = places["id"].to_numpy()[k]
    address[sel] = places["address"].to_numpy()[k]
    sel = np.flatnonzero(~at_place)
    mx, my = edge_midpoints(roads)
    x[sel], y[sel], e = along_roads(space, roads, 0.1 + space.urban(mx, my) + 2 * space.old(mx, my), len(sel), rng, 30.0)
    address[sel] = roads.name[e] + rng.integers(1, 999, len(sel)).astype(np.str_).astype(object) + "号"

    # When: winter peak, evenings; the last n_today happen today.
    days = int(round(p.hazard_years * 365))
    day_w = _day_weights(end, days, _MONTH, np.ones(7), 0.0)
    day_w[0] = 0.0
    t = _times(rng, end, day_w, n, (10.0, 22.0), 0.7)
    midnight = np.datetime64(end.date(), "s")
    span = max(1, int((np.datetime64(end, "s") - midnight) / np.timedelta64(1, "s")))
    t[n_hist:] = midnight + rng.integers(0, span, n_today).astype("timedelta64[s]")

    # Which calls a unit attended; the last few of today are still being handled at ``end``.
    false = (src == "物联感知") & (rng.random(n) < p.false_alarm_share)
    false |= (kind == "火灾") & (rng.random(n) < 0.03)
    attended = ~false | (rng.random(n) < 0.3)
    is_open = np.zeros(n, dtype=bool)
    n_open = min(n_today, p.open_today)
    if n_open:
        last = np.arange(n - n_open, n)
        t[last] = np.datetime64(end, "s") - rng.integers(180, 2400, n_open).astype("timedelta64[s]")
        is_open[last], false[last], attended[last] = True, False, True
    calls = pd.DataFrame({"kind": kind, "source": src, "reported_at": t, "attended": attended, "false": false,
                          "open": is_open, "place_id": place_id, "address": address, "x": x, "y": y})
    nearest = dr.nearest_by_road(space, roads, road_edges, settings, {
        "fire_station": (fire_st, dr._working(fire_st, "在役")),
        "micro_station": (micro, dr._working(micro, "在用")),
    }, x, y)
    df = dr.dispatch_times(calls, nearest, fire_st, micro, settings, p, rng, end)
    df = df.iloc[np.argsort(t, kind="stable")].reset_index(drop=True)
    df.insert(0, "id", ids("JQ", n, 7))
    return df
