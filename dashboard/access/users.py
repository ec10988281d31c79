"""Users of the app (issue 13): add, list, remove, set password, role and towns, verify a password.

Users live in the control database beside the data file (``dashboard.access.control``). A
password is stored only as a werkzeug.security hash string (``scrypt:32768:8:1$salt$hash``, the
standard scheme werkzeug names in the string itself); a user with no password signs in only
through the trusted SSO header. Names are checked (length, no control or invisible characters,
no ``:`` which the audit trail reserves for ``local:<os user>`` and token sources); roles come
from ``ROLES``; towns (街镇) are checked against the towns the data file holds.
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from datetime import datetime
from pathlib import Path
from typing import Any

from werkzeug.security import check_password_hash, generate_password_hash

from dashboard.access import ROLES, Principal
from dashboard.access.control import control_path, open_control
from geo.errors import ValidationError

NAME_MAX = 64
PASSWORD_MAX = 256  # scrypt of a huge password costs time; no real password is longer
RESERVED_NAMES = frozenset({"local", "anonymous"})
HASH_METHOD = "scrypt"
# Checked against when the user is unknown, so an unknown name costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("onemap-no-such-user", method=HASH_METHOD)


class UserError(ValidationError):
    """A user name, password, role or town that cannot be used (the message says why)."""


def _visible(text: str) -> bool:
    """No control, format (zero-width, bidi), separator-line or unassigned characters."""
    return all(unicodedata.category(ch) not in {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"} for ch in text)


def check_name(name: Any, what: str = "user name") -> str:
    """``name`` if it can name a user (or a town), else UserError saying what is wrong."""
    if not isinstance(name, str):
        raise UserError(f"{what} must be text, not {type(name).__name__}")
    if not name or len(name) > NAME_MAX:
        raise UserError(f"{what} must be 1-{NAME_MAX} characters long (got {len(name)})")
    if name != name.strip() or not _visible(name):
        raise UserError(f"{what} {name[:NAME_MAX]!r}: no leading/trailing spaces, control or invisible characters")
    if what == "user name":
        if ":" in name or "/" in name:
            raise UserError(f"user name {name!r}: ':' and '/' are reserved (audit actors such as local:<os user>)")
        if name.lower() in RESERVED_NAMES:
            raise UserError(f"user name {name!r} is reserved; choose another")
    return name


def check_password(password: Any, min_length: int) -> str:
    """``password`` if it is acceptable: text, ``min_length``-``PASSWORD_MAX`` characters, no NUL or control."""
    if not isinstance(password, str):
        raise UserError("the password must be text")
    if len(password) < min_length:
        raise UserError(f"the password must have at least {min_length} characters (setting password_min_length)")
    if len(password) > PASSWORD_MAX:
        raise UserError(f"the password must have at most {PASSWORD_MAX} characters")
    if any(unicodedata.category(ch) == "Cc" for ch in password):
        raise UserError("the password must not contain control characters (NUL, newline, ...)")
    return password


def check_role(role: Any) -> str:
    """``role`` if it names one of ``ROLES``."""
    if not isinstance(role, str) or role not in ROLES:
        raise UserError(f"role {role!r}: use one of {', '.join(ROLES)}")
    return role


def known_towns(db_path: str | os.PathLike[str]) -> list[str]:
    """The towns (街镇) data file ``db_path`` knows: admin_area names of level 街镇 and grid towns."""
    from geo import store

    if not Path(db_path).exists():
        return []
    con = store.connect(db_path)
    names: set[str] = set()
    for sql in ("SELECT DISTINCT name FROM admin_area WHERE level = '街镇' AND name IS NOT NULL",
                "SELECT DISTINCT town FROM grid WHERE town IS NOT NULL"):
        try:
            names.update(row[0] for row in con.execute(sql).fetchall())
        except Exception:  # noqa: BLE001 - a data file without the layer has no towns from it
            continue
    return sorted(names)


def check_towns(towns: Any, db_path: str | os.PathLike[str]) -> tuple[str, ...] | None:
    """``towns`` as a sorted tuple (None: the whole district), each one a town of the data file."""
    if towns is None:
        return None
    if isinstance(towns, str) or not all(isinstance(t, str) for t in towns):
        raise UserError("towns must be a list of town names")
    chosen = tuple(sorted({check_name(t, "town name") for t in towns}))
    if not chosen:
        raise UserError("give at least one town, or the whole district (--all-towns)")
    known = set(known_towns(db_path))
    if not known:
        raise UserError(f"{db_path}: the data file holds no towns (街镇) yet; import admin_area or grid first, "
                        "or give the user the whole district")
    unknown = [t for t in chosen if t not in known]
    if unknown:
        raise UserError(f"unknown town(s) {unknown}; the data file's towns are: {', '.join(sorted(known))}")
    return chosen


def hash_password(password: str) -> str:
    """werkzeug.security's scheme string for ``password`` (scrypt, random salt)."""
    return generate_password_hash(password, method=HASH_METHOD)


