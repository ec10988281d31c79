"""The sign-in form and the SSO header under attack, on the real server: hostile form input
answers 4xx (never a 500), nothing typed is rendered unescaped or as a template, the SSO header
is believed only from the trusted proxy address, security headers are on every answer, and the
session key is kept in the control database (a second server honours the first one's cookie)."""

from __future__ import annotations

import html
import http.client
import json
from urllib.parse import urlsplit

import pytest
from helpers import PASSWORD, fetch, login_form, opener, post_login, serve, sign_in, signin_server_fixture

PROXY = "127.0.0.2"  # the trusted SSO proxy: requests from this loopback address carry the header
signin_server = signin_server_fixture(config_text=(
    '[onemap]\nauth_remote_user_header = "X-Remote-User"\n'
    f'auth_trusted_proxies = ["{PROXY}"]\nlogin_max_failures = 1000\n'))


def _from(source: str, base: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """GET ``path`` from the local address ``source`` (127.0.0.1: a browser; 127.0.0.2: the proxy)."""
    url = urlsplit(base)
    con = http.client.HTTPConnection(url.hostname, url.port, timeout=60, source_address=(source, 0))
    try:
        con.request("GET", path, headers=headers)
        answer = con.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        con.close()


def _no_tracebacks(served) -> None:
    log = served.log.read_text()
    assert "Traceback" not in log and " 500 " not in log, log[-3000:]


def test_the_sso_header_is_believed_only_from_the_trusted_proxy(signin_server) -> None:
    base = signin_server.url
    assert _from(PROXY, base, "/api/empty.geojson", {"X-Remote-User": "viewer"})[0] == 200
    assert _from(PROXY, base, "/plan", {"X-Remote-User": "wall"})[0] == 403  # its role, from the users table
    assert _from(PROXY, base, "/wall", {"X-Remote-User": "wall"})[0] == 200
    for spoofed in ("admin", "viewer"):  # from a browser's address the header is ignored
        assert _from("127.0.0.1", base, "/api/empty.geojson", {"X-Remote-User": spoofed})[0] == 401
        assert _from("127.0.0.1", base, "/plan", {"X-Remote-User": spoofed})[0] == 302
    assert _from(PROXY, base, "/api/empty.geojson", {})[0] == 401  # the proxy without a header: nobody


@pytest.mark.parametrize("name", ["nobody", "<script>alert(1)</script>", "{{7*7}}", "' OR 1=1 --", "", "a" * 5000])
def test_an_unknown_sso_user_gets_the_403_page_escaped(signin_server, name: str) -> None:
    status, headers, body = _from(PROXY, signin_server.url, "/plan", {"X-Remote-User": name})
    assert status == 403 and headers["Content-Type"].startswith("text/html")
    text = body.decode()
    assert "<script>alert" not in text and "49" not in text
    assert len(body) < 4000
    _no_tracebacks(signin_server)


@pytest.mark.parametrize("field, value", [
    ("username", "<script>alert(1)</script>"), ("username", "{{7*7}}"), ("username", "{% print 1 %}${7*7}"),
    ("username", "' OR 1=1 --"), ("username", "admin\u202e"), ("password", "' OR '1'='1"),
    ("password", "{{config}}"), ("next", '"><script>alert(1)</script>'),
])
def test_hostile_form_values_are_refused_and_shown_escaped(signin_server, field: str, value: str) -> None:
    form = {"username": "viewer", "password": "wrong-password", "next": "/plan", field: value}
    status, _, body = post_login(opener(), signin_server.url, form["username"], form["password"], form["next"])
    assert status == 401
    text = body.decode()
    assert "<script>alert" not in text and "SECRET_KEY" not in text
    if field in ("username", "next"):  # shown back verbatim, escaped: never evaluated as a template
        assert f'value="{html.escape(value, quote=True)}"' in text
    _no_tracebacks(signin_server)


@pytest.mark.parametrize("body, content_type, status", [
    (json.dumps({"username": "admin", "password": PASSWORD}).encode(), "application/json", 400),
    (b"username=admin&password=" + PASSWORD.encode(), "text/plain", 400),
    (b"username=ad%00min&password=x&csrf=x", "application/x-www-form-urlencoded", 400),
    (b"username=" + b"a" * 100_000 + b"&password=x", "application/x-www-form-urlencoded", 400),
    (b"password=x", "application/x-www-form-urlencoded", 400),  # no token, no name
    (b"\xff\xfe\x00garbage", "application/x-www-form-urlencoded", 400),
    (b"", "application/x-www-form-urlencoded", 400),
    (b"a" * (9 * 1024 * 1024), "application/x-www-form-urlencoded", 413),
])
def test_malformed_sign_in_requests_are_4xx(signin_server, body: bytes, content_type: str, status: int) -> None:
    client = opener()
    login_form(client, signin_server.url)  # a session with a token: the body itself must be refused
    got, headers, answer = fetch(client, signin_server.url + "/login", body, {"Content-Type": content_type})
    assert got == status, answer[:300]
    assert fetch(client, signin_server.url + "/api/empty.geojson")[0] == 401
    _no_tracebacks(signin_server)


def test_the_form_needs_its_token(signin_server) -> None:
    base = signin_server.url
    form = {"username": "viewer", "password": PASSWORD, "next": "", "csrf": "forged"}
    client = opener()
    login_form(client, base)
    assert fetch(client, base + "/login", form)[0] == 400  # a wrong token
    assert fetch(opener(), base + "/login", form)[0] == 400  # no session: a cross-site post carries no cookie
    assert fetch(client, base + "/api/empty.geojson")[0] == 401


@pytest.mark.parametrize("query", ["?next=%0d%0aSet-Cookie:%20x=1", "?lang=%3Cscript%3E", "?next=%22%3E%3Cscript%3E",
                                   "?next=" + "a" * 5000, "?lang=en&next=/review"])
def test_the_sign_in_page_escapes_its_query(signin_server, query: str) -> None:
    status, headers, body = fetch(None, signin_server.url + "/login" + query)
    assert status == 200 and "Set-Cookie: x" not in str(headers)
    assert b"<script>" not in body
    _no_tracebacks(signin_server)


def test_a_crlf_next_never_reaches_the_location_header(signin_server) -> None:
    status, headers, _ = post_login(opener(), signin_server.url, "viewer", PASSWORD, "/plan\r\nSet-Cookie: x=1")
    assert status == 302 and headers["Location"] == "/"


@pytest.mark.parametrize("path, signed", [("/", True), ("/wall", True), ("/api/empty.geojson", True),
                                          ("/_dash-layout", True), ("/login", False), ("/api/empty.geojson", False),
                                          ("/plan", False)])
def test_security_headers_on_every_answer(signin_server, path: str, signed: bool) -> None:
    client = sign_in(signin_server.url, "admin") if signed else opener()
    status, headers, _ = fetch(client, signin_server.url + path)
    assert status in (200, 302, 401)
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"
    policy = dict(d.strip().split(" ", 1) for d in headers["Content-Security-Policy"].split(";"))
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"]
    assert policy["connect-src"] == "'self'"
    if path.startswith(("/api/", "/login")):
        assert "no-store" in headers["Cache-Control"] or "private" in headers["Cache-Control"]


def test_a_second_server_honours_the_first_ones_session(signin_server) -> None:
    """The session key lives in the control database: a restart (here a second process) keeps sessions."""
    client = sign_in(signin_server.url, "viewer")
    with serve(signin_server.db) as second:
        assert fetch(client, second.url + "/api/empty.geojson")[0] == 200
        assert fetch(opener(), second.url + "/api/empty.geojson")[0] == 401
