"""The wall's live strip: journal events (alarms, incidents, hazards) on the wall within 2 s.

The wall's snapshot refresh (``wall_refresh_s``) shows what the compactor has folded; this
strip shows what the feed API acknowledged a moment ago. A 1 s check of ``journal.head``
(``wall_live_poll_s``) answers nothing while the head stays put; when it moves, the new
events (``journal.changes_since``) become ticker lines and map markers, the newest flashing.
The items travel through the browser (a ``dcc.Store``), so they are checked on the way back:
a crafted payload is dropped, never rendered as markup or turned into a 500.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import dash_leaflet as dl
import pandas as pd
from dash import html

from geo import devices, journal, live, mapdata
from geo.settings import Settings

LIVE_LAYERS = ("alarm", "incident", "hazard")
KEEP = 30  # items the strip keeps (the newest first)
FIELDS = {"alarm": ("kind", "level", "alarm_at"), "incident": ("kind", "source", "reported_at"),
          "hazard": ("category", "severity", "discovered_at")}
BADGE = {"zh": {"alarm": "物联", "incident": "警情", "hazard": "隐患"},
         "en": {"alarm": "IoT", "incident": "Call", "hazard": "Hazard"}}
KIND_SHORT = {"zh": {"烟感": "烟感", "电动自行车充电桩": "充电桩", "电气火灾监控": "电气火灾", "火灾自动报警联网": "火灾报警",
                     "消防水压": "水压"},
              "en": {"烟感": "Smoke", "电动自行车充电桩": "E-bike charging", "电气火灾监控": "Electrical",
                     "火灾自动报警联网": "Fire alarm", "消防水压": "Water pressure"}}
TEXT = {"zh": {"devices": "设备在线率", "live": "实时"}, "en": {"devices": "Devices online", "live": "Live"}}


def _text(value: Any, limit: int = 60) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)[:limit]


def _item(event: journal.Event) -> dict[str, Any]:
    """A ticker/map item of one journal event (text fields only, coordinates as floats)."""
    row = event.row
    what, extra, when = FIELDS[event.layer]
    return {"seq": int(event.seq), "layer": event.layer, "id": _text(event.id), "what": _text(row.get(what)),
            "extra": _text(row.get(extra)), "at": _text(row.get(when), 19),
            "where": f"{_text(row.get('town'))} {_text(row.get('community'))}".strip(),
            "town": _text(row.get("town")), "lon": row.get("lon"), "lat": row.get("lat")}


def _in_scope(row: dict[str, Any], towns: Sequence[str] | None) -> bool:
    return towns is None or row.get("town") in towns


def new_items(db: Any, after: int, towns: Sequence[str] | None) -> tuple[list[dict[str, Any]], int]:
    """(new items newest first, the seq read up to) of the events after ``after`` in scope.

    New records only (``op == 'new'``): a status change is not a new alarm on the wall."""
    events = journal.changes_since(db, after, layers=LIVE_LAYERS, limit=500)
    upto = events[-1].seq if events else after
    items = [_item(e) for e in events if e.op == "new" and _in_scope(e.row, towns)]
    return items[::-1], upto


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def checked(items: Any) -> list[dict[str, Any]]:
    """The items a browser sent back, keeping only well-formed ones (a crafted Store is dropped)."""
    out: list[dict[str, Any]] = []
    for it in items if isinstance(items, list) else []:
        if not isinstance(it, dict) or it.get("layer") not in LIVE_LAYERS or not isinstance(it.get("seq"), int):
            continue
        out.append({"seq": it["seq"], "layer": it["layer"],
                    **{k: _text(it.get(k)) for k in ("id", "what", "extra", "at", "where", "town")},
                    "lon": _number(it.get("lon")), "lat": _number(it.get("lat"))})
    return out[:KEEP]


def ticker(items: list[dict[str, Any]], newest_seq: int | None, lang: str) -> list[html.Li]:
    """Ticker lines (text only); the items of the last check (seq > ``newest_seq``) flash."""
    lines = []
    for it in items:
        flash = newest_seq is not None and it["seq"] > newest_seq
        what = " ".join(x for x in (it["what"], it["extra"]) if x)
        lines.append(html.Li([html.Span(it["at"][5:16], className="om-tk-time"),
                              html.Span(BADGE[lang][it["layer"]], className=f"om-tk-badge om-tk-live-{it['layer']}"),
                              html.Span(what, className="om-tk-what"), html.Span(it["where"], className="om-tk-where")],
                             className="om-live-item" + (" om-live-flash" if flash else ""),
                             **{"data-id": it["id"], "data-layer": it["layer"]}))
    return lines


def markers(items: list[dict[str, Any]], settings: Settings) -> list[Any]:
    """Map markers (DOM div icons, above the canvas layers) of the items with coordinates; the newest pulses."""
    placed = [it for it in items if it["lon"] is not None and it["lat"] is not None]
    if not placed:
        return []
    lon, lat = mapdata.to_display([it["lon"] for it in placed], [it["lat"] for it in placed], settings.tiles)
    return [dl.DivMarker(position=[float(b), float(a)], children=[dl.Tooltip(f"{it['what']} {it['where']}")],
                         iconOptions={"className": f"om-live-marker om-live-{it['layer']}"
                                                   + (" om-live-newest" if i == 0 else ""),
                                      "iconSize": [22, 22] if i == 0 else [14, 14], "html": ""})
            for i, (it, a, b) in enumerate(zip(placed, lon, lat, strict=True))]


def device_line(con: Any, db: Any, now: datetime, settings: Settings, towns: Sequence[str] | None, lang: str) -> str:
    """The online-rate tile: ``烟感 95% · 充电桩 88% …`` for the kinds that have devices, else a dash."""
    upto, _ = live.folded_seq(con)
    rates = devices.online_rate(con, journal.current_rows(db, "device", after=upto), now,
                                settings.device_offline_after_s, towns)
    parts = [f"{KIND_SHORT[lang].get(r.kind, r.kind)} {100 * r.rate:.0f}%"
             for r in rates.itertuples() if r.devices and not pd.isna(r.rate)]
    return " · ".join(parts) or "–"
