"""Responder units named by incidents (出动力量): split, match to stations, find the busy ones.

A dispatch system's export names the units that answered a call in one cell, in the order
they were sent: ``"WZ-001；城东消防救援站、城东中队"``. ``split_units`` cuts such a cell,
``match_units`` ties every piece to a station or micro station of the database (by id
first, else by name), and ``busy_units`` lists the units still out on an open call.

Matching rule (one definition, used by ingest, response performance, calibration and the
dispatch picture):

1. the trimmed text equals a responder's ``id`` → that responder;
2. else its normalised form (strip, Unicode NFKC so full-width ``ＷＺ００１`` reads
   ``WZ001``, case-fold) equals the normalised id or name of responders → that responder
   when there is exactly one, ``"ambiguous"`` when several share it;
3. else ``"unknown"``.

A unit named twice in one call counts once, at its first position (position 0 = the first
listed = the first-due unit).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from geo.coverage_inputs import RESPONDER_LAYERS
from layers.incident import OPEN_STATUSES

# Separators between units in one 出动力量 cell: ; ； 、 ， , / ／ and line breaks, with any
# whitespace around them.
UNIT_SEPARATORS: re.Pattern[str] = re.compile(r"\s*[;；、，,/／\r\n]\s*")

RESPONDER_COLUMNS: tuple[str, ...] = (
    "layer", "id", "name", "kind", "status", "duty_status", "town", "lon", "lat",
)
PAIR_COLUMNS: tuple[str, ...] = (
    "incident_id", "position", "unit_text", "layer", "unit_id", "unit_name",
)
UNMATCHED_COLUMNS: tuple[str, ...] = ("incident_id", "position", "unit_text", "reason")
BUSY_COLUMNS: tuple[str, ...] = ("layer", "unit_id", "incident_id", "since")
UNKNOWN = "unknown"
AMBIGUOUS = "ambiguous"


def split_units(text: str | None) -> list[str]:
    """The units named in one 出动力量 cell, trimmed, empties dropped, in the order given.

    >>> split_units(" WZ-001； 城东站、、 / 城西站 ")
    ['WZ-001', '城东站', '城西站']
    """
    if text is None or not isinstance(text, str):
        return []
    return [part for part in (p.strip() for p in UNIT_SEPARATORS.split(text)) if part]


def normalise_unit(text: str) -> str:
    """The form names and ids are compared in: stripped, NFKC (full-width → half-width), case-folded."""
    return unicodedata.normalize("NFKC", text).strip().casefold()


def _table_columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str] | None:
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]
    ).fetchall()
    return {r[0] for r in rows} or None


def load_responders(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every station and micro station of the database ``con`` reads (``RESPONDER_LAYERS``).

    Columns ``RESPONDER_COLUMNS``; a column a layer's table lacks (an older file) is None,
    a layer without a table gives no rows.
    """
    frames = []
    for layer in RESPONDER_LAYERS:
        present = _table_columns(con, layer)
        if present is None:
            continue
        select = ", ".join(
            f'"{c}"' if c in present else f'NULL AS "{c}"' for c in RESPONDER_COLUMNS[1:]
        )
        frame = con.execute(f"SELECT ? AS layer, {select} FROM {layer}", [layer]).df()
        frames.append(frame)
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in RESPONDER_COLUMNS})
    out = pd.concat(frames, ignore_index=True)
    return out.astype({c: object for c in RESPONDER_COLUMNS if c not in ("lon", "lat")})


@dataclass(frozen=True)
class UnitMatch:
    """Units of incidents tied to responders.

    ``pairs``: one row per (incident, matched unit): incident_id, position (0 = first listed
    = first-due), unit_text, layer, unit_id, unit_name. ``unmatched``: incident_id, position,
    unit_text, reason (``"unknown"`` | ``"ambiguous"``).
    """

    pairs: pd.DataFrame
    unmatched: pd.DataFrame

    def unmatched_summary(self) -> pd.DataFrame:
        """One row per unmatched text: unit_text, reason, rows (count), incident_ids (first 5)."""
        if not len(self.unmatched):
            columns = ("unit_text", "reason", "rows", "incident_ids")
            return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
        grouped = self.unmatched.groupby(["unit_text", "reason"], sort=False)["incident_id"]
        out = grouped.agg(rows="size", incident_ids=lambda s: list(s.astype(str).head(5)))
        out = out.reset_index()
        return out.sort_values(["rows", "unit_text"], ascending=[False, True], ignore_index=True)


