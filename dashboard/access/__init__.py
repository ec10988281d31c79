"""Who may see and do what (issue 13): users, roles, town scope, the audit trail.

The contract the rest of the app codes against:

- ``ROLES``: what each role may open and do, and whether it sees personal fields unmasked;
- ``Principal``: who is asking (a signed-in user, a trusted SSO header, a feed token, or the
  local single user when no users are configured) with their role and town scope;
- ``current_principal()``: the principal of the running request (set by
  ``dashboard.access.web`` before every request), else ``LOCAL`` (CLI, tests without a server).

The scope is applied on the server, never taken from the client: a route or callback reads
``current_principal()`` and restricts what it reads (``dashboard.access.scope``).
"""

from __future__ import annotations

from dataclasses import dataclass

PAGES: tuple[str, ...] = ("home", "wall", "plan", "review", "audit", "province")
"""Pages by name: ``/``, ``/wall``, ``/plan``, ``/review`` and the admin's ``/audit``."""

ACTIONS: tuple[str, ...] = (
    "read",              # map data, figures, feature details
    "export",            # export-map, CSV/JSON exports
    "report",            # the printed handout
    "scenario.publish",  # save and publish a /plan scenario
    "status.change",     # hazard workflow changes
    "import",            # data imports (files, feed)
    "users",             # user and token administration
    "audit.read",        # the audit trail
)


@dataclass(frozen=True)
class Role:
    """A role: the pages it may open, the actions it may take, whether personal fields show unmasked."""

    name: str
    pages: frozenset[str]
    actions: frozenset[str]
    personal: bool
    label_zh: str


_READ = frozenset({"read", "export", "report"})
_ALL_PAGES = frozenset(PAGES) - {"audit"}
ROLES: dict[str, Role] = {
    r.name: r
    for r in (
        Role("wall", frozenset({"wall"}), frozenset({"read"}), False, "大屏"),
        Role("viewer", _ALL_PAGES, _READ, False, "查看"),
        Role("planner", _ALL_PAGES, _READ | {"scenario.publish"}, False, "规划"),
        Role("editor", _ALL_PAGES, _READ | {"status.change", "import"}, True, "编辑"),
        Role("admin", frozenset(PAGES), frozenset(ACTIONS), True, "管理员"),
    )
}


@dataclass(frozen=True)
class Principal:
    """Who is asking. ``towns`` None: the whole district; else only these towns (街镇).

    ``source``: how they were recognised — ``local`` (no users configured: the single user of a
    loopback-only app, as before sign-in existed), ``password``, ``remote-user`` (the SSO
    proxy's trusted header) or ``token`` (a feed token; ``name`` is its source).
    """

    name: str
    role: Role
    towns: tuple[str, ...] | None = None
    source: str = "password"

    def may(self, action: str) -> bool:
        """True when the role may take ``action`` (one of ``ACTIONS``)."""
        return action in self.role.actions

    def may_open(self, page: str) -> bool:
        """True when the role may open page ``page`` (one of ``PAGES``)."""
        return page in self.role.pages

    @property
    def sees_personal(self) -> bool:
        """Personal fields unmasked (names, phones, ID numbers)."""
        return self.role.personal

    @property
    def whole_district(self) -> bool:
        """Not limited to some towns."""
        return self.towns is None


LOCAL = Principal("local", ROLES["admin"], None, "local")
"""With no users configured: the app's single local user, who sees everything (loopback only)."""

ANONYMOUS = Principal("anonymous", Role("anonymous", frozenset(), frozenset(), False, "未登录"), (), "anonymous")
"""Nobody signed in, in an app with sign-in: no page, no action, no town."""

_G_KEY = "onemap_principal"
APP_EXTENSION = "onemap_auth"
"""Key of ``flask.current_app.extensions`` set by ``dashboard.access.web.install``."""


def current_principal() -> Principal:
    """The principal of the running request (``flask.g``).

    Outside a request (CLI, tests calling functions): ``LOCAL``. In a request of an app with
    sign-in installed whose principal was not set (the sign-in page itself): ``ANONYMOUS`` —
    never more than was proven. In a bare Flask app without sign-in: ``LOCAL``."""
    import flask

    if not flask.has_request_context():
        return LOCAL
    found = flask.g.get(_G_KEY)
    if isinstance(found, Principal):
        return found
    return ANONYMOUS if APP_EXTENSION in flask.current_app.extensions else LOCAL


def set_current_principal(principal: Principal) -> None:
    """Set the request's principal (``dashboard.access.web`` does, before every request)."""
    import flask

    setattr(flask.g, _G_KEY, principal)
