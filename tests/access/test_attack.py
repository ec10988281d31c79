"""Attacks on sign-in, roles, town scope and masking (issue 13), on the real server.

``onemap serve`` on a copy of the demo district with users made by ``onemap user add``. Each
test is an attack that worked before its fix: a filter oracle unmasking phone numbers, a
signed-out cookie replayed, a cross-site callback publishing a scenario, the wall account
reading /plan's data through the API, ...
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import duckdb
import pytest
from helpers import PASSWORD, Served, fetch, sign_in, signin_app

TOWN_OF_MOST = "SELECT town FROM hazard WHERE town IS NOT NULL GROUP BY town ORDER BY count(*) DESC, town LIMIT 1"


def sql(db: Path, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(query, params or []).fetchall()


@pytest.fixture(scope="module")
def town(demo_db: Path) -> str:
    return sql(demo_db, TOWN_OF_MOST)[0][0]


@pytest.fixture(scope="module")
def server(demo_db: Path, town: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    users = {"admin": ("admin", ()), "tv": ("viewer", (town,)), "dv": ("viewer", ()), "kiosk": ("wall", ()),
             "pl": ("planner", ()), "ed": ("editor", ())}
    with signin_app(demo_db, tmp_path_factory.mktemp("attack"), users) as served:
        yield served


@pytest.fixture(scope="module")
def clients(server: Served) -> dict[str, Any]:
    return {name: sign_in(server.url, name, PASSWORD) for name in server.users}


def features(status_body: tuple[int | None, dict[str, str], bytes]) -> list[dict[str, Any]]:
    status, _, body = status_body
    assert status == 200, (status, body[:300])
    return json.loads(body)["features"]


def points_url(layer: str, flt: dict[str, Any], view: str = "points") -> str:
    return f"/api/layer/{layer}/{view}.geojson?f={quote(json.dumps(flt, ensure_ascii=False))}"


# --------------------------------------------------------------------------- masking: no filter oracle


def test_a_filter_on_a_masked_field_is_refused_not_an_oracle(server: Served, clients: dict[str, Any],
                                                             town: str) -> None:
    """A viewer sees ``175****0538``; before the fix ``f={"phone": [10,000 guesses]}`` in ten
    requests of 1,000 told the hidden digits back (the guess that matched was the one point
    left), and ``f={"name": ["廖兰斌"]}`` who among the vulnerable residents is where."""
    phone, name, carer = sql(server.db, "SELECT phone, name, carer FROM vulnerable_person WHERE town = ? "
                                        "AND phone IS NOT NULL LIMIT 1", [town])[0]
    contact = sql(server.db, "SELECT contact FROM key_place WHERE town = ? AND contact IS NOT NULL LIMIT 1",
                  [town])[0][0]
    attempts = [("vulnerable_person", {"phone": [phone, phone[:-1] + "0"]}), ("vulnerable_person", {"name": [name]}),
                ("vulnerable_person", {"carer": [carer]}), ("key_place", {"contact": [contact]})]
    for who in ("tv", "dv", "kiosk", "pl"):
        for layer, flt in attempts:
            for view in ("points", "hex"):
                status, _, body = fetch(clients[who], server.url + points_url(layer, flt, view))
                assert status == 400, (who, layer, flt, view, status, body[:200])
                answer = json.loads(body)["error"]
                assert "personal" in answer and phone not in answer and name not in answer, answer
    # an editor sees the fields and may filter on them: exactly the resident with that phone
    expected = sql(server.db, "SELECT count(*) FROM vulnerable_person WHERE phone = ?", [phone])[0][0]
    found = features(fetch(clients["ed"], server.url + points_url("vulnerable_person", {"phone": [phone]})))
    assert len(found) == expected >= 1
    # a field that is not personal stays a filter for everyone (a key place's own name)
    place = sql(server.db, "SELECT name FROM key_place WHERE town = ? LIMIT 1", [town])[0][0]
    want = sql(server.db, "SELECT count(*) FROM key_place WHERE town = ? AND name = ?", [town, place])[0][0]
    assert len(features(fetch(clients["tv"], server.url + points_url("key_place", {"name": [place]})))) == want


def _plan_count_body(layer: str, flt: dict[str, Any]) -> dict[str, Any]:
    return {"output": "plan-f-count.children", "outputs": {"id": "plan-f-count", "property": "children"},
            "inputs": [{"id": "plan-filters", "property": "data", "value": {layer: {"f": flt}}},
                       {"id": "plan-f-layer", "property": "value", "value": layer}],
            "state": [{"id": "plan-lang", "property": "data", "value": "zh"}],
            "changedPropIds": ["plan-filters.data"]}


def test_the_plan_count_callback_is_no_oracle_either(server: Served, clients: dict[str, Any], town: str) -> None:
    """The /plan filter panel's count (a Dash callback) counted a phone filter as well."""
    phone = sql(server.db, "SELECT phone FROM vulnerable_person WHERE town = ? AND phone IS NOT NULL LIMIT 1",
                [town])[0][0]
    body = json.dumps(_plan_count_body("vulnerable_person", {"phone": [phone]})).encode()
    headers = {"Content-Type": "application/json"}
    status, _, answer = fetch(clients["dv"], server.url + "/_dash-update-component", body, headers)
    assert status == 400 and b"personal" in answer, (status, answer[:300])
    status, _, answer = fetch(clients["ed"], server.url + "/_dash-update-component", body, headers)
    assert status == 200, (status, answer[:300])
    n = sql(server.db, "SELECT count(*) FROM vulnerable_person WHERE phone = ?", [phone])[0][0]
    assert json.loads(answer)["response"]["plan-f-count"]["children"].endswith(f": {n:,}")


