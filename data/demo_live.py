"""Realistic live events for the feed simulator (`onemap simulate`) and `onemap demo --live`.

A small model of a district's day as a platform would post it (Chinese field names, as the
platforms send them): IoT devices that beat every few minutes and sometimes raise an alarm
(most are faults and early warnings, few are fire signals), alarms that an operator
acknowledges and closes, hazards found by grid workers that walk the closed loop
发现 → 立案 → 派遣 → 处置 → 核查 → 结案 (a share rectified on the spot), and now and then a call.
Pure: a seeded ``random.Random`` and the points to place things at; no I/O.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from layers.alarm import KINDS as DEVICE_KINDS
from layers.hazard import CATEGORIES, STATUSES

MIX = (("heartbeat", 0.45), ("alarm", 0.2), ("alarm_update", 0.1), ("hazard", 0.1), ("hazard_step", 0.13),
       ("incident", 0.02))
"""Share of each event kind (heartbeats dominate a sensor platform's traffic)."""
KIND_WEIGHTS = (0.45, 0.25, 0.15, 0.1, 0.05)  # smoke detectors are the most numerous devices
LEVEL_WEIGHTS = (("火警", 0.08), ("预警", 0.32), ("故障", 0.6))
ON_SPOT_SHARE = 0.3  # hazards rectified in front of the grid worker (当场整改)


def _time(now: datetime) -> str:
    return now.strftime("%Y-%m-%d %H:%M:%S")


def _feature(props: dict[str, Any], point: tuple[float, float] | None) -> dict[str, Any]:
    geometry = None if point is None else {"type": "Point", "coordinates": [round(point[0], 6), round(point[1], 6)]}
    return {"type": "Feature", "geometry": geometry, "properties": props}


@dataclass
class LiveDistrict:
    """What the simulator has sent so far: devices, open alarms, open hazards with their status."""

    points: list[tuple[float, float]]
    rng: random.Random
    prefix: str = "SIM"
    devices: dict[str, tuple[str, tuple[float, float]]] = field(default_factory=dict)
    alarms: dict[str, str] = field(default_factory=dict)    # open alarm id → status
    hazards: dict[str, str] = field(default_factory=dict)   # open hazard id → status
    busy: set[str] = field(default_factory=set)  # ids with an event in flight (never two at once)
    serial: int = 0

    def _id(self, kind: str) -> str:
        self.serial += 1
        return f"{self.prefix}-{kind}-{self.serial:06d}"

    def _near(self) -> tuple[float, float]:
        lon, lat = self.rng.choice(self.points)
        return lon + self.rng.uniform(-0.002, 0.002), lat + self.rng.uniform(-0.002, 0.002)

    def device_batch(self, n: int, now: datetime) -> dict[str, Any]:
        """A FeatureCollection of ``n`` new devices with their first heartbeat."""
        features = []
        for _ in range(n):
            did = self._id("DEV")
            kind = self.rng.choices(DEVICE_KINDS, KIND_WEIGHTS)[0]
            point = self._near()
            self.devices[did] = (kind, point)
            features.append(_feature({"设备编号": did, "设备类型": kind, "心跳时间": _time(now)}, point))
        return {"type": "FeatureCollection", "features": features}

    def next_event(self, now: datetime) -> tuple[str, dict[str, Any]]:
        """(layer, GeoJSON Feature) of the next event; a kind with nothing to act on falls back to a new record."""
        kind = self.rng.choices([k for k, _ in MIX], [w for _, w in MIX])[0]
        if kind == "heartbeat" and self.devices:
            did = self.rng.choice(list(self.devices))
            return "device", _feature({"id": did, "last_seen_at": _time(now)}, None)
        if kind == "alarm_update" and self._free(self.alarms):
            return "alarm", self._alarm_step(now)
        if kind == "hazard_step" and self._free(self.hazards):
            return "hazard", self._hazard_step(now)
        if kind in ("hazard", "hazard_step"):
            return "hazard", self._new_hazard(now)
        if kind == "incident":
            return "incident", self._new_incident(now)
        return "alarm", self._new_alarm(now)

    def _free(self, ids: dict[str, str]) -> list[str]:
        return [i for i in ids if i not in self.busy]

    def _new_alarm(self, now: datetime) -> dict[str, Any]:
        if not self.devices:
            self.device_batch(1, now)
        did = self.rng.choice(list(self.devices))
        kind, point = self.devices[did]
        aid = self._id("ALM")
        self.alarms[aid] = "未确认"
        level = self.rng.choices([lv for lv, _ in LEVEL_WEIGHTS], [w for _, w in LEVEL_WEIGHTS])[0]
        return _feature({"报警编号": aid, "设备编号": did, "设备类型": kind, "报警级别": level,
                         "报警时间": _time(now), "处理状态": "未确认"}, point)

    def _alarm_step(self, now: datetime) -> dict[str, Any]:
        aid = self.rng.choice(self._free(self.alarms))
        if self.alarms[aid] == "未确认":
            self.alarms[aid] = "已确认"
            return _feature({"id": aid, "status": "已确认", "acknowledged_at": _time(now)}, None)
        del self.alarms[aid]
        return _feature({"id": aid, "status": "已关闭", "closed_at": _time(now)}, None)

    def _new_hazard(self, now: datetime) -> dict[str, Any]:
        hid = self._id("HZ")
        self.hazards[hid] = STATUSES[0]
        return _feature({"隐患编号": hid, "隐患类别": self.rng.choice(CATEGORIES[:-1]),
                         "隐患等级": "重大" if self.rng.random() < 0.1 else "一般", "状态": STATUSES[0],
                         "来源": "网格巡查", "发现时间": _time(now)}, self._near())

    def _hazard_step(self, now: datetime) -> dict[str, Any]:
        """The next step of an open hazard's closed loop (or 结案 on the spot straight from 发现)."""
        hid = self.rng.choice(self._free(self.hazards))
        status = self.hazards[hid]
        if status == STATUSES[0] and self.rng.random() < ON_SPOT_SHARE:
            del self.hazards[hid]
            return _feature({"id": hid, "status": STATUSES[-1], "on_spot": True}, None)
        new = STATUSES[STATUSES.index(status) + 1]
        if new == STATUSES[-1]:
            del self.hazards[hid]
        else:
            self.hazards[hid] = new
        return _feature({"id": hid, "status": new}, None)

    def _new_incident(self, now: datetime) -> dict[str, Any]:
        return _feature({"警情编号": self._id("INC"), "警情类型": self.rng.choice(("火灾", "烟感报警", "电动车充电报警")),
                         "来源": "物联感知", "接警时间": _time(now), "状态": "待处置"}, self._near())
