"""Feed records into the journal (``geo.journal``), judged exactly as file rows are; fold them.

``submit`` takes a GeoJSON Feature or FeatureCollection for a point layer and a source name
(the feed token's): each Feature's properties are mapped to fields by the layer's names and
import aliases, its Point (in the ``crs`` member's CRS, WGS-84 by default) gives the place,
and the rows go through ``geo.ingest.prepare`` like the rows of a file. A Feature whose ``id``
is stored already is a **partial update**: its properties replace those fields of the stored
row (newest journal row, else the snapshot's), the merged row is validated whole, and a
hazard's status change must follow ``geo.workflow``. A record whose merged row equals the
stored one changes nothing (**idempotent**: a retried POST stores nothing twice). Accepted
records are appended as one journal batch with their field changes as history; rejected
ones are kept with the source's name (``feed:<source>``) as a file ingest keeps them.

``fold`` moves journal events into a new snapshot (``geo.store.writer``); ``Compactor`` runs
it in a thread of the server every ``live_fold_s`` seconds while events wait.
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from geo import assign, ingest, journal, live_index, store, workflow
from geo.errors import OnemapError
from geo.readers import RawTable
from geo.settings import Settings
from layers.base import LayerSpec
from layers.registry import LAYERS

WGS84 = "EPSG:4326"
REOPEN_KEYS = ("reopen", "重新打开", "重启")
_SUBMIT_LOCK = threading.Lock()  # one batch at a time per process: a base row is read, then replaced


class LiveInputError(OnemapError):
    """A body that is not a Feature or FeatureCollection of this layer (answered 400)."""


@dataclass
class Outcome:
    """What ``submit`` did: the API's answer (``accepted``, ``rejected``, ``ids``) and more."""

    accepted: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    unchanged: int = 0
    seqs: list[int] = field(default_factory=list)

    def answer(self) -> dict[str, Any]:
        """The JSON body of the answer."""
        return {"accepted": self.accepted, "rejected": self.rejected, "ids": self.ids,
                "unchanged": self.unchanged}


@dataclass
class _Record:
    index: int
    props: dict[str, Any]          # canonical field → value as sent
    point: tuple[Any, Any] | None  # (x, y) in the batch CRS
    reopen: bool = False


def feed_layers() -> list[str]:
    """Layers the feed takes: the point layers."""
    return sorted(n for n, s in LAYERS.items() if s.geometry == "point")


def spec_of(layer: str) -> LayerSpec:
    """The spec of a feed layer; LiveInputError for another name."""
    spec = LAYERS.get(layer)
    if spec is None or spec.geometry != "point":
        raise LiveInputError(f"layer {layer[:40]!r} does not take feed events; one of {feed_layers()}")
    return spec


# --------------------------------------------------------------------------- the body


def parse_body(body: Any) -> tuple[list[dict[str, Any]], str | None]:
    """(Features, CRS) of a GeoJSON body; LiveInputError when its shape is wrong."""
    if not isinstance(body, dict):
        raise LiveInputError("the body must be a GeoJSON Feature or FeatureCollection object")
    kind = body.get("type")
    if kind == "Feature":
        features = [body]
    elif kind == "FeatureCollection":
        features = body.get("features")
        if not isinstance(features, list):
            raise LiveInputError('a FeatureCollection needs a "features" list')
    else:
        raise LiveInputError(f'"type" must be "Feature" or "FeatureCollection", not {str(kind)[:40]!r}')
    if not features:
        raise LiveInputError("no features in the body")
    return features, _crs_member(body.get("crs"))


def _crs_member(value: Any) -> str | None:
    """The ``crs`` member: a string (``EPSG:4490``, ``cgcs2000`` ...) or the old GeoJSON object."""
    if value is None:
        return None
    if isinstance(value, dict):
        value = (value.get("properties") or {}).get("name") if isinstance(value.get("properties"), dict) else None
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"EPSG:{value}"
    if not isinstance(value, str) or not value.strip() or len(value) > 100:
        raise LiveInputError('"crs" must be a CRS name such as "EPSG:4490" or "cgcs2000"')
    return value.strip()