def _normalised_all(texts: np.ndarray) -> np.ndarray:
    """``normalise_unit`` of many texts in one C call (NUL is a starter: nothing composes across it)."""
    if not len(texts):
        return np.array([], dtype=object)
    if any("\x00" in t for t in texts):
        return np.array([normalise_unit(t) for t in texts], dtype=object)
    joined = unicodedata.normalize("NFKC", "\x00".join(texts)).casefold()
    return np.array([t.strip() for t in joined.split("\x00")], dtype=object)


def _responder_keys(responders: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(exact-id table, normalised id-or-name table): key, layer, unit_id, unit_name and n,
    the number of responders sharing the key."""
    base = pd.DataFrame({c: responders[s].astype(object).to_numpy() for c, s in
                         (("layer", "layer"), ("unit_id", "id"), ("unit_name", "name"))})
    usable = np.array([isinstance(v, str) and v.strip() != "" for v in base["unit_id"]], dtype=bool)
    base = base[usable].reset_index(drop=True)
    named_mask = np.array(
        [isinstance(v, str) and v.strip() != "" for v in base["unit_name"]], dtype=bool
    )
    base["unit_name"] = base["unit_name"].where(named_mask, None)
    exact = base.assign(key=base["unit_id"])
    named = base[named_mask]
    keys = pd.concat([exact, named.assign(key=named["unit_name"])], ignore_index=True)
    keys["key"] = _normalised_all(keys["key"].to_numpy(dtype=object))
    keys = keys[keys["key"] != ""].drop_duplicates(["key", "layer", "unit_id"])
    tables = []
    for table in (exact, keys):
        table = table.reset_index(drop=True)
        table["n"] = table.groupby("key")["unit_id"].transform("size")
        tables.append(table.drop_duplicates("key"))
    return tables[0], tables[1]


def _match_texts(texts: np.ndarray, responders: pd.DataFrame) -> pd.DataFrame:
    """layer, unit_id, unit_name, reason for each distinct unit text (reason None when matched)."""
    exact, normal = _responder_keys(responders)
    frame = pd.DataFrame({"text": texts, "norm": _normalised_all(texts)})
    by_id = frame.merge(exact, left_on="text", right_on="key", how="left")
    by_name = frame.merge(normal, left_on="norm", right_on="key", how="left")
    use_id = by_id["n"].notna().to_numpy()
    columns = ["layer", "unit_id", "unit_name", "n"]
    picked = np.where(
        use_id[:, None], by_id[columns].to_numpy(object), by_name[columns].to_numpy(object)
    )
    chosen = pd.DataFrame(picked, columns=columns)
    n = pd.to_numeric(chosen.pop("n")).fillna(0).to_numpy()
    chosen["reason"] = np.where(n == 1, None, np.where(n > 1, AMBIGUOUS, UNKNOWN))
    chosen.loc[n != 1, ["layer", "unit_id", "unit_name"]] = None
    return chosen.astype(object)


def _cell_table(cells: np.ndarray, responders: pd.DataFrame) -> pd.DataFrame:
    """cell, position, unit_text, layer, unit_id, unit_name, reason: the units of each distinct
    出动力量 cell, matched. Arrow kernels split and trim; matching runs once per distinct text."""
    strings = pa.array([c if isinstance(c, str) else None for c in cells], type=pa.large_string())
    parts = pc.split_pattern_regex(strings, UNIT_SEPARATORS.pattern)
    table = pd.DataFrame({
        "cell": np.asarray(pc.list_parent_indices(parts), dtype=np.int64),
        "unit_text": np.asarray(
            pc.utf8_trim_whitespace(pc.list_flatten(parts)).to_numpy(zero_copy_only=False),
            dtype=object,
        ),
    })
    table = table[table["unit_text"] != ""].drop_duplicates(["cell", "unit_text"])
    table = table.reset_index(drop=True)
    position = table.groupby("cell", sort=False).cumcount().to_numpy(dtype=np.int64)
    table.insert(1, "position", position)
    codes, texts = pd.factorize(table["unit_text"])
    matched = _match_texts(np.asarray(texts, dtype=object), responders)
    table = pd.concat([table, matched.iloc[codes].reset_index(drop=True)], axis=1)
    # A unit named twice in one call (by id and by name) counts once, at its first position.
    repeat = table["reason"].isna() & table.duplicated(["cell", "layer", "unit_id"])
    return table[~repeat.to_numpy()].reset_index(drop=True)


def _expand(incidents: pd.DataFrame, codes: np.ndarray, table: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``table`` repeated for every incident whose cell code they belong to."""
    n_cells = int(codes.max()) + 1 if len(codes) and codes.max() >= 0 else 0
    counts = np.bincount(table["cell"].to_numpy(), minlength=n_cells)
    starts = np.cumsum(counts) - counts
    valid = codes >= 0
    inc_rows = np.flatnonzero(valid)
    per_incident = counts[codes[valid]]
    inc_index = np.repeat(inc_rows, per_incident)
    first_row = np.cumsum(per_incident) - per_incident
    offsets = np.arange(len(inc_index)) - np.repeat(first_row, per_incident)
    row_index = np.repeat(starts[codes[valid]], per_incident) + offsets
    out = table.iloc[row_index].reset_index(drop=True)
    out.insert(0, "incident_id", incidents["id"].astype(object).to_numpy()[inc_index])
    return out.drop(columns="cell")


def match_units(incidents: pd.DataFrame, responders: pd.DataFrame) -> UnitMatch:
    """Tie each unit named in ``incidents.units`` to a responder (the module's matching rule).

    ``incidents`` needs columns ``id`` and ``units``; ``responders`` is ``load_responders``'s
    frame (layer, id, name at least). Splitting and matching run once per distinct cell and
    text; the result reaches every incident by integer indexing (500k calls in well under a
    second when cells repeat, as dispatch exports' do).
    """
    codes, cells = pd.factorize(incidents["units"], use_na_sentinel=True)
    table = _cell_table(np.asarray(cells, dtype=object), responders)
    rows = _expand(incidents, np.asarray(codes, dtype=np.int64), table)
    hit = rows["reason"].isna().to_numpy()
    pairs = rows.loc[hit, list(PAIR_COLUMNS)]
    unmatched = rows.loc[~hit, list(UNMATCHED_COLUMNS)]
    return UnitMatch(pairs=_typed(pairs), unmatched=_typed(unmatched))


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """A fresh index and position as int64 (text columns keep pandas' string dtype)."""
    out = frame.reset_index(drop=True)
    return out.astype({"position": np.int64})


def open_at(incidents: pd.DataFrame, as_of: datetime) -> np.ndarray:
    """Per incident: still open at ``as_of``.

    Open = reported at or before ``as_of`` and either its status is open (``OPEN_STATUSES``:
    待处置/处置中) or, without a status, not cleared at or before ``as_of``.
    """
    moment = pd.Timestamp(as_of)
    if moment.tzinfo is not None:
        moment = moment.tz_convert(None)
    reported = pd.to_datetime(incidents["reported_at"], errors="coerce")
    started = (reported <= moment).fillna(False).to_numpy(dtype=bool)
    none = pd.Series(None, index=incidents.index, dtype=object)
    status = incidents["status"] if "status" in incidents else none
    cleared = pd.to_datetime(incidents["cleared_at"] if "cleared_at" in incidents else none, errors="coerce")
    by_status = status.isin(OPEN_STATUSES).to_numpy(dtype=bool)
    no_status = status.isna().to_numpy(dtype=bool)
    not_cleared = ~(cleared <= moment).fillna(False).to_numpy(dtype=bool)
    return started & (by_status | (no_status & not_cleared))


def busy_units(incidents: pd.DataFrame, responders: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """Units out on a call at ``as_of``: layer, unit_id, incident_id, since.

    One row per (unit, open incident naming it, ``open_at``); ``since`` is the incident's
    rolling time (出动时间) when known, else its call time. Sorted by ``since``.
    """
    if not len(incidents):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in BUSY_COLUMNS})
    open_calls = incidents[open_at(incidents, as_of)]
    match = match_units(open_calls[["id", "units"]], responders)
    reported = pd.to_datetime(open_calls["reported_at"], errors="coerce")
    rolled = (
        pd.to_datetime(open_calls["dispatched_at"], errors="coerce")
        if "dispatched_at" in open_calls
        else reported
    )
    since = pd.DataFrame(
        {"incident_id": open_calls["id"].to_numpy(), "since": rolled.fillna(reported).to_numpy()}
    )
    out = match.pairs.merge(since.drop_duplicates("incident_id"), on="incident_id", how="left")
    out = out[list(BUSY_COLUMNS)].sort_values(
        ["since", "layer", "unit_id"], kind="stable", ignore_index=True
    )
    return out.astype({"layer": object, "unit_id": object, "incident_id": object})
