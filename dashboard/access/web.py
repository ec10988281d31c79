"""Sign-in for the dashboard (issue 13): who is asking, set before every request.

``install(app, settings, db_path)`` (called by ``dashboard.app.create_app``) adds:

- Flask-Login sessions: ``GET/POST /login`` (a server-rendered form, Chinese by default,
  ``?lang=en``; fields ``username``, ``password``, ``next``), ``/logout``; the session cookie is
  HttpOnly, SameSite=Strict (Secure with ``session_cookie_secure``) and ends after
  ``session_idle_minutes`` without a request; its key is made once and kept in the control
  database's ``meta`` table, so a restart keeps everyone signed in; a sign-out records the
  session's id (``signed_out``), so a copy of its cookie is refused from then on;
- a ``before_request`` that sets the principal (``set_current_principal``): the trusted SSO
  proxy's header user (``auth_remote_user_header`` from an ``auth_trusted_proxies`` address),
  else the signed-in user, else ``LOCAL`` when no users are configured (the app as before);
  with users and no principal, pages redirect to ``/login?next=…`` and ``/api/…``,
  ``/_dash-…`` answer 401 JSON; then the role's pages and callbacks (``dashboard.access.gate``);
- the sign-in rate limit (``limits.FailureCounter``) and the security headers (``headers``);
- ``require(action)``: a route's check that the principal may take an action (403 JSON).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import flask
import flask_login
from dash import Dash

from dashboard.access import APP_EXTENSION, LOCAL, Principal, current_principal, set_current_principal
from dashboard.access import audit, gate, headers, pages
from dashboard.access.control import control_path, file_stamp, open_control
from dashboard.access.limits import FailureCounter
from dashboard.access.users import NAME_MAX, PASSWORD_MAX, load_all, session_tag, verify_hash
from geo.errors import ConfigError
from geo.settings import Settings

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
LOGIN, LOGOUT, CSS = "/login", "/logout", "/login.css"
PUBLIC = frozenset({LOGIN, LOGOUT, CSS, "/_favicon.ico"})
SECRET_KEY = "session_secret"
SID = "onemap_sid"  # the session's id: a sign-out records it, and its cookie is refused from then on
RELOAD_S = 5.0  # users are re-read at least this often, and at once when the control file changes
MAX_SSO_SEEN = 10_000  # SSO visitors remembered for their sign-in audit row; beyond it, idle ones are dropped
HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")
F = TypeVar("F", bound=Callable[..., Any])


def json_error(message: str, status: int, **extra: Any) -> flask.Response:
    """``{"error": message, ...}`` with ``status``."""
    body = flask.json.dumps({"error": message, **extra}, ensure_ascii=False)
    return flask.Response(body, status=status, mimetype="application/json")


def require(action: str) -> flask.Response | None:
    """None when the request's principal may take ``action``, else the 403 JSON to answer with.

    In a route: ``if (denied := web.require("status.change")): return denied``."""
    principal = current_principal()
    if principal.may(action):
        return None
    return json_error(f"{principal.name} ({principal.role.name}) may not {action}", 403, action=action)


def requires(action: str) -> Callable[[F], F]:
    """Decorator form of ``require`` for a Flask view."""
    def wrap(view: F) -> F:
        @wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            return require(action) or view(*args, **kwargs)
        return checked  # type: ignore[return-value]
    return wrap


class Directory:
    """The enabled users of the control database, re-read when its file changes (or every ``RELOAD_S``)."""

    def __init__(self, db_path: str) -> None:
        self.db_path = db_path
        self._path = control_path(db_path)
        self._lock = threading.Lock()
        self._stamp: tuple[Any, ...] | None = None
        self._loaded_at = 0.0
        self.users: dict[str, tuple[Principal, str | None]] = {}
        self.signed_out: set[str] = set()

    def _file_stamp(self) -> tuple[object, ...]:
        return file_stamp(self._path)

    def refresh(self) -> dict[str, tuple[Principal, str | None]]:
        """The users, re-read if the control file changed."""
        with self._lock:
            stamp = self._file_stamp()
            if stamp != self._stamp or time.monotonic() - self._loaded_at > RELOAD_S:
                self.users = load_all(self.db_path) if stamp[0] is not None else {}
                self.signed_out = load_signed_out(self.db_path) if self.users else set()
                self._stamp, self._loaded_at = self._file_stamp(), time.monotonic()
            return self.users


def load_signed_out(db_path: str) -> set[str]:
    """Session ids ended by a sign-out whose cookies could still be replayed (the rest are dropped)."""
    with open_control(db_path) as con:
        con.execute("DELETE FROM signed_out WHERE until < ?", [datetime.now()])
        return {r[0] for r in con.execute("SELECT sid FROM signed_out").fetchall()}


def end_session(db_path: str, sid: str, idle_minutes: float) -> None:
    """Record that session ``sid`` was signed out: its cookie, replayed, is refused until it would
    have expired anyway (``session_idle_minutes`` after its last use, which is now at the latest)."""
    until = datetime.now() + timedelta(minutes=idle_minutes, seconds=60)
    with open_control(db_path) as con:
        con.execute("INSERT OR REPLACE INTO signed_out VALUES (?, ?)", [sid, until])


class SignedIn(flask_login.UserMixin):
    """Flask-Login's user: the principal, with a session id that a new password invalidates."""

    def __init__(self, principal: Principal, password_hash: str | None) -> None:
        self.principal = principal
        self.id = f"{session_tag(password_hash)}|{principal.name}"


