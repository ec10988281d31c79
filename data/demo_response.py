"""Measured response for the demo: who went to each call and when (issue 15).

Each attended call gets the units a dispatcher would send — the micro station and the fire
station the road model says are nearest (one multi-source Dijkstra per responder layer,
``geo.coverage.multi_source_times`` on ``geo.network.graph_from_tables``) — and the times a
dispatch system records: rolling after a lognormal turnout with a tail of slow ones, arrival
after the model's road time × noise, slower in rush hours, cleared some minutes later.
The first-due unit (first in 出动力量) is the one the model says arrives first. Units are
written by name or by id as dispatchers do, and a few calls name units no register holds.

Also here: responders out of service (暂停执勤), pre-plan fields of key places (storeys,
occupants, hazardous materials) and the vulnerable residents (特殊群体) near homes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from data.demo_names import ids, person_names, phones
from data.demo_params import DemoProfile
from data.demo_points import _dates_before, addresses, along_roads, edge_midpoints
from data.demo_roads import Roads
from data.demo_space import Space
from geo.coverage import multi_source_times
from geo.network import graph_from_tables
from geo.settings import Settings
from layers.vulnerable_person import CATEGORIES as VULNERABLE_CATEGORIES

SECOND = np.timedelta64(1, "s")
NAT = np.datetime64("NaT", "s")
FIRE_KINDS = ("火灾", "燃气泄漏", "抢险救援")  # calls a fire station answers as well as the micro station
RESIDENTIAL = ("住宅小区", "自建出租房", "规模租赁公寓")
# Units a call may name that no register of stations holds (police, a property's own team).
OUTSIDE_UNITS = ("属地派出所", "物业义务消防队")
# Minutes from arrival to cleared (median, lognormal sigma) by kind; false alarms are quick.
_CLEAR_MIN = {"火灾": (45.0, 0.5), "燃气泄漏": (30.0, 0.4), "抢险救援": (40.0, 0.5)}
_CLEAR_DEFAULT = (12.0, 0.5)
_CLEAR_FALSE = (6.0, 0.4)


@dataclass(frozen=True)
class Nearest:
    """Per call, the nearest working responder of one layer by road: its row and travel seconds."""

    index: np.ndarray  # row in the layer's frame, -1 where none reaches
    travel_s: np.ndarray  # modelled road seconds (inf where none reaches)


def suspend_some(fire: pd.DataFrame, micro: pd.DataFrame, profile: DemoProfile,
                 rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``duty_status``: 正常执勤 for every responder but a few out of service (暂停执勤)."""
    fire, micro = fire.copy(), micro.copy()
    fire["duty_status"] = "正常执勤"
    micro["duty_status"] = "正常执勤"
    community = np.flatnonzero((micro["kind"] == "社区").to_numpy() & (micro["status"] == "在用").to_numpy())
    n_micro = min(len(community), max(1, profile.suspended_responders - 1))
    micro.loc[micro.index[rng.choice(community, n_micro, replace=False)], "duty_status"] = "暂停执勤"
    brigades = np.flatnonzero((fire["kind"] == "政府专职消防队").to_numpy() & (fire["status"] == "在役").to_numpy())
    if profile.suspended_responders > 1 and len(brigades) > 1:
        fire.loc[fire.index[rng.choice(brigades)], "duty_status"] = "暂停执勤"
    return fire, micro


def _working(frame: pd.DataFrame, in_service: str) -> np.ndarray:
    return np.flatnonzero((frame["status"] == in_service).to_numpy() & (frame["duty_status"] != "暂停执勤").to_numpy())


def nearest_by_road(space: Space, roads: Roads, road_edges: pd.DataFrame, settings: Settings,
                    responders: dict[str, tuple[pd.DataFrame, np.ndarray]],
                    x: np.ndarray, y: np.ndarray) -> dict[str, Nearest]:
    """The nearest of each layer's working responders to each call (x, y metres), by road.

    One Dijkstra per layer over the model's graph (road speeds × ``urban_slowdown_factor``);
    responders and calls stand at their nearest road node.
    """
    nodes = pd.DataFrame({"node_id": np.arange(len(roads.x), dtype=np.int64), "lon": roads.lon, "lat": roads.lat})
    graph = graph_from_tables(nodes, road_edges, settings)
    lon, lat = space.to_lonlat(x, y)
    _, call_node = graph.tree.query(np.column_stack(graph.project(lon, lat)))
    out: dict[str, Nearest] = {}
    for layer, (frame, rows) in responders.items():
        if not len(rows):
            out[layer] = Nearest(np.full(len(x), -1), np.full(len(x), np.inf))
            continue
        rlon, rlat = space.to_lonlat(frame["x"].to_numpy()[rows], frame["y"].to_numpy()[rows])
        _, src = graph.tree.query(np.column_stack(graph.project(rlon, rlat)))
        eta, which = multi_source_times(graph.seconds, src, np.zeros(len(rows)))
        reach = which[call_node]
        out[layer] = Nearest(np.where(reach >= 0, rows[np.maximum(reach, 0)], -1), eta[call_node])
    return out


