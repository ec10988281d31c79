"""The audit trail (审计日志): who did what, when, to what — append-only, each row chained by hash.

A row holds: ``seq`` (1, 2, ...), ``at`` (server local time), ``actor`` (user name, feed token
source, or ``local:<os user>`` for the CLI), ``role``, ``action``, ``object``, ``before`` and
``after`` (JSON text), ``prev_hash`` (the previous row's ``hash``; ``GENESIS`` for the first)
and ``hash`` = SHA-256 of the row's other fields and ``prev_hash`` (``row_hash``). Editing or
deleting a row breaks the chain at that row.

DuckDB has no triggers or grants, so nothing stops a person holding the file from changing it:
the chain makes a change *visible* (``verify``). The newest row's seq and hash (the head) are
kept twice more — in the control file's ``meta`` table (same transaction as the row) and in a
sidecar file ``<control>.audit-head`` — so a deleted tail is found too. Someone who rewrites
every later row, the meta head and the sidecar with the right algorithm is not detected; an
anchor (a seq and hash noted elsewhere, ``verify(anchors=...)``) is.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from dashboard.access.control import control_path, open_control
from geo.errors import ValidationError

GENESIS = "0" * 64
AUDIT_ACTIONS: tuple[str, ...] = (
    "sign-in", "sign-in-failed", "sign-out", "import", "event", "status-change",
    "scenario-publish", "export", "report", "user-change",
)
HEAD_KEY = "audit_head"
"""``meta`` key of the newest row: ``"<seq>:<hash>"``."""
MAX_LIST = 10_000
"""Most rows one listing returns."""
_COLUMNS = ("seq", "at", "actor", "role", "action", "object", "before", "after", "prev_hash", "hash")
_SELECT = ", ".join(f'"{c}"' for c in _COLUMNS)


def _json(value: Any) -> str | None:
    """``value`` as canonical JSON text (sorted keys, no NaN), None stays None."""
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str, allow_nan=False)


def row_hash(seq: int, at: str, actor: str, role: str | None, action: str, obj: str | None,
             before: str | None, after: str | None, prev_hash: str) -> str:
    """SHA-256 (hex) of one row's fields in a fixed order; ``at`` as ISO text."""
    material = json.dumps([seq, at, actor, role, action, obj, before, after, prev_hash], ensure_ascii=False)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def cli_actor() -> str:
    """The actor of a CLI action: ``local:<os user>``."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = str(os.getuid())
    return f"local:{name}"


def head_path(db_path: str | os.PathLike[str]) -> Path:
    """The sidecar holding the newest row's seq and hash: ``<control file>.audit-head``."""
    control = control_path(db_path)
    return control.with_name(control.name + ".audit-head")


def _write_head(db_path: str | os.PathLike[str], seq: int, digest: str) -> None:
    """Replace the sidecar atomically (called with the control lock held)."""
    path = head_path(db_path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{seq}:{digest}\n", encoding="ascii")
    os.replace(tmp, path)


def record(db_path: str | os.PathLike[str], actor: str, role: str | None, action: str,
           obj: str | None = None, before: Any = None, after: Any = None) -> int:
    """Append one audit row for data file ``db_path``; returns its ``seq``.

    ``action`` is one of ``AUDIT_ACTIONS``; ``before``/``after`` any JSON-able values. The head
    (seq and hash) goes to ``meta`` in the same transaction, then to the sidecar."""
    if action not in AUDIT_ACTIONS:
        raise ValueError(f"audit action {action!r}: use one of {list(AUDIT_ACTIONS)}")
    before_text, after_text = _json(before), _json(after)
    at = datetime.now().replace(microsecond=0)
    with open_control(db_path) as con:
        con.execute("BEGIN")
        last = con.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
        digest = row_hash(seq, at.isoformat(), actor, role, action, obj, before_text, after_text, prev)
        con.execute('INSERT INTO audit (seq, "at", actor, role, action, object, before, after, prev_hash, hash) '
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [seq, at, actor, role, action, obj, before_text, after_text, prev, digest])
        con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [HEAD_KEY, f"{seq}:{digest}"])
        con.execute("COMMIT")
        _write_head(db_path, seq, digest)
    return seq