def session_secret(db_path: str) -> str:
    """The session-signing key kept in the control database (made on first use)."""
    with open_control(db_path) as con:
        row = con.execute("SELECT value FROM meta WHERE key = ?", [SECRET_KEY]).fetchone()
        if row:
            return str(row[0])
        value = secrets.token_hex(32)
        con.execute("INSERT INTO meta VALUES (?, ?)", [SECRET_KEY, value])
        return value


def _networks(settings: Settings) -> tuple[Any, ...]:
    out = []
    for item in settings.auth_trusted_proxies:
        try:
            out.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            msg = f"setting `auth_trusted_proxies`: {item!r} is not an IP address or network (CIDR)"
            raise ConfigError(msg) from None
    return tuple(out)


def check_settings(settings: Settings) -> None:
    """ConfigError for sign-in settings the generic checker cannot judge (types, ranges, header names)."""
    if not isinstance(settings.session_cookie_secure, bool):
        shown = repr(settings.session_cookie_secure)
        raise ConfigError(f"setting `session_cookie_secure` = {shown}: expected true or false")
    for name in ("login_max_failures", "login_lock_minutes", "session_idle_minutes", "password_min_length"):
        if getattr(settings, name) <= 0:
            raise ConfigError(f"setting `{name}` must be greater than 0")
    header = settings.auth_remote_user_header
    if header and not HEADER_NAME.match(header):
        raise ConfigError(f"setting `auth_remote_user_header` = {header!r}: "
                          "expected a header name such as X-Remote-User")
    _networks(settings)


