"""The admin's /audit page and /plan's publish and export buttons in Debian's Chromium, on the real server
with users: the admin sees the trail, filters it and sees a hand edit named; others are refused; a
planner publishes from /plan (audited), a viewer is told no; hostile URLs and names stay text."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import CHROMIUM, CHROMIUM_ARGS, PASSWORD, Served, add_user, fetch, post_login, opener, serve, \
    sign_in, sign_in_page

from dashboard.access import audit
from dashboard.access.control import open_control

pytestmark = pytest.mark.e2e
USERS = {"admin": "admin", "viewer": "viewer", "planner": "planner"}
HOSTILE_NAME = "<img src=x onerror=alert(1)>{{7*7}}"

if not Path(CHROMIUM).exists():  # pragma: no cover - `make test` installs it
    pytest.skip("Debian chromium not installed (run `make browser`)", allow_module_level=True)


@pytest.fixture(scope="module")
def served(demo_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    db = tmp_path_factory.mktemp("auditpage") / "demo.duckdb"
    shutil.copyfile(demo_db, db)
    for name, role in USERS.items():
        done = add_user(db, name, role, PASSWORD)
        assert done.returncode == 0, done.stderr
    with serve(db) as running:
        post_login(opener(), running.url, HOSTILE_NAME, "nope")  # a failed sign-in with a hostile name
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def new_page(browser: Any, served: Served, user: str) -> Any:
    page = browser.new_page(viewport={"width": 1600, "height": 1000}, accept_downloads=True)
    page.problems = []
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
    page.on("dialog", lambda d: (page.problems.append("dialog " + d.message), d.dismiss()))
    sign_in_page(page, served.url, user)
    return page


def audit_page(page: Any, served: Served, query: str = "") -> None:
    page.goto(f"{served.url}/audit{query}")
    page.wait_for_selector("#audit-verdict", timeout=60_000)


def cells(page: Any, column: int) -> list[str]:
    return page.locator(f"#audit-table td:nth-child({column})").all_inner_texts()


def test_the_admin_sees_the_trail_filters_it_and_sees_it_intact(browser: Any, served: Served) -> None:
    page = new_page(browser, served, "admin")
    audit_page(page, served)
    total = len(audit.rows(served.db, limit=audit.MAX_LIST))
    assert page.inner_text("#audit-verdict").startswith(f"审计链完整：共 {total} 条")
    actions = cells(page, 5)
    assert "sign-in" in actions and "sign-in-failed" in actions
    assert HOSTILE_NAME.replace("{{7*7}}", "") in page.inner_text("#audit-table")  # shown as text
    page.fill("input[name=action]", "sign-in-failed")
    with page.expect_navigation():
        page.click(".om-audit-form button[type=submit]")
    page.wait_for_selector("#audit-table")
    assert set(cells(page, 5)) == {"sign-in-failed"}
    assert "action=sign-in-failed" in page.url
    audit_page(page, served, "?lang=en&actor=admin")
    assert page.inner_text("#audit-verdict").startswith("Audit chain intact")
    assert set(cells(page, 3)) == {"admin"}
    page.screenshot(path=str(Path(__file__).resolve().parents[2] / "test-artifacts" / "audit-page.png"))
    assert page.problems == []
    page.close()


@pytest.mark.parametrize("query", ["?since={{7*7}}", "?limit=abc", "?limit=0", "?action=' OR 1=1 --",
                                   "?until=<script>alert(1)</script>", "?actor=" + "x" * 300, "?limit=99999999"])
def test_hostile_filters_show_a_message_never_an_error(browser: Any, served: Served, query: str) -> None:
    page = new_page(browser, served, "admin")
    audit_page(page, served, query)
    text = page.inner_text(".om-audit")
    assert "筛选条件有误" in text or "没有符合条件的记录" in text
    assert page.problems == []
    page.close()


def test_a_row_edited_by_hand_is_named_on_the_page(browser: Any, served: Served) -> None:
    page = new_page(browser, served, "admin")
    with open_control(served.db) as con:  # by hand, under the control file's lock (the server is running)
        original = con.execute("SELECT actor FROM audit WHERE seq = 2").fetchone()[0]
        con.execute("UPDATE audit SET actor = 'someone else' WHERE seq = 2")
    try:
        audit_page(page, served)
        verdict = page.inner_text("#audit-verdict")
        assert verdict.startswith("审计链被破坏") and "row 2: its fields do not match its hash" in verdict
    finally:
        with open_control(served.db) as con:
            con.execute("UPDATE audit SET actor = ? WHERE seq = 2", [original])
    assert audit.verify(served.db).ok  # put back: the chain is whole again
    page.close()


def test_others_cannot_open_the_audit_page(served: Served) -> None:
    for user in ("viewer", "planner"):
        status, _, body = fetch(sign_in(served.url, user), served.url + "/audit")
        assert status == 403, (user, status)
    assert fetch(None, served.url + "/audit")[0] == 302  # anonymous: to the sign-in page


def _add_station(page: Any) -> None:
    page.wait_for_selector("#plan-fig-area_share_micro_station", timeout=60_000)
    page.click("#plan-add-mode")
    page.wait_for_selector("#plan-add-mode.active")
    box = page.locator("#plan-map").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector(".om-station", timeout=30_000)


def test_a_planner_publishes_and_exports_from_plan_and_both_are_audited(browser: Any, served: Served) -> None:
    page = new_page(browser, served, "planner")
    page.goto(served.url + "/plan")
    _add_station(page)
    page.wait_for_selector("#plan-publish", timeout=30_000)
    page.fill("#plan-publish-name", "</span><script>alert(1)</script>新站方案")
    page.click("#plan-publish")
    page.wait_for_function("() => document.querySelector('#plan-publish-msg').textContent.length > 0",
                           timeout=60_000)
    message = page.inner_text("#plan-publish-msg")
    assert message.startswith("已发布：</span><script>alert(1)</script>新站方案")
    row = audit.rows(served.db, action="scenario-publish", limit=1)[0]
    assert (row["actor"], row["role"]) == ("planner", "planner") and row["after"]["edits"] == 1
    assert row["object"].removeprefix("scenario:") in message
    with page.expect_download() as download:
        page.click("#plan-export-geojson")
    assert download.value.suggested_filename == "scenario.geojson"
    row = audit.rows(served.db, action="export", limit=1)[0]
    assert (row["actor"], row["object"]) == ("planner", "plan:scenario.geojson")
    assert page.problems == []
    page.close()


def test_a_viewer_is_told_they_may_not_publish(browser: Any, served: Served) -> None:
    before = len(audit.rows(served.db, action="scenario-publish", limit=audit.MAX_LIST))
    page = new_page(browser, served, "viewer")
    page.goto(served.url + "/plan?lang=en")
    _add_station(page)
    page.wait_for_selector("#plan-publish", timeout=30_000)
    page.fill("#plan-publish-name", "mine")
    page.click("#plan-publish")
    page.wait_for_function("() => document.querySelector('#plan-publish-msg').textContent.length > 0",
                           timeout=60_000)
    assert page.inner_text("#plan-publish-msg") == "This account (viewer) may not publish scenarios"
    assert len(audit.rows(served.db, action="scenario-publish", limit=audit.MAX_LIST)) == before
    assert page.problems == []
    page.close()
