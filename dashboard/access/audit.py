"""The audit trail (审计日志): who did what, when, to what — append-only, each row chained by hash.

A row holds: ``seq`` (1, 2, ...), ``at`` (server local time), ``actor`` (user name, feed token
source, or ``local:<os user>`` for the CLI), ``role``, ``action``, ``object``, ``before`` and
``after`` (JSON text), ``prev_hash`` (the previous row's ``hash``; ``GENESIS`` for the first)
and ``hash`` = SHA-256 of the row's other fields and ``prev_hash`` (``row_hash``). Editing or
deleting a row breaks the chain at that row.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from datetime import datetime
from typing import Any

from dashboard.access.control import open_control

GENESIS = "0" * 64
AUDIT_ACTIONS: tuple[str, ...] = (
    "sign-in", "sign-in-failed", "sign-out", "import", "event", "status-change",
    "scenario-publish", "export", "report", "user-change",
)


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


def record(db_path: str | os.PathLike[str], actor: str, role: str | None, action: str,
           obj: str | None = None, before: Any = None, after: Any = None) -> int:
    """Append one audit row for data file ``db_path``; returns its ``seq``.

    ``action`` is one of ``AUDIT_ACTIONS``; ``before``/``after`` any JSON-able values."""
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
        con.execute("COMMIT")
    return seq