def _now() -> datetime:
    return datetime.now().replace(microsecond=0)


def count_users(db_path: str | os.PathLike[str]) -> int:
    """How many users are configured (0 when there is no control file yet: nothing is created)."""
    if not control_path(db_path).exists():
        return 0
    with open_control(db_path) as con:
        return int(con.execute("SELECT count(*) FROM users").fetchone()[0])


def add_user(db_path: str | os.PathLike[str], name: str, role: str, password: str | None,
             towns: list[str] | None = None, *, min_length: int = 8) -> dict[str, Any]:
    """Add user ``name`` (UserError if taken or invalid); ``password`` None: SSO sign-in only.

    The first user must be an admin: the one who then adds the others."""
    check_name(name)
    check_role(role)
    scope = check_towns(towns, db_path)
    digest = hash_password(check_password(password, min_length)) if password is not None else None
    with open_control(db_path) as con:
        con.execute("BEGIN")
        if con.execute("SELECT count(*) FROM users WHERE name = ?", [name]).fetchone()[0]:
            con.execute("ROLLBACK")
            raise UserError(f"user {name!r} exists already (onemap user set / passwd change it)")
        if role != "admin" and not con.execute("SELECT count(*) FROM users").fetchone()[0]:
            con.execute("ROLLBACK")
            raise UserError("the first user must be an admin: onemap user add NAME --role admin")
        now = _now()
        con.execute("INSERT INTO users (name, password_hash, role, towns, disabled, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, FALSE, ?, ?)", [name, digest, role, list(scope) if scope else None, now, now])
        con.execute("COMMIT")
    return describe(name, role, scope, digest is not None)


def describe(name: str, role: str, towns: tuple[str, ...] | list[str] | None, has_password: bool) -> dict[str, Any]:
    """A user as shown by ``user list`` and the audit trail (never the hash)."""
    return {"name": name, "role": role, "towns": list(towns) if towns is not None else None,
            "has_password": has_password}