def _lognormal(rng: np.random.Generator, median: float | np.ndarray, sigma: float, n: int) -> np.ndarray:
    return np.asarray(median) * rng.lognormal(0.0, sigma, n)


def _unit_labels(frame: pd.DataFrame, rows: np.ndarray, by_id: np.ndarray) -> np.ndarray:
    """How 出动力量 names each unit: its id, else its name (always the id when the name is shared)."""
    names = frame["name"].to_numpy(dtype=object)
    shared = pd.Series(names).duplicated(keep=False).to_numpy()
    safe = np.maximum(rows, 0)
    label = np.where(by_id | shared[safe], frame["id"].to_numpy(dtype=object)[safe], names[safe])
    return np.where(rows >= 0, label, None)


def _join(first: np.ndarray, second: np.ndarray, sep: np.ndarray) -> np.ndarray:
    """``first + sep + second`` where both are present, else whichever is (None when neither)."""
    a, b = pd.Series(first, dtype=object), pd.Series(second, dtype=object)
    both = a.notna() & b.notna()
    out = a.where(a.notna(), b)
    out[both] = a[both] + pd.Series(sep, dtype=object)[both] + b[both]
    return out.to_numpy(dtype=object)


def _units_text(fire: pd.DataFrame, micro: pd.DataFrame, fire_row: np.ndarray, micro_row: np.ndarray,
                fire_first: np.ndarray, profile: DemoProfile, rng: np.random.Generator) -> np.ndarray:
    """出动力量 of each call: the first-due unit first; by name or id; a few outside units."""
    n = len(fire_row)
    f = _unit_labels(fire, fire_row, rng.random(n) < profile.unit_id_share)
    m = _unit_labels(micro, micro_row, rng.random(n) < profile.unit_id_share)
    sep = rng.choice(np.array(["、", "；", "，", "/"], dtype=object), n, p=[0.55, 0.3, 0.1, 0.05])
    text = np.where(fire_first, _join(f, m, sep), _join(m, f, sep))
    outside = (rng.random(n) < profile.unmatched_unit_share) & pd.notna(text)
    extra = np.where(outside, rng.choice(np.array(OUTSIDE_UNITS, dtype=object), n), None)
    return _join(text, extra, sep)