class Auth:
    """Who is asking, per request: the state ``install`` shares between its hooks."""

    def __init__(self, app: Dash, settings: Settings, db_path: str) -> None:
        self.app, self.settings, self.db_path = app, settings, db_path
        self.directory = Directory(db_path)
        self.proxies = _networks(settings)
        self.header = settings.auth_remote_user_header
        self.limiter = FailureCounter(settings.login_max_failures, settings.login_lock_minutes * 60)
        self.prefix = app.config.routes_pathname_prefix.rstrip("/")
        self.closed = bool(self.header)  # sign-in required; once users were seen it stays so
        self.idle_s = settings.session_idle_minutes * 60
        self._sso_seen: dict[str, float] = {}  # "name|address|known" -> last request (monotonic)
        self._sso_lock = threading.Lock()

    def users(self) -> dict[str, tuple[Principal, str | None]]:
        """The users now; the first time there are some, the kept session key is put in place."""
        found = self.directory.refresh()
        if found and self.app.server.config.get("ONEMAP_SECRET_FROM") != self.db_path:
            self.app.server.secret_key = session_secret(self.db_path)
            self.app.server.config["ONEMAP_SECRET_FROM"] = self.db_path
        if found:
            self.closed = True
        return found

    def trusted(self, address: str | None) -> bool:
        try:
            ip = ipaddress.ip_address((address or "").split("%")[0])
        except ValueError:
            return False
        return any(ip in net for net in self.proxies)

    def client_address(self) -> str:
        """The client's address: the socket peer, or the last X-Forwarded-For hop a trusted proxy added."""
        peer = flask.request.remote_addr or "?"
        forwarded = flask.request.headers.get("X-Forwarded-For", "")
        if forwarded and self.trusted(peer):
            return forwarded.split(",")[-1].strip()[:64] or peer
        return peer

    def from_header(self, users: dict[str, tuple[Principal, str | None]]) -> Principal | flask.Response | None:
        """The SSO proxy's user, when the header is configured and the request comes from a trusted proxy."""
        if not self.header:
            return None
        name = flask.request.headers.get(self.header)
        if name is None:
            return None
        if not self.trusted(flask.request.remote_addr):
            log.warning("ignored %s from untrusted address %s", self.header, flask.request.remote_addr)
            return None
        found = users.get(name.strip())
        if found is None:
            shown = f"{name.strip()[:NAME_MAX]!r}"
            self.audit_sso(name.strip()[:NAME_MAX], None)
            if flask.request.path.startswith(("/api/", "/_dash-")):
                return json_error(f"the SSO user {shown} is not registered here", 403)
            return pages.denied(shown, status=403, unknown_user=True)
        p = found[0]
        self.audit_sso(p.name, p)
        return Principal(p.name, p.role, p.towns, "remote-user")

    def audit_sso(self, name: str, principal: Principal | None) -> None:
        """An SSO visit has no sign-in form: its ``sign-in`` (or, for a name not registered here,
        ``sign-in-failed``) audit row is written when the name comes from an address after
        ``session_idle_minutes`` without a request — once per visit, not once per request."""
        address = self.client_address()
        key, now = f"{name}|{address}|{principal is not None}", time.monotonic()
        with self._sso_lock:
            last = self._sso_seen.get(key)
            self._sso_seen[key] = now
            if len(self._sso_seen) > MAX_SSO_SEEN:
                self._sso_seen = {k: t for k, t in self._sso_seen.items() if now - t < self.idle_s}
        if last is not None and now - last < self.idle_s:
            return
        if principal is None:
            audit.record(self.db_path, f"ip:{address}", None, "sign-in-failed", f"user:{name}",
                         after={"address": address, "known_user": False, "source": "remote-user"})
        else:
            audit.record(self.db_path, principal.name, principal.role.name, "sign-in", f"user:{principal.name}",
                         after={"address": address, "source": "remote-user"})

    def from_session(self) -> Principal | None:
        """The signed-in user; None when there is none or the cookie is of a session that was
        signed out (the cookie is signed, not stored: a copy kept from before the sign-out would
        otherwise still work) or made before sessions had ids."""
        user = flask_login.current_user
        if not getattr(user, "is_authenticated", False):
            return None
        sid = flask.session.get(SID)
        if not isinstance(sid, str) or sid in self.directory.signed_out:
            flask_login.logout_user()
            flask.session.clear()
            return None
        return user.principal

    def anonymous(self, path: str) -> flask.Response:
        """401 JSON for the API and callbacks; a redirect to the sign-in page for pages."""
        if path.startswith(("/api/", "/_dash-")) or flask.request.method not in ("GET", "HEAD"):
            return json_error("sign in first", 401, login=self.prefix + LOGIN)
        target = flask.request.full_path if flask.request.query_string else path
        return flask.redirect(f"{self.prefix}{LOGIN}?next={quote(target, safe='/')}", code=302)

    def before(self) -> flask.Response | None:
        """The principal of this request (set for every route and callback), then the role's gate."""
        path = flask.request.path[len(self.prefix):] if self.prefix else flask.request.path
        users = self.users()
        if path in PUBLIC:
            return None
        if not users and not self.closed:  # no sign-in configured: the app as before (loopback only)
            set_current_principal(LOCAL)
            return cross_site_refusal()
        principal = self.from_header(users) or self.from_session()
        if isinstance(principal, flask.Response):
            return principal
        if principal is None:
            return self.anonymous(path)
        set_current_principal(principal)
        return cross_site_refusal() or gate.check(self.app, principal, path)

    def load_user(self, user_id: str) -> SignedIn | None:
        tag, _, name = user_id.partition("|")
        found = self.directory.users.get(name)
        if found is None or not hmac.compare_digest(session_tag(found[1]), tag):
            return None
        return SignedIn(*found)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SAME_SITE_FETCH = frozenset({"same-origin", "none"})