def record_many(db_path: str | os.PathLike[str],
                rows: list[tuple[str, str | None, str, str | None, Any, Any]]) -> list[int]:
    """Append several audit rows (actor, role, action, object, before, after) in one transaction
    of the control database (the feed's batches: one open of the file, not one per row)."""
    if not rows:
        return []
    for row in rows:
        if row[2] not in AUDIT_ACTIONS:
            raise ValueError(f"audit action {row[2]!r}: use one of {list(AUDIT_ACTIONS)}")
    at = datetime.now().replace(microsecond=0)
    seqs: list[int] = []
    with open_control(db_path) as con:
        con.execute("BEGIN")
        last = con.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (last[0], last[1]) if last else (0, GENESIS)
        for actor, role, action, obj, before, after in rows:
            seq += 1
            before_text, after_text = _json(before), _json(after)
            digest = row_hash(seq, at.isoformat(), actor, role, action, obj, before_text, after_text, prev)
            con.execute('INSERT INTO audit (seq, "at", actor, role, action, object, before, after, prev_hash, hash) '
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [seq, at, actor, role, action, obj, before_text, after_text, prev, digest])
            seqs.append(seq)
            prev = digest
        con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [HEAD_KEY, f"{seq}:{prev}"])
        con.execute("COMMIT")
        _write_head(db_path, seq, prev)
    return seqs


def record_cli(db_path: str | os.PathLike[str], action: str, obj: str | None = None,
               before: Any = None, after: Any = None) -> int:
    """``record`` for a CLI command: the actor is ``cli_actor()``, no role (whoever holds the files)."""
    return record(db_path, cli_actor(), None, action, obj, before, after)


# --------------------------------------------------------------------------- verify


@dataclass(frozen=True)
class Problem:
    """One break in the trail: the row it is found at (``seq``; None for the file as a whole) and what."""

    seq: int | None
    what: str

    def __str__(self) -> str:
        return f"row {self.seq}: {self.what}" if self.seq is not None else self.what


@dataclass
class Verdict:
    """What ``verify`` found: ``ok`` when no problem; the head (newest seq and hash) to note elsewhere."""

    rows: int = 0
    head_seq: int | None = None
    head_hash: str | None = None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "rows": self.rows, "head": {"seq": self.head_seq, "hash": self.head_hash},
                "problems": [{"seq": p.seq, "what": p.what} for p in self.problems],
                "warnings": list(self.warnings)}


def _parse_head(text: str | None) -> tuple[int, str] | None:
    """``"<seq>:<hash>"`` → (seq, hash); None when absent or malformed."""
    if not text:
        return None
    seq, _, digest = text.strip().partition(":")
    if not (seq.isdigit() and len(digest) == 64):
        return None
    return int(seq), digest


def _chain_problems(rows: list[tuple]) -> list[Problem]:
    """Walk the rows in seq order: numbering, links and each row's own hash."""
    problems: list[Problem] = []
    prev_seq, prev_hash = 0, GENESIS
    for seq, at, actor, role, action, obj, before, after, prev, digest in rows:
        at_text = at.isoformat() if isinstance(at, datetime) else str(at)
        if seq != prev_seq + 1:
            gone = f"row {prev_seq + 1}" if seq == prev_seq + 2 else f"rows {prev_seq + 1}–{seq - 1}"
            what = (f"{gone} before it missing (deleted)" if seq > prev_seq + 1
                    else f"numbered out of order after row {prev_seq} (inserted or renumbered)")
            problems.append(Problem(seq, what))
        elif prev != prev_hash:
            problems.append(Problem(seq, f"prev_hash does not match row {prev_seq}'s hash: row {prev_seq} "
                                         "was edited and re-hashed, or this row was inserted or moved"))
        if row_hash(seq, at_text, actor, role, action, obj, before, after, prev) != digest:
            problems.append(Problem(seq, "its fields do not match its hash: edited by hand"))
        prev_seq, prev_hash = seq, digest
    return problems


def _head_problems(rows: list[tuple], head: tuple[int, str] | None, where: str, exact: bool) -> list[Problem]:
    """Compare the recorded head (``where``: meta or sidecar) with the rows.

    ``exact``: the head must be the newest row (meta, written in the row's transaction); else it is
    a lower bound (the sidecar, written just after: a crash between may leave it one row behind)."""
    last_seq = rows[-1][0] if rows else 0
    if head is None:
        return [Problem(None, f"the head recorded in {where} is missing or unreadable")] if rows else []
    seq, digest = head
    if seq > last_seq:
        gone = f"row {seq}" if seq == last_seq + 1 else f"rows {last_seq + 1}–{seq}"
        return [Problem(seq, f"{gone} missing at the end: the head recorded in {where} is row {seq} (tail deleted)")]
    if exact and seq < last_seq:
        return [Problem(seq + 1, f"rows {seq + 1}–{last_seq} came after the head recorded in {where} "
                                 "(added by hand)")]
    by_seq = {r[0]: r[-1] for r in rows}
    if by_seq.get(seq) != digest:
        return [Problem(seq, f"its hash differs from the head recorded in {where} (edited or replaced)")]
    return []