def list_users(db_path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every user, by name: name, role, towns (None: whole district), has_password, disabled, times."""
    if not control_path(db_path).exists():
        return []
    with open_control(db_path) as con:
        rows = con.execute("SELECT name, role, towns, password_hash IS NOT NULL, disabled, created_at, updated_at "
                           "FROM users ORDER BY name").fetchall()
    return [describe(r[0], r[1], r[2], r[3]) | {"disabled": r[4], "created_at": r[5].isoformat(),
                                                 "updated_at": r[6].isoformat()} for r in rows]


def _one(con: Any, name: str) -> tuple[str, tuple[str, ...] | None, bool]:
    row = con.execute("SELECT role, towns, password_hash IS NOT NULL FROM users WHERE name = ?", [name]).fetchone()
    if row is None:
        raise UserError(f"no user {name!r} (onemap user list shows the users)")
    return row[0], tuple(row[1]) if row[1] else None, row[2]


def get_user(db_path: str | os.PathLike[str], name: str) -> dict[str, Any]:
    """User ``name`` as ``describe`` shows it (UserError when there is none)."""
    if not control_path(db_path).exists():
        raise UserError(f"no user {name!r}: no users are configured yet")
    with open_control(db_path) as con:
        role, towns, has_pw = _one(con, name)
    return describe(name, role, towns, has_pw)


def _admins_left(con: Any, without: str) -> int:
    return int(con.execute("SELECT count(*) FROM users WHERE role = 'admin' AND NOT disabled AND name <> ?",
                           [without]).fetchone()[0])


def remove_user(db_path: str | os.PathLike[str], name: str) -> dict[str, Any]:
    """Remove user ``name``; the last admin stays while other users remain. Returns the removed user."""
    with open_control(db_path) as con:
        role, towns, has_pw = _one(con, name)
        others = con.execute("SELECT count(*) FROM users WHERE name <> ?", [name]).fetchone()[0]
        if role == "admin" and others and not _admins_left(con, name):
            raise UserError(f"{name!r} is the last admin; make another admin first "
                            "(onemap user set OTHER --role admin)")
        con.execute("DELETE FROM users WHERE name = ?", [name])
    return describe(name, role, towns, has_pw)


def set_password(db_path: str | os.PathLike[str], name: str, password: str | None, *, min_length: int = 8) -> None:
    """Set (None: remove, SSO only) the password of ``name``; sessions signed in with the old one end."""
    digest = hash_password(check_password(password, min_length)) if password is not None else None
    with open_control(db_path) as con:
        _one(con, name)
        con.execute("UPDATE users SET password_hash = ?, updated_at = ? WHERE name = ?", [digest, _now(), name])


_KEEP = object()


def set_role(db_path: str | os.PathLike[str], name: str, role: str | None = None,
             towns: Any = _KEEP) -> tuple[dict[str, Any], dict[str, Any]]:
    """Change the role and/or towns of ``name`` (``towns`` None: the whole district; omitted: kept).

    Returns (before, after). The last admin keeps the admin role."""
    if role is not None:
        check_role(role)
    scope = _KEEP if towns is _KEEP else check_towns(towns, db_path)
    with open_control(db_path) as con:
        old_role, old_towns, has_pw = _one(con, name)
        new_role = role or old_role
        new_towns = old_towns if scope is _KEEP else scope
        if old_role == "admin" and new_role != "admin" and not _admins_left(con, name):
            raise UserError(f"{name!r} is the last admin; make another admin first")
        con.execute("UPDATE users SET role = ?, towns = ?, updated_at = ? WHERE name = ?",
                    [new_role, list(new_towns) if new_towns else None, _now(), name])
    return describe(name, old_role, old_towns, has_pw), describe(name, new_role, new_towns, has_pw)


def session_tag(password_hash: str | None) -> str:
    """A short tag of the password hash kept in the session: a new password ends older sessions."""
    return hashlib.sha256((password_hash or "sso").encode()).hexdigest()[:16]


def load_all(db_path: str | os.PathLike[str]) -> dict[str, tuple[Principal, str | None]]:
    """Every enabled user as (Principal with source ``password``, password hash)."""
    if not control_path(db_path).exists():
        return {}
    with open_control(db_path) as con:
        rows = con.execute("SELECT name, role, towns, password_hash FROM users WHERE NOT disabled").fetchall()
    # towns NULL is the whole district; an empty list (never written by ``check_towns``, but a
    # hand edit or an import could) is no town at all, never the whole district
    return {r[0]: (Principal(r[0], ROLES[r[1]], tuple(r[2]) if r[2] is not None else None, "password"), r[3])
            for r in rows if r[1] in ROLES}


def verify_hash(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; an absent hash (unknown or SSO-only user) costs as long and is False."""
    if password_hash is None:
        check_password_hash(_DUMMY_HASH, password)
        return False
    return check_password_hash(password_hash, password)


def verify(db_path: str | os.PathLike[str], name: str, password: str) -> Principal | None:
    """The user's Principal when ``name`` exists, is enabled and ``password`` is theirs; else None."""
    found = load_all(db_path).get(name)
    ok = verify_hash(found[1] if found else None, password)
    return found[0] if found and ok else None
