"""Sign-in on the real server: anonymous visitors are sent to /login, the form signs in,
a wrong password leaves no session and an audit row, the session cookie is HttpOnly and
SameSite=Strict, and the sign-in page works in Chromium in Chinese and English."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import duckdb
import pytest
from helpers import (CHROMIUM, CHROMIUM_ARGS, PASSWORD, fetch, opener, post_login, sign_in, sign_in_page,
                     signin_server_fixture)

from dashboard.access.control import control_path

signin_server = signin_server_fixture()


def _audit_rows(db: Path, action: str) -> list[tuple]:
    con = duckdb.connect(str(control_path(db)), read_only=True)
    try:
        return con.execute("SELECT actor, role, object, after FROM audit WHERE action = ? ORDER BY seq",
                           [action]).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("path", ["/", "/wall", "/plan?town=x", "/review"])
def test_anonymous_pages_redirect_to_the_sign_in_page_with_next(signin_server, path: str) -> None:
    status, headers, _ = fetch(None, signin_server.url + path)
    assert status == 302
    target = urlsplit(headers["Location"])
    assert target.path == "/login" and parse_qs(target.query)["next"] == [path]


@pytest.mark.parametrize("path", ["/api/empty.geojson", "/api/polygons/grid.geojson", "/api/feature/key_place/1",
                                  "/_dash-layout", "/_dash-dependencies"])
def test_anonymous_api_and_dash_answer_401_json(signin_server, path: str) -> None:
    status, headers, body = fetch(None, signin_server.url + path)
    assert status == 401 and headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["error"] == "sign in first"
    assert b"grid_worker" not in body and b"phone" not in body


def test_anonymous_callback_post_answers_401(signin_server) -> None:
    body = json.dumps({"output": "x.children", "outputs": {"id": "x", "property": "children"}, "inputs": []})
    status, _, answer = fetch(None, signin_server.url + "/_dash-update-component", body.encode(),
                              {"Content-Type": "application/json"})
    assert status == 401 and json.loads(answer)["error"] == "sign in first"


def test_wrong_password_gives_no_session_and_an_audit_row(signin_server) -> None:
    before = len(_audit_rows(signin_server.db, "sign-in-failed"))
    client = opener()
    status, _, body = post_login(client, signin_server.url, "viewer", PASSWORD + "x")
    assert status == 401 and "用户名或密码错误" in body.decode()
    assert fetch(client, signin_server.url + "/api/empty.geojson")[0] == 401
    rows = _audit_rows(signin_server.db, "sign-in-failed")
    assert len(rows) == before + 1
    assert rows[-1][2] == "user:viewer" and json.loads(rows[-1][3])["known_user"] is True


def test_unknown_user_is_refused_like_a_wrong_password(signin_server) -> None:
    status, _, body = post_login(opener(), signin_server.url, "nobody", PASSWORD)
    assert status == 401 and "用户名或密码错误" in body.decode()
    assert json.loads(_audit_rows(signin_server.db, "sign-in-failed")[-1][3])["known_user"] is False


def test_sign_in_sets_a_strict_httponly_cookie_and_opens_the_api(signin_server) -> None:
    before = len(_audit_rows(signin_server.db, "sign-in"))
    client = sign_in(signin_server.url, "viewer")
    cookies = {c.name: c for c in client.jar}
    session = cookies["onemap_session"]
    assert session.has_nonstandard_attr("HttpOnly") and session.get_nonstandard_attr("SameSite") == "Strict"
    assert not session.secure  # session_cookie_secure is off by default (no TLS on loopback)
    assert fetch(client, signin_server.url + "/api/empty.geojson")[0] == 200
    assert fetch(client, signin_server.url + "/plan")[0] == 200
    rows = _audit_rows(signin_server.db, "sign-in")
    assert len(rows) == before + 1 and rows[-1][:3] == ("viewer", "viewer", "user:viewer")


def test_sign_out_ends_the_session(signin_server) -> None:
    client = sign_in(signin_server.url, "viewer")
    assert fetch(client, signin_server.url + "/logout")[0] == 302
    assert fetch(client, signin_server.url + "/api/empty.geojson")[0] == 401
    assert _audit_rows(signin_server.db, "sign-out")[-1][0] == "viewer"


@pytest.mark.parametrize("next_url, lands", [("/review?lang=en", "/review?lang=en"), ("//evil.example/x", "/"),
                                             ("https://evil.example/", "/"), ("/\\evil.example", "/"),
                                             ("javascript:alert(1)", "/"), ("", "/")])
def test_after_sign_in_only_local_paths_are_followed(signin_server, next_url: str, lands: str) -> None:
    status, headers, _ = post_login(opener(), signin_server.url, "viewer", PASSWORD, next_url)
    assert status == 302 and headers["Location"] == lands


def test_the_sign_in_page_in_chromium_zh_and_en(signin_server) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium not installed (run `make browser`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(signin_server.url + "/review")
        assert urlsplit(page.url).path == "/login"
        assert page.locator("button[type=submit]").inner_text() == "登录"
        styled = page.locator("h1").evaluate("e => getComputedStyle(e.parentElement).backgroundColor")
        assert styled == "rgb(255, 255, 255)"  # login.css applied under the CSP
        page.click(".om-login-lang")
        assert page.locator("button[type=submit]").inner_text() == "Sign in"
        page.fill("#username", "viewer")
        page.fill("#password", "wrong-password")
        with page.expect_navigation():
            page.click("button[type=submit]")
        assert page.locator(".om-login-error").inner_text() == "Wrong user name or password."
        assert errors == ["Failed to load resource: the server responded with a status of 401 (UNAUTHORIZED)"]
        errors.clear()  # the refused form answers 401 (no session); the browser logs that, nothing else
        sign_in_page(page, signin_server.url, "viewer", next_url="/review")
        assert urlsplit(page.url).path == "/review"
        page.wait_for_selector(".om-page", timeout=60_000)
        browser.close()
    assert errors == []