def _records(spec: LayerSpec, features: list[Any]) -> tuple[list[_Record], list[dict[str, Any]]]:
    """Each Feature's canonical properties and point; the Features refused for their shape."""
    out, refused = [], []
    for i, feat in enumerate(features):
        if not isinstance(feat, dict) or feat.get("type") != "Feature":
            refused.append(_refusal(i, None, "not_a_feature", "each item must be a GeoJSON Feature", feat))
            continue
        props = feat.get("properties") or {}
        if not isinstance(props, dict):
            refused.append(_refusal(i, "properties", "not_an_object", "properties must be an object", props))
            continue
        point, why = _point(feat.get("geometry"))
        if why:
            refused.append(_refusal(i, "geometry", "bad_geometry", why, feat.get("geometry")))
            continue
        props = dict(props)
        reopen = any(props.pop(k, None) is True for k in REOPEN_KEYS)
        headers = [str(k) for k in props]
        mapping, lon_col, lat_col, _, _ = ingest.map_headers(spec, headers)
        canonical = {f: props[h] for h, f in mapping.items()}
        if point is None and lon_col and lat_col:
            point = (props[lon_col], props[lat_col])
        if "id" in canonical and canonical["id"] is not None:
            canonical["id"] = str(canonical["id"])
        out.append(_Record(i, canonical, point, reopen))
    return out, refused


def _point(geometry: Any) -> tuple[tuple[Any, Any] | None, str | None]:
    if geometry is None:
        return None, None
    if not isinstance(geometry, dict) or geometry.get("type") != "Point":
        return None, "the geometry must be a GeoJSON Point (or null for a partial update)"
    xy = geometry.get("coordinates")
    if not isinstance(xy, list) or len(xy) < 2:
        return None, "a Point needs [x, y] coordinates"
    return (xy[0], xy[1]), None


def _refusal(index: int, fld: str | None, reason: str, detail: str, value: Any) -> dict[str, Any]:
    return {"index": index, "field": fld, "reason": reason, "detail": detail, "value": _short(value)}