def cross_site_refusal() -> flask.Response | None:
    """403/415 for a request that changes something and may come from another site's page (CSRF).

    A form on another site can POST ``text/plain`` that parses as JSON, with the user's cookie
    when the browser counts that site as the same (another port of this host) — or none needed
    when no users are configured and the app trusts its loopback visitor. So a POST (any method
    but GET/HEAD/OPTIONS) must be JSON (``application/json``: a cross-site page cannot send it
    without a CORS preflight, which this app never grants), and is refused outright when the
    browser says it comes from another origin (``Sec-Fetch-Site``). Sign-in has its own token."""
    if flask.request.method in SAFE_METHODS:
        return None
    site = flask.request.headers.get("Sec-Fetch-Site")
    if site is not None and site.strip().lower() not in SAME_SITE_FETCH:
        return json_error(f"a request from another site ({site[:20]!r}) may not change anything here", 403)
    if flask.request.mimetype != "application/json":
        return json_error("send the body as application/json", 415)
    return None


def install(app: Dash, settings: Settings, db_path: str) -> Auth:
    """Add sign-in, the per-request principal, the role gate and the security headers to ``app``."""
    check_settings(settings)
    server = app.server
    auth = Auth(app, settings, str(db_path))
    server.extensions[APP_EXTENSION] = auth
    server.secret_key = secrets.token_hex(32)  # replaced by the kept key once users exist
    server.config.update(
        SESSION_COOKIE_NAME="onemap_session", SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=settings.session_cookie_secure, SESSION_REFRESH_EACH_REQUEST=True,
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=settings.session_idle_minutes),
        REMEMBER_COOKIE_HTTPONLY=True, REMEMBER_COOKIE_SAMESITE="Strict")
    manager = flask_login.LoginManager()
    manager.session_protection = "strong"
    manager.user_loader(auth.load_user)
    manager.init_app(server)
    server.before_request(auth.before)
    _routes(auth)
    headers.install_headers(app, settings)
    return auth


def _routes(auth: Auth) -> None:
    server = auth.app.server

    @server.route(CSS)
    def login_css() -> flask.Response:
        return flask.send_file(HERE / "login.css", mimetype="text/css", max_age=3600)

    @server.route(LOGIN, methods=["GET", "POST"])
    def login() -> flask.Response | tuple[str, int] | str:
        if not auth.users() and not auth.closed:
            return flask.redirect(auth.prefix + "/")
        if flask.request.method == "GET":
            return _login_form(auth, pages.lang(), flask.request.args.get("next", ""))
        return _login_post(auth)

    @server.route(LOGOUT, methods=["GET", "POST"])
    def logout() -> flask.Response:
        user = flask_login.current_user
        if getattr(user, "is_authenticated", False):
            p = user.principal
            audit.record(auth.db_path, p.name, p.role.name, "sign-out", f"user:{p.name}",
                         after={"address": auth.client_address()})
        sid = flask.session.get(SID)
        if isinstance(sid, str):
            end_session(auth.db_path, sid, auth.settings.session_idle_minutes)
            auth.directory.signed_out.add(sid)
        flask_login.logout_user()
        flask.session.clear()
        return flask.redirect(auth.prefix + LOGIN + ("?lang=en" if pages.lang() == "en" else ""))


