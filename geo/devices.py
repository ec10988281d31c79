"""IoT device online rate by kind (物联设备在线率): who has sent a heartbeat lately.

A device counts **online** when its last heartbeat (``device.last_seen_at``) is at most
``Settings.device_offline_after_s`` seconds before ``now``; a device silent longer, or
never heard from, counts offline. Heartbeats arrive as partial updates of the ``device``
layer through the feed API and sit in the live journal until the next fold, so the rate
reads the snapshot's ``device`` table and overlays the journal's newest row per device
(``journal.current_rows``): a heartbeat counts the moment it is acknowledged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pandas as pd

from layers.alarm import KINDS

COLUMNS = ["kind", "devices", "online", "offline", "rate"]


def _snapshot_devices(con: duckdb.DuckDBPyConnection, towns: Sequence[str] | None) -> pd.DataFrame:
    """id, kind, last_seen_at, town of the snapshot's devices (empty when the table is missing)."""
    try:
        frame = con.execute("SELECT id, kind, last_seen_at, town FROM device").df()
    except duckdb.CatalogException:
        frame = pd.DataFrame(columns=["id", "kind", "last_seen_at", "town"])
    return frame if towns is None else frame[frame["town"].isin(list(towns))]


def _overlay(frame: pd.DataFrame, journal_rows: Mapping[str, Mapping[str, Any]],
             towns: Sequence[str] | None) -> pd.DataFrame:
    """The snapshot's devices with the journal's newer rows in place of theirs (new devices added)."""
    if not journal_rows:
        return frame
    fresh = pd.DataFrame([{"id": str(i), "kind": r.get("kind"), "last_seen_at": r.get("last_seen_at"),
                           "town": r.get("town")} for i, r in journal_rows.items()])
    if towns is not None:
        fresh = fresh[fresh["town"].isin(list(towns))]
    kept = frame[~frame["id"].astype(str).isin(set(fresh["id"]))]
    return pd.concat([kept, fresh], ignore_index=True) if len(kept) else fresh


def online_rate(con: duckdb.DuckDBPyConnection, journal_rows: Mapping[str, Mapping[str, Any]], now: datetime,
                offline_after_s: float, towns: Sequence[str] | None = None) -> pd.DataFrame:
    """Devices, online, offline and online rate (0-1, NaN without devices) per kind.

    ``journal_rows`` are the journal's unfolded ``device`` rows by id (``journal.current_rows``);
    ``towns`` limits the count to a town scope. Every kind of ``layers.alarm.KINDS`` has a row,
    in that order (kinds outside it follow)."""
    frame = _overlay(_snapshot_devices(con, towns), journal_rows, towns)
    seen = pd.to_datetime(frame["last_seen_at"], errors="coerce")
    cutoff = pd.Timestamp(now - timedelta(seconds=float(offline_after_s)))
    online = seen.notna() & (seen >= cutoff)
    counts = (pd.DataFrame({"kind": frame["kind"].astype(str), "online": online.astype(int)})
              .groupby("kind")["online"].agg(["size", "sum"]))
    kinds = list(KINDS) + sorted(k for k in counts.index if k not in KINDS)
    rows = []
    for kind in kinds:
        n, up = (int(counts.loc[kind, "size"]), int(counts.loc[kind, "sum"])) if kind in counts.index else (0, 0)
        rows.append({"kind": kind, "devices": n, "online": up, "offline": n - up,
                     "rate": up / n if n else float("nan")})
    return pd.DataFrame(rows, columns=COLUMNS)