def _short(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text[:200]


# --------------------------------------------------------------------------- stored rows


def folded_seq(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """(last journal event, last journal rejection) folded into the snapshot ``con`` reads."""
    try:
        row = con.execute(f"SELECT max(seq), max(rejected_seq) FROM {journal.FOLDED_TABLE}").fetchone()
    except duckdb.CatalogException:
        return 0, 0
    return int(row[0] or 0), int(row[1] or 0)


def stored_rows(db: Path, spec: LayerSpec, ids: list[str], settings: Settings | None = None) -> dict[str, dict[str, Any]]:
    """The current rows of ``ids``: the newest unfolded journal row, else the snapshot's.

    Found through the layer's hash index (``geo.live_index``: a few point reads) when one is
    ready, else by a scan of the newest snapshot."""
    if not ids:
        return {}
    names = [*spec.field_names, "lon", "lat"]
    keep_s = (settings or Settings()).live_keep_s
    index = live_index.usable(db, spec.name, keep_s / 2)
    if index is not None:
        after = index.folded
        rows = live_index.lookup(index, spec.name, names, ids)
    else:
        con = store.connect(db)
        try:
            after, _ = folded_seq(con)
            marks = ", ".join("?" for _ in ids)
            rows = con.execute(f"SELECT {', '.join(chr(34) + n + chr(34) for n in names)} FROM {spec.name} "
                               f"WHERE id IN ({marks})", ids).fetchall()
        finally:
            con.close()
    found = {r[0]: {n: plain(v) for n, v in zip(names, r, strict=True)} for r in rows}
    found.update(journal.current_rows(db, spec.name, ids, after=after))
    return found


def plain(value: Any) -> Any:
    """A value as the journal keeps it: times as ISO text, NaN as None, numpy scalars as Python."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        return value.replace(microsecond=0).isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _as_text(value: Any) -> str | None:
    """A value as a file cell would hold it (what ``prepare`` reads)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


# --------------------------------------------------------------------------- validation


def _validate(spec: LayerSpec, records: list[tuple[_Record, dict[str, Any], tuple[Any, Any] | None]],
              crs: str | None, settings: Settings, file: str) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Merged records through ``geo.ingest.prepare``: (accepted rows by index, rejected rows)."""
    if not records:
        return [], pd.DataFrame()
    names = [*spec.field_names, "lon", "lat"]
    frame = pd.DataFrame(
        [{**{n: _as_text(merged.get(n)) for n in spec.field_names},
          "lon": _as_text(xy[0]) if xy else None, "lat": _as_text(xy[1]) if xy else None}
         for _, merged, xy in records], columns=names, dtype=object)
    table = pa.table({n: pa.array(frame[n].tolist(), type=pa.string()) for n in names})
    raw = RawTable(table=table, row_numbers=np.array([r.index + 1 for r, _, _ in records], dtype=np.int64),
                   fmt="feed")
    prep, _ = ingest.prepare(spec, raw, crs, settings, file, lon="lon", lat="lat")
    rows = prep.accepted
    assert isinstance(rows, pa.Table)
    kept = [c for c in rows.column_names if c in names or c == "source_row"]
    return rows.select(kept).to_pylist(), prep.rejected


def _assign(db: Path, spec: LayerSpec, rows: list[dict[str, Any]]) -> None:
    """Fill town/community/grid of accepted rows from the grid layer where the record left them
    empty (exact point in polygon, as ``geo.ingest.assign_grids`` does for a file)."""
    wanted = [f for f in ingest.GRID_FIELDS if f in spec.field_names]
    need = [r for r in rows if any(r.get(f) in (None, "") for f in wanted)]
    if not spec.assign_to_grid or not need:
        return
    grids = _grids(db)
    if grids is None:
        return
    hit = assign.points_in_polygons(np.array([r["lon"] for r in need], dtype=np.float64),
                                    np.array([r["lat"] for r in need], dtype=np.float64),
                                    grids.geometry.to_numpy())
    for r, h in zip(need, hit, strict=True):
        if h < 0:
            continue
        for f in wanted:
            if r.get(f) in (None, ""):
                r[f] = plain(grids[ingest.GRID_SOURCE[f]].iloc[int(h)])


_GRIDS: dict[Path, tuple[Any, Any]] = {}


def _grids(db: Path) -> Any:
    """The grid polygons of the database's current snapshot (id, town, community), kept per file version."""
    try:
        st = db.stat()
    except OSError:
        return None
    identity = (st.st_ino, st.st_mtime_ns, st.st_size)
    held = _GRIDS.get(db)
    if held is None or held[0] != identity:
        con = store.connect(db)
        try:
            grids = store.read_layer(con, "grid", columns=["id", "town", "community"])
        finally:
            con.close()
        held = _GRIDS[db] = (identity, grids if len(grids) else None)
    return held[1]


# --------------------------------------------------------------------------- submit


def submit(db: str | Path, layer: str, source: str, body: Any, settings: Settings) -> Outcome:
    """Validate a GeoJSON body for ``layer`` from ``source`` and append what passes as one batch.

    Raises LiveInputError when the body is not a Feature/FeatureCollection of this layer."""
    db = Path(db)
    spec = spec_of(layer)
    features, crs = parse_body(body)
    if len(features) > settings.live_max_features:
        raise LiveInputError(f"{len(features)} features in one body; at most {settings.live_max_features}")
    crs = _checked_crs(crs)
    records, refused = _records(spec, features)
    file = f"feed:{source}"
    with _SUBMIT_LOCK:
        ids = sorted({r.props["id"] for r in records if r.props.get("id")})
        base = stored_rows(db, spec, ids, settings)
        placed, unplaced = [], []
        for r in records:
            before = base.get(r.props.get("id") or "")
            merged = {**(before or {}), **r.props}
            if r.point is not None:
                placed.append((r, merged, r.point))
            else:
                unplaced.append((r, merged, (before["lon"], before["lat"]) if before else None))
        ok, rejected = _validate(spec, placed, crs, settings, file)
        ok2, rejected2 = _validate(spec, unplaced, WGS84, settings, file)
        rows = sorted(ok + ok2, key=lambda row: int(row["source_row"]))
        _assign(db, spec, rows)
        generated = sorted({str(r["id"]) for r in rows} - set(base))  # content ids: a resent record is stored
        base.update(stored_rows(db, spec, generated, settings))
        by_index = {r.index: r for r in records}
        events, flow, outcome = _events(spec, rows, by_index, base)
        kept = _kept_rejections(spec, file, features, [rejected, rejected2], refused + flow)
        outcome.rejected = sorted(
            [*refused, *flow, *_api_rejections(rejected), *_api_rejections(rejected2)], key=lambda r: r["index"])
        if events or kept:
            with journal.transaction(db) as con:
                _continue_snapshot(db, con)
                outcome.seqs = journal.append(con, spec.name, source, events)
                journal.keep_rejected(con, kept)
    return outcome


_CONTINUED: set[tuple[Path, int]] = set()


def _continue_snapshot(db: Path, con: sqlite3.Connection) -> None:
    """Once per journal file: its numbering continues after the snapshot's folded seqs
    (``journal.continue_after``), so a data file restored without its journal loses nothing."""
    key = (db, journal.journal_path(db).stat().st_ino)
    if key in _CONTINUED:
        return
    snap = store.connect(db)
    try:
        after, rejected_after = folded_seq(snap)
    finally:
        snap.close()
    journal.continue_after(con, after, rejected_after)
    _CONTINUED.add(key)


def _checked_crs(crs: str | None) -> str | None:
    if crs is None:
        return None
    from geo.crs import normalise_crs
    from geo.errors import CRSError

    try:
        return normalise_crs(crs)
    except CRSError as exc:
        raise LiveInputError(f'"crs": {exc}') from None


def _events(spec: LayerSpec, rows: list[dict[str, Any]], records: dict[int, _Record],
            base: dict[str, dict[str, Any]]) -> tuple[list[Any], list[dict[str, Any]], Outcome]:
    """Journal events of the accepted rows; the workflow's refusals; the outcome so far."""
    now = datetime.now().replace(microsecond=0)
    outcome, events, refused = Outcome(), [], []
    names = [*spec.field_names, "lon", "lat"]
    for row in rows:
        rec = records[int(row.pop("source_row")) - 1]
        new = {n: plain(row.get(n)) for n in names}
        before = base.get(new["id"])
        if spec.name == "hazard":
            why = workflow.refusal(before and before.get("status"), new.get("status"),
                                   bool(new.get("on_spot")), rec.reopen)
            if why:
                refused.append(_refusal(rec.index, "status", "transition_not_allowed", why, new.get("status")))
                continue
            if before is None or before.get("status") != new.get("status"):
                given = {k: rec.props[k] for k in workflow.STEP_TIMES.values() if k in rec.props}
                times = workflow.step_times(before or {}, {k: new[k] for k in given}, new["status"], now)
                new.update({k: plain(v) for k, v in times.items()})
        outcome.ids.append(new["id"])
        outcome.accepted += 1
        if before is not None and all(_same(before.get(n), new[n]) for n in names):
            outcome.unchanged += 1  # the same record again: stored once
            continue
        changes = _changes(spec, before, new)
        events.append((new["id"], "new" if before is None else "update", new, changes))
        base[new["id"]] = new  # a later record of the same batch builds on this one
    return events, refused, outcome


HISTORY_ON_NEW = ("status", "supervision")
"""Fields a new record's history starts with (every field of an update is kept when it changes)."""


def _changes(spec: LayerSpec, before: dict[str, Any] | None, new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    if before is None:
        return [(f, None, new[f]) for f in HISTORY_ON_NEW if f in new and new[f] is not None]
    return [(n, before.get(n), new[n]) for n in new if n != "id" and not _same(before.get(n), new[n])]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-9
    return plain(a) == plain(b)


def _api_rejections(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The answer's ``rejected`` items from ``prepare``'s rejected rows (index = row number - 1)."""
    if frame is None or not len(frame):
        return []
    return [{"index": int(r["row_number"]) - 1, "field": r["field"], "reason": r["reason"],
             "detail": r["detail"], "value": r["value"]}
            for r in frame.astype(object).where(frame.notna(), None).to_dict("records")]


def _kept_rejections(spec: LayerSpec, file: str, features: list[Any], frames: list[pd.DataFrame],
                     refused: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the ``rejected`` table (as a file ingest keeps them) for everything refused."""
    at = datetime.now().isoformat(sep=" ", timespec="seconds")
    out = []
    for frame in frames:
        if frame is not None and len(frame):
            for r in frame.astype(object).where(frame.notna(), None).to_dict("records"):
                out.append({**r, "raw": _short_raw(features, int(r["row_number"]) - 1), "ingested_at": at})
    for r in refused:
        out.append({"layer": spec.name, "file": file, "row_number": r["index"] + 1, "field": r["field"],
                    "reason": r["reason"], "value": r["value"], "detail": r["detail"],
                    "raw": _short_raw(features, r["index"]), "ingested_at": at})
    return out


def _short_raw(features: list[Any], index: int) -> str:
    """The Feature as sent (JSON text, at most 4,000 characters)."""
    return json.dumps(features[index], ensure_ascii=False, default=str)[:4000]


# --------------------------------------------------------------------------- fold


def fold(db: str | Path, settings: Settings | None = None) -> int:
    """Move the journal's unfolded events into a new snapshot; returns how many were folded.

    One swap holds the layers' rows (upsert by id), the history rows, the rejected records
    and the new folded seqs: killed midway it changes nothing, repeated it changes nothing."""
    db = Path(db)
    settings = settings or Settings()
    if not journal.exists(db) or not db.exists():
        return 0
    con = store.connect(db)
    try:
        after, rejected_after = folded_seq(con)
    finally:
        con.close()
    upto, upto_rejected = journal.head(db), journal.rejected_head(db)
    if upto <= after and upto_rejected <= rejected_after:
        return 0
    with store.writer(db) as w:
        before = live_index.identity(db)  # under the writer lock: the snapshot this fold starts from
        for name, cols in journal.SNAPSHOT_TABLES.items():
            w.execute(f"CREATE TABLE IF NOT EXISTS {name} ({cols})")
        after, rejected_after = folded_seq(w)  # under the writer lock: what is really folded
        events = [e for e in journal.changes_since(db, after, limit=10**9) if e.seq <= upto]
        _fold_events(w, events)
        _fold_history(w, journal.history_rows(db, after), upto)
        _fold_rejected(w, journal.rejected_rows(db, rejected_after, upto_rejected))
        w.execute(f"DELETE FROM {journal.FOLDED_TABLE}")
        w.execute(f"INSERT INTO {journal.FOLDED_TABLE} VALUES (?, ?)",
                  [max(upto, after), max(upto_rejected, rejected_after)])
    live_index.note_own_fold(db, before, live_index.identity(db))
    journal.forget(db, upto, upto_rejected, settings.live_keep_s)
    return len(events)


def _fold_events(w: duckdb.DuckDBPyConnection, events: list[journal.Event]) -> None:
    newest: dict[tuple[str, str], journal.Event] = {}
    for e in events:
        newest[(e.layer, e.id)] = e
    for layer in sorted({k[0] for k in newest}):
        spec = LAYERS[layer]
        chosen = [e for (la, _), e in newest.items() if la == layer]
        store.write_layer(w, layer, typed_frame(spec, chosen))


def typed_frame(spec: LayerSpec, events: list[journal.Event]) -> pd.DataFrame:
    """The events' rows as a frame with the layer's column types (for ``store.write_layer``)."""
    frame = pd.DataFrame([e.row for e in events])
    out = pd.DataFrame(index=frame.index)
    for f in spec.fields:
        col = frame[f.name] if f.name in frame else pd.Series([None] * len(frame), dtype=object)
        if f.type == "datetime":
            out[f.name] = pd.to_datetime(col, errors="coerce")
        elif f.type == "date":
            out[f.name] = pd.to_datetime(col, errors="coerce").dt.date.where(col.notna(), None)
        elif f.type == "float":
            out[f.name] = pd.to_numeric(col, errors="coerce").astype("float64")
        elif f.type == "int":
            out[f.name] = pd.to_numeric(col, errors="coerce").astype("Int64")
        elif f.type == "bool":
            out[f.name] = col.astype(object).where(col.notna(), None)
        else:
            out[f.name] = col.astype(object).where(col.notna(), None)
    out["lon"] = pd.to_numeric(frame["lon"]).astype("float64")
    out["lat"] = pd.to_numeric(frame["lat"]).astype("float64")
    out["source_file"] = [f"feed:{e.source}" for e in events]
    out["source_row"] = pd.array([e.seq for e in events], dtype="Int64")
    return out


def _fold_history(w: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]], upto: int) -> None:
    rows = [r for r in rows if r["seq"] <= upto]
    if rows:
        frame = pd.DataFrame(rows)
        frame["at"] = pd.to_datetime(frame["at"])
        store.write_table(w, journal.HISTORY_TABLE, frame, replace=False)


def _fold_rejected(w: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
    if rows:
        frame = pd.DataFrame(rows).drop(columns=["seq"])
        frame["ingested_at"] = pd.to_datetime(frame["ingested_at"])
        frame["row_number"] = frame["row_number"].astype("Int64")
        store.write_table(w, "rejected", frame, replace=False)


class Compactor:
    """A daemon thread folding the journal every ``live_fold_s`` seconds while events wait."""

    def __init__(self, db: str | Path, settings: Settings) -> None:
        self.db, self.settings = Path(db), settings
        self._stop = threading.Event()
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, name="onemap-fold", daemon=True)

    def start(self) -> Compactor:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.settings.live_fold_s):
            try:
                fold(self.db, self.settings)
            except Exception as exc:  # noqa: BLE001 - a failed fold is retried; the journal keeps the events
                self.errors.append(f"{type(exc).__name__}: {exc}"[:300])
                del self.errors[:-20]
                time.sleep(min(5.0, self.settings.live_fold_s))