def _login_form(auth: Auth, lang: str, next_url: str, error: str = "", status: int = 200,
                username: str = "") -> tuple[str, int]:
    token = flask.session.get("login_csrf")
    if not isinstance(token, str):
        token = flask.session["login_csrf"] = secrets.token_urlsafe(24)
    return pages.login_page(auth.prefix, lang, next_url, token, error, username), status


def _field(name: str, limit: int) -> str | None:
    value = flask.request.form.get(name, "")
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        return None
    return value


def _login_post(auth: Auth) -> flask.Response | tuple[str, int]:
    lang = pages.lang()
    form = flask.request.form
    if not form or flask.request.mimetype not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return pages.plain(pages.text("bad_form", lang), 400)
    name, password, next_url = _field("username", NAME_MAX * 4), _field("password", PASSWORD_MAX), _field("next", 2000)
    token = flask.session.get("login_csrf")
    if name is None or password is None or next_url is None:
        return pages.plain(pages.text("bad_form", lang), 400)
    if not (isinstance(token, str) and hmac.compare_digest(token, _field("csrf", 100) or "")):
        return _login_form(auth, lang, next_url, pages.text("expired", lang), 400, name)
    address = auth.client_address()
    keys = [f"user:{name}", f"ip:{address}"]
    wait = auth.limiter.retry_after(keys)
    if wait > 0:
        locked = pages.text("locked", lang, minutes=max(1, round(wait / 60)))
        page, status = _login_form(auth, lang, next_url, locked, 429, name)
        response = flask.make_response(page, status)
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    found = auth.users().get(name)
    if not verify_hash(found[1] if found else None, password):
        auth.limiter.fail(keys)
        audit.record(auth.db_path, f"ip:{address}", None, "sign-in-failed", f"user:{name[:NAME_MAX]}",
                     after={"address": address, "known_user": found is not None})
        return _login_form(auth, lang, next_url, pages.text("wrong", lang), 401, name)
    return _signed_in(auth, found, next_url, address, keys)


def _signed_in(auth: Auth, found: tuple[Principal, str | None], next_url: str, address: str,
               keys: list[str]) -> flask.Response:
    principal = found[0]
    auth.limiter.clear(keys)
    flask.session.clear()
    flask_login.login_user(SignedIn(*found))
    flask.session[SID] = secrets.token_urlsafe(24)
    flask.session.permanent = True
    audit.record(auth.db_path, principal.name, principal.role.name, "sign-in", f"user:{principal.name}",
                 after={"address": address})
    return flask.redirect(auth.prefix + safe_next(next_url, principal))


def safe_next(value: str, principal: Principal) -> str:
    """Where to go after signing in: ``value`` when it is a path of this app the role may open,
    else the role's first page (never another site: no scheme, host, ``//`` or backslash)."""
    parts = urlsplit(value or "")
    ok = (value.startswith("/") and not value.startswith("//") and "\\" not in value
          and not parts.scheme and not parts.netloc and value.isprintable())
    page = gate.page_of(parts.path) if ok else None
    if ok and (page is None or principal.may_open(page)):
        return value
    return gate.first_page(principal)


def sign_in_configured(settings: Settings, db_path: str | os.PathLike[str]) -> bool:
    """True when the app asks who is there: users exist for ``db_path``, or an SSO header is set."""
    return bool(settings.auth_remote_user_header) or bool(load_all(db_path))
