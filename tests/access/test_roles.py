"""Roles enforced by the real server: the wall account opens /wall only and fires only the wall
page's callbacks, every role reads the API, a changed role or password takes effect at once,
and each role's pages load in Chromium under the Content-Security-Policy without console errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import (CHROMIUM, CHROMIUM_ARGS, add_user, fetch, onemap, opener, post_login, sign_in, sign_in_page,
                     signin_server_fixture)

from dashboard.access import ROLES

signin_server = signin_server_fixture()
PAGES = {"/": "home", "/wall": "wall", "/plan": "plan", "/review": "review"}


def _dependencies(client, base: str) -> list[dict]:
    status, _, body = fetch(client, base + "/_dash-dependencies")
    assert status == 200
    return json.loads(body)


def _post_callback(client, base: str, body: dict) -> tuple[int | None, dict]:
    status, _, answer = fetch(client, base + "/_dash-update-component", json.dumps(body).encode(),
                              {"Content-Type": "application/json"})
    return status, json.loads(answer) if answer.startswith(b"{") else {}


def _as_request(dep: dict) -> dict:
    """A well-formed request for a declared callback (values None: the shape check may refuse it with 400)."""
    outs = dep["output"].strip(".").split("...") if dep["output"].startswith("..") else [dep["output"]]
    outputs = [dict(zip(("id", "property"), o.split("@")[0].rsplit(".", 1), strict=True)) for o in outs]
    return {"output": dep["output"], "outputs": outputs if len(outputs) > 1 else outputs[0],
            "inputs": [{**i, "value": None} for i in dep["inputs"]],
            "state": [{**s, "value": None} for s in dep["state"]], "changedPropIds": []}


@pytest.mark.parametrize("role", list(ROLES))
def test_each_role_opens_exactly_its_pages(signin_server, role: str) -> None:
    client = sign_in(signin_server.url, role)
    for path, page in PAGES.items():
        status, headers, body = fetch(client, signin_server.url + path)
        allowed = page in ROLES[role].pages
        assert status == (200 if allowed else 403), (role, path, status)
        if not allowed:
            assert headers["Content-Type"].startswith("text/html") and "无权" in body.decode()
    assert fetch(client, signin_server.url + "/api/empty.geojson")[0] == 200  # every role may read


def test_the_wall_account_fires_only_wall_callbacks(signin_server) -> None:
    base = signin_server.url
    client = sign_in(base, "wall")
    deps = [d for d in _dependencies(client, base) if not d.get("clientside_function")]
    wall = [d for d in deps if d["output"].lstrip(".").startswith("wall-")]
    others = [d for d in deps if d["output"].lstrip(".").split("-")[0] in ("plan", "review", "home")]
    assert wall and others
    for dep in others:
        status, answer = _post_callback(client, base, _as_request(dep))
        assert status == 403, (dep["output"], status, answer)
        assert "may not update" in answer["error"]
    for dep in wall:  # past the role gate: Dash's input check (400) or the callback itself answers
        status, answer = _post_callback(client, base, _as_request(dep))
        assert status != 403 and "may not" not in answer.get("error", ""), (dep["output"], answer)


@pytest.mark.parametrize("path, status", [("/wall", 200), ("/plan", 403), ("/review", 403), ("/", 403),
                                          ("/no-such-page", 200)])
def test_the_pages_router_renders_only_allowed_pages_for_the_wall(signin_server, path: str, status: int) -> None:
    base = signin_server.url
    client = sign_in(base, "wall")
    router = next(d for d in _dependencies(client, base) if "_pages_content.children" in d["output"])
    body = _as_request(router)
    body["inputs"] = [{"id": "_pages_location", "property": "pathname", "value": path},
                      {"id": "_pages_location", "property": "search", "value": ""}]
    got, answer = _post_callback(client, base, body)
    assert got == status, answer
    if status == 200:
        assert "_pages_content" in answer["response"]


def test_the_viewer_fires_plan_callbacks_the_wall_cannot(signin_server) -> None:
    base = signin_server.url
    dep = next(d for d in _dependencies(sign_in(base, "viewer"), base) if d["output"] == "plan-worst-box.children")
    assert _post_callback(sign_in(base, "viewer"), base, _as_request(dep))[0] in (200, 204, 400)
    assert _post_callback(sign_in(base, "wall"), base, _as_request(dep))[0] == 403


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"output": "no-such.children"}', b'{"output": 5}',
                                  b"[" * 5000 + b"]" * 5000])
def test_a_malformed_callback_request_of_a_signed_in_user_is_4xx(signin_server, body: bytes) -> None:
    status, _, answer = fetch(sign_in(signin_server.url, "wall"), signin_server.url + "/_dash-update-component",
                              body, {"Content-Type": "application/json"})
    assert status == 400 and json.loads(answer)["error"]


def test_a_role_change_takes_effect_on_the_next_request(signin_server) -> None:
    base, db = signin_server.url, signin_server.db
    assert add_user(db, "shifting", "viewer").returncode == 0
    client = sign_in(base, "shifting")
    assert fetch(client, base + "/plan")[0] == 200
    assert onemap("user", "set", "shifting", "--role", "wall", "--db", str(db)).returncode == 0
    assert fetch(client, base + "/plan")[0] == 403 and fetch(client, base + "/wall")[0] == 200
    assert onemap("user", "remove", "shifting", "--db", str(db)).returncode == 0
    assert fetch(client, base + "/wall")[0] == 302  # removed: signed out


def test_a_new_password_ends_the_old_sessions(signin_server) -> None:
    base, db = signin_server.url, signin_server.db
    assert add_user(db, "rotating", "viewer").returncode == 0
    client = sign_in(base, "rotating")
    assert fetch(client, base + "/api/empty.geojson")[0] == 200
    done = onemap("user", "passwd", "rotating", "--password-stdin", "--db", str(db), stdin="a-new-password-7\n")
    assert done.returncode == 0, done.stderr
    assert fetch(client, base + "/api/empty.geojson")[0] == 401
    assert post_login(opener(), base, "rotating", "a-new-password-7")[0] == 302


@pytest.mark.parametrize("role", ["wall", "viewer", "admin"])
def test_pages_load_clean_in_chromium_for_each_role(signin_server, role: str) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium not installed (run `make browser`)")
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 900})
        page.on("console", lambda m: errors.append(f"{page.url}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
        sign_in_page(page, signin_server.url, role)
        for path, name in PAGES.items():
            if name not in ROLES[role].pages:
                continue
            page.goto(signin_server.url + path)
            page.wait_for_selector(".om-page, .om-wall", timeout=60_000)
            page.wait_for_load_state("networkidle", timeout=60_000)
        browser.close()
    assert errors == []