# --------------------------------------------------------------------------- sessions


def _cookie_header(client: Any) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{c.name}={c.value}" for c in client.jar)}


def test_a_signed_out_cookie_replayed_is_refused(server: Served) -> None:
    """The session cookie is signed, not stored: before the fix a copy kept from before /logout
    (a shared PC, a proxy log) still read the API after the user had signed out."""
    client = sign_in(server.url, "dv", PASSWORD)
    kept = _cookie_header(client)
    assert fetch(None, server.url + "/api/v1/scenarios", headers=kept)[0] == 200
    other = sign_in(server.url, "dv", PASSWORD)  # the same user at another desk
    status, headers, _ = fetch(client, server.url + "/logout")
    assert status == 302 and "/login" in headers["Location"]
    for path in ("/api/v1/scenarios", "/api/polygons/grid.geojson", "/_dash-layout"):
        status, _, body = fetch(None, server.url + path, headers=kept)
        assert status == 401, (path, status, body[:200])
    status, headers, _ = fetch(None, server.url + "/review", headers=kept)
    assert status == 302 and "/login" in headers["Location"]
    # signing out one session leaves the user's other sessions alone
    assert fetch(other, server.url + "/api/v1/scenarios")[0] == 200
    # and signing in again works
    assert fetch(sign_in(server.url, "dv", PASSWORD), server.url + "/api/v1/scenarios")[0] == 200


# --------------------------------------------------------------------------- cross-site requests (CSRF)


def _publish_body(db: Path, name: str) -> bytes:
    station = sql(db, "SELECT id FROM fire_station ORDER BY id LIMIT 1")[0][0]
    body = {"output": "plan-publish-msg.children", "outputs": {"id": "plan-publish-msg", "property": "children"},
            "inputs": [{"id": "plan-publish", "property": "n_clicks", "value": 1}],
            "state": [{"id": "plan-publish-name", "property": "value", "value": name},
                      {"id": "plan-edits", "property": "data", "value": [{"action": "remove", "id": station}]},
                      {"id": "plan-session", "property": "data", "value": uuid.uuid4().hex},
                      {"id": "plan-responder", "property": "value", "value": "fire_station"},
                      {"id": "plan-lang", "property": "data", "value": "zh"}],
            "changedPropIds": ["plan-publish.n_clicks"]}
    return json.dumps(body).encode()


