"""Feed tokens (issue 12): which source may POST events to which layers.

A token is ``om_<id>.<secret>``: ``id`` (12 hex digits) names the row of the control
database's ``tokens`` table, ``secret`` (43 URL-safe characters, 256 bits) is kept only as its
SHA-256, so a copy of the control file gives no token (a secret that long needs no slow hash).
``onemap token create`` prints a token once; ``list`` shows ids, sources, layers and dates;
``revoke`` ends it within ``CHECK_S`` seconds. A valid token's principal has source ``token``, its ``name`` is the
token's source and it may take the action ``import`` on its layers only.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from dashboard.access import Principal, Role
from dashboard.access.control import control_path, file_stamp, open_control
from geo.errors import OnemapError

PREFIX = "om_"
SOURCE_RE = re.compile(r"^[A-Za-z0-9\u4e00-\u9fff][A-Za-z0-9\u4e00-\u9fff._-]{0,63}$")
TOKEN_RE = re.compile(r"^om_([0-9a-f]{12})\.([A-Za-z0-9_-]{43})$")
FEED_ROLE = Role("feed", frozenset(), frozenset({"import"}), False, "数据接入")
"""The role of a token's principal: no page, only ``import`` (the feed)."""
RELOAD_S = 5.0
CHECK_S = 0.5
"""A revoked token stops within this many seconds (the file is re-read at most this often)."""


class TokenError(OnemapError):
    """A token command refused (bad source or layer, unknown token)."""


@dataclass(frozen=True)
class Token:
    """A stored token (without its secret)."""

    id: str
    source: str
    layers: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "layers": list(self.layers),
                "created_at": self.created_at.isoformat(sep=" "),
                "revoked_at": self.revoked_at.isoformat(sep=" ") if self.revoked_at else None}


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_source(source: str) -> str:
    if not isinstance(source, str) or not SOURCE_RE.match(source):
        raise TokenError("a source is 1-64 letters, digits, Chinese characters, '.', '_' or '-' "
                         "(starting with a letter, digit or Chinese character)")
    return source


def check_layers(layers: str | list[str]) -> tuple[str, ...]:
    """Layer names of ``--layers hazard,incident``: each a point layer; at least one."""
    from geo.live import feed_layers

    names = [x.strip() for x in (layers.split(",") if isinstance(layers, str) else layers) if x.strip()]
    allowed = feed_layers()
    bad = [n for n in names if n not in allowed]
    if not names or bad:
        raise TokenError(f"--layers takes a comma-separated list of {allowed}; not {bad[:3] or names!r}")
    return tuple(dict.fromkeys(names))


def create(db_path: str | Path, source: str, layers: str | list[str]) -> tuple[str, Token]:
    """Store a new token for ``source`` writing ``layers``; returns (the token text, its row)."""
    source, names = check_source(source), check_layers(layers)
    tid, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    at = datetime.now().replace(microsecond=0)
    with open_control(db_path) as con:
        con.execute("INSERT INTO tokens (id, source, layers, secret_hash, created_at) VALUES (?, ?, ?, ?, ?)",
                    [tid, source, list(names), _digest(secret), at])
    return f"{PREFIX}{tid}.{secret}", Token(tid, source, names, at, None)


def list_tokens(db_path: str | Path) -> list[Token]:
    """Every token, newest first."""
    with open_control(db_path) as con:
        rows = con.execute("SELECT id, source, layers, created_at, revoked_at FROM tokens "
                           "ORDER BY created_at DESC, id").fetchall()
    return [Token(i, s, tuple(la), c, r) for i, s, la, c, r in rows]


def revoke(db_path: str | Path, token_id: str) -> Token:
    """Revoke token ``token_id`` (its id, or the whole token text); TokenError when there is none."""
    found = TOKEN_RE.match(token_id or "")
    tid = found.group(1) if found else (token_id or "").strip()
    if not re.fullmatch(r"[0-9a-f]{12}", tid):
        raise TokenError("give the token's id (12 hex digits, from `onemap token list`)")
    at = datetime.now().replace(microsecond=0)
    with open_control(db_path) as con:
        row = con.execute("SELECT id, source, layers, created_at, revoked_at FROM tokens WHERE id = ?",
                          [tid]).fetchone()
        if row is None:
            raise TokenError(f"no token {tid}")
        if row[4] is None:
            con.execute("UPDATE tokens SET revoked_at = ? WHERE id = ?", [at, tid])
    return Token(row[0], row[1], tuple(row[2]), row[3], row[4] or at)


class Keyring:
    """The live tokens of a data file, re-read when the control file changes (or every ``RELOAD_S``)."""

    def __init__(self, db_path: str | Path) -> None:
        self.db_path = Path(db_path)
        self._path = control_path(db_path)
        self._lock = threading.Lock()
        self._stamp: Any = None
        self._loaded_at = 0.0
        self._rows: dict[str, tuple[str, str, tuple[str, ...]]] = {}

    def _file_stamp(self) -> tuple[object, ...]:
        return file_stamp(self._path)

    def _rows_now(self, missed: bool = False) -> dict[str, tuple[str, str, tuple[str, ...]]]:
        with self._lock:
            stamp = self._file_stamp()
            age = time.monotonic() - self._loaded_at
            # the feed's own audit rows change the file too: re-read at most once per CHECK_S,
            # or at once for an unknown id when the file changed (a token just created)
            if (stamp != self._stamp and (age > CHECK_S or missed)) or age > RELOAD_S:
                rows: dict[str, tuple[str, str, tuple[str, ...]]] = {}
                if stamp[0] is not None:
                    with open_control(self.db_path) as con:
                        for i, s, la, h in con.execute(
                                "SELECT id, source, layers, secret_hash FROM tokens WHERE revoked_at IS NULL").fetchall():
                            rows[i] = (h, s, tuple(la))
                self._rows, self._stamp, self._loaded_at = rows, stamp, time.monotonic()
            return self._rows

    def principal(self, header: str | None) -> tuple[Principal, tuple[str, ...]] | None:
        """The principal and layers of an ``Authorization: Bearer om_...`` header; None if not valid."""
        if not header or not header.startswith("Bearer ") or len(header) > 200:
            return None
        found = TOKEN_RE.match(header[len("Bearer "):].strip())
        if not found:
            return None
        row = self._rows_now().get(found.group(1)) or self._rows_now(missed=True).get(found.group(1))
        if row is None or not hmac.compare_digest(row[0], _digest(found.group(2))):
            return None
        return Principal(row[1], FEED_ROLE, None, "token"), row[2]