def _clear_minutes(kind: np.ndarray, false: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    median = np.full(len(kind), _CLEAR_DEFAULT[0])
    sigma = np.full(len(kind), _CLEAR_DEFAULT[1])
    for k, (m, s) in _CLEAR_MIN.items():
        median[kind == k], sigma[kind == k] = m, s
    median[false], sigma[false] = _CLEAR_FALSE
    return median * np.exp(sigma * rng.standard_normal(len(kind)))


def dispatch_times(calls: pd.DataFrame, nearest: dict[str, Nearest], fire: pd.DataFrame, micro: pd.DataFrame,
                   settings: Settings, profile: DemoProfile, rng: np.random.Generator,
                   end: datetime) -> pd.DataFrame:
    """Add dispatched_at, arrived_at, cleared_at, units, response_s and status to ``calls``.

    ``calls`` has kind, reported_at, attended (a unit went), false (误报) and open (still
    being handled at ``end``, made so on purpose: a few calls of today keep units busy).
    """
    n = len(calls)
    kind = calls["kind"].to_numpy(dtype=object)
    t = calls["reported_at"].to_numpy().astype("datetime64[s]")
    attended = calls["attended"].to_numpy(dtype=bool)
    false = calls["false"].to_numpy(dtype=bool)
    near_f, near_m = nearest["fire_station"], nearest["micro_station"]
    fire_call = np.isin(kind, FIRE_KINDS) & ~false
    send_f = attended & (near_f.index >= 0) & (fire_call | (rng.random(n) < profile.alarm_station_share))
    send_m = attended & (near_m.index >= 0) & (~fire_call | (rng.random(n) < profile.fire_micro_share))
    send_m |= attended & ~send_f & (near_m.index >= 0)
    eta_f = np.where(send_f, settings.fire_station_turnout_s + near_f.travel_s, np.inf)
    eta_m = np.where(send_m, settings.micro_station_turnout_s + near_m.travel_s, np.inf)
    fire_first = eta_f < eta_m
    went = send_f | send_m
    model_travel = np.where(fire_first, near_f.travel_s, near_m.travel_s)
    model_travel = np.where(went & np.isfinite(model_travel), model_travel, 0.0)
    turnout = _lognormal(rng, profile.turnout_median_s, profile.turnout_sigma, n)
    slow = rng.random(n) < profile.slow_turnout_share
    turnout[slow] *= rng.uniform(2.0, 4.0, slow.sum())
    hour = (t - t.astype("datetime64[D]")) / np.timedelta64(1, "h")
    rush = ((hour >= 7) & (hour < 9)) | ((hour >= 17) & (hour < 19))
    travel = model_travel * _lognormal(rng, profile.travel_bias, profile.travel_noise_sigma, n)
    travel = np.maximum(np.where(rush, travel * profile.rush_hour_factor, travel), profile.min_travel_s)
    rolled = t + np.round(turnout).astype(np.int64) * SECOND
    arrived = rolled + np.round(travel).astype(np.int64) * SECOND
    cleared = arrived + np.round(_clear_minutes(kind, false, rng) * 60).astype(np.int64) * SECOND
    end64 = np.datetime64(end, "s")
    is_open = calls["open"].to_numpy(dtype=bool) & went
    cleared = np.where(is_open, np.maximum(cleared, end64 + 600 * SECOND), cleared)
    units = _units_text(fire, micro, np.where(send_f, near_f.index, -1), np.where(send_m, near_m.index, -1),
                        fire_first, profile, rng)
    return _as_of_end(calls, went, rolled, arrived, cleared, units, false, end64)


def _as_of_end(calls: pd.DataFrame, went: np.ndarray, rolled: np.ndarray, arrived: np.ndarray,
               cleared: np.ndarray, units: np.ndarray, false: np.ndarray, end64: np.datetime64) -> pd.DataFrame:
    """Times not yet reached at ``end`` are empty; the status is the step reached."""
    rolled = np.where(went & (rolled <= end64), rolled, NAT)
    arrived = np.where(~np.isnat(rolled) & (arrived <= end64), arrived, NAT)
    cleared = np.where(~np.isnat(arrived) & (cleared <= end64), cleared, NAT)
    status = np.where(false, "误报", "已处置").astype(object)
    status[went & np.isnat(cleared)] = "处置中"
    status[went & np.isnat(rolled)] = "待处置"
    response = np.where(np.isnat(arrived), np.nan, (arrived - calls["reported_at"].to_numpy().astype("datetime64[s]")) / SECOND)
    out = calls.drop(columns=["attended", "false", "open"]).copy()
    out["dispatched_at"], out["arrived_at"], out["cleared_at"] = rolled, arrived, cleared
    out["units"] = np.where(went, units, None)
    out["response_s"] = response
    out["status"] = status
    return out


# --------------------------------------------------------------------------- key places and residents

# Category → (storeys low, high), (occupants low, high), hazardous materials kept (share, options).
_PRE_PLAN: dict[str, tuple[tuple[int, int], tuple[int, int], float, tuple[str, ...]]] = {
    "住宅小区": ((6, 18), (300, 3000), 0.0, ()),
    "自建出租房": ((2, 5), (8, 60), 0.1, ("液化石油气钢瓶",)),
    "规模租赁公寓": ((4, 12), (80, 600), 0.0, ()),
    "沿街商铺": ((1, 3), (3, 30), 0.15, ("液化石油气钢瓶", "油漆稀料")),
    "九小场所": ((1, 3), (5, 60), 0.15, ("液化石油气钢瓶",)),
    "三合一场所": ((1, 4), (10, 80), 0.3, ("油漆稀料", "液化石油气钢瓶", "锂电池")),
    "厂房仓库": ((1, 4), (20, 400), 0.35, ("油漆稀料", "锂电池", "甲醇", "氧气乙炔气瓶")),
    "建筑工地": ((1, 30), (30, 500), 0.3, ("氧气乙炔气瓶", "柴油")),
    "高层建筑": ((10, 33), (300, 3000), 0.05, ("柴油发电机储油",)),
    "地下空间": ((1, 3), (50, 800), 0.05, ("柴油",)),
}
_PRE_PLAN_DEFAULT = ((1, 6), (20, 500), 0.05, ("液化石油气钢瓶",))


def pre_plan(places: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Key places with storeys, occupants and hazardous materials (预案要素) by category."""
    n = len(places)
    storeys = np.zeros(n, dtype=np.int64)
    occupants = np.zeros(n, dtype=np.int64)
    hazmat = np.full(n, None, dtype=object)
    cat = places["category"].to_numpy(dtype=object)
    for c in pd.unique(cat):  # per category (18), vectorised inside
        sel = np.flatnonzero(cat == c)
        (s0, s1), (o0, o1), share, options = _PRE_PLAN.get(c, _PRE_PLAN_DEFAULT)
        storeys[sel] = rng.integers(s0, s1 + 1, len(sel))
        occupants[sel] = np.round(np.exp(rng.uniform(np.log(o0), np.log(o1), len(sel))))
        if options:
            keep = rng.random(len(sel)) < share
            hazmat[sel[keep]] = rng.choice(np.asarray(options, dtype=object), keep.sum())
    return places.assign(storeys=storeys, occupants=occupants, hazmat=hazmat)


_VULNERABLE_P = (0.34, 0.2, 0.08, 0.15, 0.1, 0.08, 0.05)  # shares of CATEGORIES (独居老人 ... 其他)
_AGE = {"留守儿童": (5, 15), "残疾人": (18, 85), "其他": (30, 90)}  # elderly: 65-98


def vulnerable_people(space: Space, roads: Roads, places: pd.DataFrame, scale: float, profile: DemoProfile,
                      rng: np.random.Generator, end: datetime) -> pd.DataFrame:
    """A few hundred residents on the door-knocking list, near homes (residential key places)
    and along built-up streets, with category, risk level, mobility, age and a last visit."""
    n = max(10, int(round(profile.vulnerable_people * scale)))
    homes = places[places["category"].isin(RESIDENTIAL)]
    at_home = rng.random(n) < (profile.vulnerable_at_home_share if len(homes) else 0.0)
    x, y = np.empty(n), np.empty(n)
    address = np.empty(n, dtype=object)
    k = rng.integers(0, max(1, len(homes)), at_home.sum())
    angle, dist = rng.uniform(0, 2 * np.pi, len(k)), rng.uniform(10, 60, len(k))
    if len(k):
        hx, hy = homes["x"].to_numpy()[k], homes["y"].to_numpy()[k]
        px, py = hx + dist * np.cos(angle), hy + dist * np.sin(angle)
        inside = space.inside(px, py)  # a home on the district's edge: at the home itself
        x[at_home], y[at_home] = np.where(inside, px, hx), np.where(inside, py, hy)
        room = rng.integers(1, 30, len(k)).astype(str).astype(object) + "号楼" + rng.integers(101, 1802, len(k)).astype(str).astype(object) + "室"
        address[at_home] = homes["address"].to_numpy(dtype=object)[k] + room
    street = np.flatnonzero(~at_home)
    mx, my = edge_midpoints(roads)
    x[street], y[street], e = along_roads(space, roads, 0.05 + space.urban(mx, my), len(street), rng, 25.0)
    address[street] = addresses(roads, e, rng)
    category = rng.choice(np.asarray(VULNERABLE_CATEGORIES, dtype=object), n, p=_VULNERABLE_P)
    age = rng.integers(65, 99, n)
    for c, (a0, a1) in _AGE.items():
        sel = category == c
        age[sel] = rng.integers(a0, a1 + 1, sel.sum())
    bedridden = category == "卧床病人"
    mobility = rng.choice(np.array(["自理", "需协助", "不能行动"], dtype=object), n, p=[0.55, 0.35, 0.1])
    mobility[bedridden] = "不能行动"
    risk = np.where(mobility == "不能行动", "高", np.where((mobility == "需协助") | (age >= 85), "中", "低")).astype(object)
    visit = _dates_before(end, np.floor(rng.exponential(35.0, n)))
    return pd.DataFrame({
        "id": ids("TS", n, 6), "name": person_names(rng, n), "category": category, "risk_level": risk,
        "mobility": mobility, "age": age.astype(np.int64), "phone": phones(rng, n), "carer": person_names(rng, n),
        "last_visit": visit, "address": address, "x": x, "y": y,
    })