def _anchor_problems(rows: list[tuple], anchors: tuple[tuple[int, str], ...]) -> list[Problem]:
    by_seq = {r[0]: r[-1] for r in rows}
    return [Problem(seq, f"does not match the anchor {seq}:{digest[:12]}… noted earlier")
            for seq, digest in anchors if by_seq.get(seq) != digest]


def parse_anchor(text: str) -> tuple[int, str]:
    """``SEQ:HASH`` as noted from an earlier ``verify`` → (seq, hash); ValidationError otherwise."""
    head = _parse_head(text) if isinstance(text, str) and len(text) < 100 else None
    if head is None or any(c not in "0123456789abcdef" for c in head[1]):
        raise ValidationError(f"anchor {str(text)[:80]!r}: use SEQ:HASH (the 64 hex digits verify prints)")
    return head


def verify(db_path: str | os.PathLike[str], anchors: tuple[tuple[int, str], ...] = ()) -> Verdict:
    """Walk the whole chain of ``db_path``'s audit trail and name every row found broken.

    Finds a row edited by hand (any field), deleted (a gap, or a broken link), inserted or
    renumbered, a deleted tail (the meta and sidecar heads), and a row differing from an anchor."""
    sidecar = head_path(db_path)
    side_text = sidecar.read_text(encoding="ascii", errors="replace") if sidecar.exists() else None
    with open_control(db_path) as con:
        rows = con.execute(f"SELECT {_SELECT} FROM audit ORDER BY seq").fetchall()
        meta = con.execute("SELECT value FROM meta WHERE key = ?", [HEAD_KEY]).fetchone()
    verdict = Verdict(rows=len(rows))
    if rows:
        verdict.head_seq, verdict.head_hash = rows[-1][0], rows[-1][-1]
    verdict.problems += _chain_problems(rows)
    verdict.problems += _head_problems(rows, _parse_head(meta[0] if meta else None), "meta", exact=True)
    if side_text is None:
        if rows:
            verdict.warnings.append(f"no sidecar {sidecar.name} (a copied or restored control file?)")
    else:
        verdict.problems += _head_problems(rows, _parse_head(side_text), f"the sidecar {sidecar.name}", exact=False)
    verdict.problems += _anchor_problems(rows, anchors)
    return verdict


# --------------------------------------------------------------------------- listing


def _moment(value: str | date | datetime | None, name: str) -> datetime | None:
    """A ``since``/``until`` bound: a date (midnight) or a datetime, ISO text accepted."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if not isinstance(value, str) or len(value) > 40:
        raise ValidationError(f"{name}: a date YYYY-MM-DD or a time YYYY-MM-DDTHH:MM[:SS]")
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValidationError(f"{name} {value[:40]!r}: a date YYYY-MM-DD or a time YYYY-MM-DDTHH:MM[:SS]") from None


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text  # edited by hand into something not JSON: shown as it is


def rows(db_path: str | os.PathLike[str], actor: str | None = None, action: str | None = None,
         since: str | date | datetime | None = None, until: str | date | datetime | None = None,
         limit: int = 200) -> list[dict[str, Any]]:
    """Audit rows newest first: ``actor`` and ``action`` exact, ``at`` in ``[since, until)``
    (dates mean midnight), at most ``limit`` (1..``MAX_LIST``)."""
    if action is not None and action not in AUDIT_ACTIONS:
        raise ValidationError(f"action {str(action)[:40]!r}: use one of {', '.join(AUDIT_ACTIONS)}")
    if actor is not None and (not isinstance(actor, str) or len(actor) > 200):
        raise ValidationError("actor: a user name of at most 200 characters")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
        raise ValidationError(f"limit: a whole number from 1 to {MAX_LIST:,}")
    where, params = ["TRUE"], []
    for column, value in (("actor", actor), ("action", action)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    lo, hi = _moment(since, "since"), _moment(until, "until")
    if lo is not None:
        where.append('"at" >= ?')
        params.append(lo)
    if hi is not None:
        where.append('"at" < ?')
        params.append(hi)
    with open_control(db_path) as con:
        found = con.execute(f"SELECT {_SELECT} FROM audit WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ?",
                            [*params, limit]).fetchall()
    out = []
    for row in found:
        item = dict(zip(_COLUMNS, row, strict=True))
        item["at"] = item["at"].isoformat(sep=" ") if isinstance(item["at"], datetime) else item["at"]
        item["before"], item["after"] = _loads(item["before"]), _loads(item["after"])
        out.append(item)
    return out