def _published(client: Any, url: str) -> list[str]:
    status, _, body = fetch(client, url + "/api/v1/scenarios")
    assert status == 200, (status, body[:200])
    return [s["name"] for s in json.loads(body)]


FORGED: list[dict[str, str]] = [
    {"Content-Type": "text/plain"},  # what <form enctype="text/plain"> sends: its body parsed as JSON anyway
    {"Content-Type": "application/x-www-form-urlencoded"},
    {"Content-Type": "multipart/form-data; boundary=x"},
    {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"},
    {"Content-Type": "application/json", "Sec-Fetch-Site": "same-site"},  # another port of this host
]


def test_a_cross_site_form_cannot_publish_through_the_callback(server: Served, clients: dict[str, Any]) -> None:
    """Before the fix the /plan 发布方案 callback took a ``text/plain`` body from any origin: a
    page on another port of the intranet host (same site, so SameSite=Strict sends the cookie)
    published a scenario in the planner's name."""
    planner = clients["pl"]
    for i, headers in enumerate(FORGED):
        name = f"forged-{i}"
        status, _, body = fetch(planner, server.url + "/_dash-update-component", _publish_body(server.db, name),
                                {**headers, "Origin": "http://evil.example"})
        assert status in (403, 415), (headers, status, body[:200])
        assert "error" in json.loads(body)
        assert name not in _published(planner, server.url)
    # the same request as the app's own page sends it works (and is published)
    status, _, body = fetch(planner, server.url + "/_dash-update-component", _publish_body(server.db, "own-page"),
                            {"Content-Type": "application/json", "Sec-Fetch-Site": "same-origin"})
    assert status == 200, body[:300]
    assert "own-page" in _published(planner, server.url)


def test_a_cross_site_status_change_is_refused(server: Served, clients: dict[str, Any]) -> None:
    """The JSON action routes refuse a request the browser marks as coming from another site."""
    hazard, status_now = sql(server.db, "SELECT id, status FROM hazard WHERE status <> '结案' ORDER BY id LIMIT 1")[0]
    body = json.dumps({"status": "结案"}).encode()
    url = server.url + f"/api/v1/hazard/{quote(hazard)}/status"
    for site in ("cross-site", "same-site"):
        status, _, answer = fetch(clients["ed"], url, body, {"Content-Type": "application/json", "Sec-Fetch-Site": site})
        assert status == 403, (site, status, answer[:200])
    status, _, answer = fetch(clients["ed"], url, body, {"Content-Type": "text/plain"})
    assert status == 415, (status, answer[:200])
    assert sql(server.db, "SELECT status FROM hazard WHERE id = ?", [hazard])[0][0] == status_now


def test_without_users_a_cross_site_form_cannot_act_as_the_local_admin(demo_db: Path, tmp_path: Path) -> None:
    """With no users the loopback visitor is the local admin, no cookie needed: any web page the
    operator opens could POST to http://127.0.0.1:port and publish (before the fix)."""
    import shutil

    from helpers import serve

    db = tmp_path / "open.duckdb"
    shutil.copyfile(demo_db, db)
    with serve(db, wait_path="/api/empty.geojson") as served:
        status, _, body = fetch(None, served.url + "/_dash-update-component", _publish_body(db, "forged-local"),
                                {"Content-Type": "text/plain", "Origin": "http://evil.example"})
        assert status == 415, (status, body[:300])
        status, _, body = fetch(None, served.url + "/_dash-update-component", _publish_body(db, "forged-local"),
                                {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"})
        assert status == 403, (status, body[:300])
        assert "forged-local" not in _published(None, served.url)
        status, _, body = fetch(None, served.url + "/_dash-update-component", _publish_body(db, "local-own"),
                                {"Content-Type": "application/json"})
        assert status == 200, body[:300]
        assert "local-own" in _published(None, served.url)


# --------------------------------------------------------------------------- one page's data through the API


def test_the_wall_account_cannot_read_plan_or_review_data_through_the_api(server: Served,
                                                                         clients: dict[str, Any]) -> None:
    """The wall opens /wall only; before the fix it read /plan's isochrones, /review's hot spots
    and the published scenarios straight from the API (every role has ``read``)."""
    status, _, body = fetch(clients["pl"], server.url + "/_dash-update-component", _publish_body(server.db, "for-wall"),
                            {"Content-Type": "application/json"})
    assert status == 200, body[:300]
    listed = json.loads(fetch(clients["pl"], server.url + "/api/v1/scenarios")[2])
    sid = next(s["id"] for s in listed if s["name"] == "for-wall")
    from geo.settings import Settings

    minutes = f"{float(Settings().isochrone_minutes[0]):g}"
    plan_only = [f"/api/overlay/plan-iso.geojson?responder=fire_station&minutes={minutes}",
                 "/api/overlay/review-hot.geojson?start=&end=", "/api/v1/scenarios", f"/api/v1/scenarios/{sid}",
                 "/api/overlay/nopage.geojson"]
    for path in plan_only:
        status, _, body = fetch(clients["kiosk"], server.url + path)
        assert status == 403, (path, status, body[:200])
        assert "kiosk" in json.loads(body)["error"]
    for path in plan_only[:4]:  # a viewer opens /plan and /review: the same URLs answer
        status, _, body = fetch(clients["dv"], server.url + path)
        assert status == 200, (path, status, body[:200])
    # the wall's own map data still answers
    for path in ("/api/layer/hazard/hex.geojson", "/api/polygons/grid.geojson?fields=map", "/api/roads.geojson"):
        assert fetch(clients["kiosk"], server.url + path)[0] == 200, path


def test_a_dash_page_without_a_role_rule_is_refused_to_everyone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A page added to ``pages/`` but not to ``PAGE_PATHS`` used to be open to every role (the
    gate knew no page there, the router callback let it render); now no role opens it."""
    import dash

    from dashboard.access import ROLES, Principal, gate

    monkeypatch.setitem(dash.page_registry, "pages.secret", {"path": "/secret", "module": "pages.secret"})
    assert gate.page_of("/secret") == gate.page_of("/secret/") == gate.UNLISTED
    assert not any(Principal(r, ROLES[r]).may_open(gate.page_of("/secret")) for r in ROLES)
    assert gate.page_of("/plan") == "plan" and gate.page_of("/nothing-here") is None


# --------------------------------------------------------------------------- a scope that names no town


def test_a_user_whose_town_list_is_empty_sees_no_town_not_the_district(server: Served, town: str) -> None:
    """``towns = []`` in the control database (a hand edit, an import of users) read back as
    "no limit": the whole district. It must read as no town at all."""
    from helpers import add_user, onemap

    from dashboard.access.control import open_control

    assert add_user(server.db, "emptied", "viewer", PASSWORD, [town]).returncode == 0
    with open_control(server.db) as con:
        con.execute("UPDATE users SET towns = []::VARCHAR[] WHERE name = 'emptied'")
    client = sign_in(server.url, "emptied", PASSWORD)
    for path in ("/api/layer/hazard/points.geojson", "/api/polygons/grid.geojson", "/api/polygons/admin_area.geojson"):
        assert features(fetch(client, server.url + path)) == [], path
    hazard = sql(server.db, "SELECT id FROM hazard WHERE town = ? LIMIT 1", [town])[0][0]
    assert fetch(client, server.url + f"/api/feature/hazard/{quote(hazard)}")[0] == 404
    listed = onemap("user", "list", "--db", str(server.db))
    line = next(x for x in listed.stdout.splitlines() if x.startswith("emptied"))
    assert "whole district" not in line and "no town" in line, line


# --------------------------------------------------------------------------- the role gate after a passing failure


def test_a_page_that_failed_once_is_learned_again_for_the_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gate learns which page each callback updates by building every page's layout once. A
    page whose layout failed that one time (a busy database; a data file without a layer the page
    reads, imported a minute later) kept its callbacks refused to every role but the admin until
    the server restarted; now it is learned again ``RETRY_S`` later."""
    import dash
    from dash import Dash, Input, Output, html

    from dashboard.access import callbacks

    state = {"broken": True, "now": 0.0}

    def layout(lang: str = "zh") -> Any:
        if state["broken"]:
            raise RuntimeError("Catalog Error: Table with name alarm does not exist!")
        return html.Div([html.Button(id="flaky-go"), html.Div(id="flaky-out")])

    monkeypatch.setitem(dash.page_registry, "pages.flaky", {"path": "/flaky", "module": "pages.flaky", "layout": layout})
    app = Dash(__name__)
    app.layout = html.Div(id="root")
    app.callback(Output("flaky-out", "children"), Input("flaky-go", "n_clicks"))(lambda n: n)
    gate = callbacks.CallbackPages(clock=lambda: state["now"])
    assert gate.pages(app, "flaky-out.children") == frozenset()  # not known: refused to all but the admin
    state["broken"] = False
    state["now"] = gate.RETRY_S / 2
    assert gate.pages(app, "flaky-out.children") == frozenset()  # not retried at every request
    state["now"] = gate.RETRY_S + 1
    assert gate.pages(app, "flaky-out.children") == frozenset({"flaky"})
    state["broken"], state["now"] = True, 10 * gate.RETRY_S
    assert gate.pages(app, "flaky-out.children") == frozenset({"flaky"})  # learned for good: no more retries


# --------------------------------------------------------------------------- SSO visits and the rate limit behind a proxy

SSO_PROXY = "127.0.0.2"  # the trusted proxy; 127.0.0.1 is a browser


@pytest.fixture(scope="module")
def sso_server(demo_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    config = ('[onemap]\nauth_remote_user_header = "X-Remote-User"\n'
              f'auth_trusted_proxies = ["{SSO_PROXY}"]\nlogin_max_failures = 3\n')
    users = {"admin": ("admin", ()), "dv": ("viewer", ())}
    with signin_app(demo_db, tmp_path_factory.mktemp("sso"), users, config_text=config) as served:
        yield served


def _from_proxy(base: str, path: str, user: str, client_ip: str) -> int:
    import http.client
    from urllib.parse import urlsplit

    url = urlsplit(base)
    con = http.client.HTTPConnection(url.hostname, url.port, timeout=60, source_address=(SSO_PROXY, 0))
    try:
        con.request("GET", path, headers={"X-Remote-User": user, "X-Forwarded-For": client_ip})
        answer = con.getresponse()
        answer.read()
        return answer.status
    finally:
        con.close()


def test_an_sso_visit_leaves_one_sign_in_row_and_an_unknown_name_a_failed_one(sso_server: Served) -> None:
    """A user let in by the SSO proxy's header never meets the sign-in form, so before the fix
    the trail had no ``sign-in`` row for them, and none for a name not registered here."""
    from dashboard.access import audit

    for _ in range(3):  # one visit of several requests: one row
        assert _from_proxy(sso_server.url, "/api/v1/scenarios", "dv", "10.1.2.3") == 200
        assert _from_proxy(sso_server.url, "/api/v1/scenarios", "ghost", "10.1.2.4") == 403
    signed = [r for r in audit.rows(sso_server.db, actor="dv", action="sign-in")]
    assert len(signed) == 1, signed
    assert signed[0]["role"] == "viewer" and "10.1.2.3" in json.dumps(signed[0]["after"])
    failed = [r for r in audit.rows(sso_server.db, action="sign-in-failed") if r["object"] == "user:ghost"]
    assert len(failed) == 1 and failed[0]["actor"] == "ip:10.1.2.4", failed
    assert audit.verify(sso_server.db).ok


def test_x_forwarded_for_from_a_browser_does_not_escape_the_rate_limit(sso_server: Served) -> None:
    """Failed sign-ins lock the client address; a browser (not the trusted proxy) sending a new
    ``X-Forwarded-For`` with every try is still one address."""
    from helpers import login_form, opener

    client = opener()
    for i in range(3):
        token = login_form(client, sso_server.url)
        status, _, _ = fetch(client, sso_server.url + "/login",
                             {"username": f"guess{i}", "password": "wrong-password", "next": "", "csrf": token},
                             headers={"X-Forwarded-For": f"10.9.0.{i}"})
        assert status == 401, status
    token = login_form(client, sso_server.url)
    status, headers, _ = fetch(client, sso_server.url + "/login",
                               {"username": "dv", "password": PASSWORD, "next": "", "csrf": token},
                               headers={"X-Forwarded-For": "10.9.0.99"})
    assert status == 429 and int(headers["Retry-After"]) > 0, status


def _proxy_sign_in(base: str, user: str, password: str, client_ip: str) -> int:
    """The sign-in form through the trusted proxy for the client ``client_ip``: its status."""
    import http.client
    import re
    from urllib.parse import urlencode, urlsplit

    url = urlsplit(base)

    def send(method: str, path: str, headers: dict[str, str], body: str | None = None) -> Any:
        con = http.client.HTTPConnection(url.hostname, url.port, timeout=60, source_address=(SSO_PROXY, 0))
        con.request(method, path, body=body, headers={"X-Forwarded-For": client_ip, **headers})
        answer = con.getresponse()
        answer.body = answer.read()
        con.close()
        return answer

    form = send("GET", "/login", {})
    cookie = form.getheader("Set-Cookie").split(";")[0]
    token = re.search(rb'name="csrf" value="([^"]+)"', form.body).group(1).decode()
    body = urlencode({"username": user, "password": password, "next": "", "csrf": token})
    return send("POST", "/login", {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"},
                body).status


def test_behind_the_proxy_one_client_locked_out_does_not_lock_the_others(sso_server: Served) -> None:
    """Waitress dropped X-Forwarded-For before the app saw it, so behind the reverse proxy every
    visitor had the proxy's address: three wrong passwords from anyone locked everyone's sign-in
    for ``login_lock_minutes``, and every audit row named the proxy."""
    from dashboard.access import audit

    for i in range(3):
        assert _proxy_sign_in(sso_server.url, f"guess{i}", "wrong-password", "10.7.0.1") == 401
    assert _proxy_sign_in(sso_server.url, "dv", PASSWORD, "10.7.0.1") == 429
    assert _proxy_sign_in(sso_server.url, "dv", PASSWORD, "10.7.0.2") == 302  # another desk signs in
    failed = audit.rows(sso_server.db, actor="ip:10.7.0.1", action="sign-in-failed")
    assert len(failed) == 3, failed


# --------------------------------------------------------------------------- changes to a signed-in user


def test_a_role_town_or_removal_applies_to_sessions_already_signed_in(server: Served, town: str) -> None:
    """A session carries only the user's name: role and towns are read again from the control
    database, so a demotion, a move to another town or a removal holds at the next request."""
    from helpers import add_user, onemap

    other = sql(server.db, "SELECT town FROM hazard WHERE town IS NOT NULL AND town <> ? GROUP BY town "
                           "ORDER BY count(*) DESC, town LIMIT 1", [town])[0][0]
    assert add_user(server.db, "mover", "editor", PASSWORD, [town]).returncode == 0
    client = sign_in(server.url, "mover", PASSWORD)

    def towns_seen() -> set[str]:
        return {f["properties"].get("town") for f in features(fetch(client, server.url + "/api/polygons/grid.geojson"))}

    def phone_shown() -> bool:
        grid = features(fetch(client, server.url + "/api/polygons/grid.geojson"))
        return "*" not in grid[0]["properties"]["phone"]

    assert towns_seen() == {town} and phone_shown()
    assert onemap("user", "set", "mover", "--role", "viewer", "--town", other, "--db", str(server.db)).returncode == 0
    assert towns_seen() == {other} and not phone_shown()
    hazard = sql(server.db, "SELECT id FROM hazard WHERE town = ? AND status <> '结案' LIMIT 1", [other])[0][0]
    status, _, _ = fetch(client, server.url + f"/api/v1/hazard/{quote(hazard)}/status",
                         json.dumps({"status": "结案"}).encode(), {"Content-Type": "application/json"})
    assert status == 403
    assert onemap("user", "remove", "mover", "--db", str(server.db)).returncode == 0
    assert fetch(client, server.url + "/api/polygons/grid.geojson")[0] == 401
