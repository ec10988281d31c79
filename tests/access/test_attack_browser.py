"""Audit gaps found by attacking issue 13, in a real browser: the /review print button.

The print button is the app's report of /review (the CLI's is ``onemap report``); before the
fix it was a browser-only ``window.print()`` and left no audit row, so a town's printed figures
left no trace of who printed what.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from helpers import CHROMIUM, CHROMIUM_ARGS, Served, sign_in_page, signin_app

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def town(demo_db: Path) -> str:
    with duckdb.connect(str(demo_db), read_only=True) as con:
        return con.execute("SELECT town FROM hazard WHERE town IS NOT NULL GROUP BY town "
                           "ORDER BY count(*) DESC, town LIMIT 1").fetchone()[0]


@pytest.fixture(scope="module")
def server(demo_db: Path, town: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    users = {"admin": ("admin", ()), "tv": ("viewer", (town,))}
    with signin_app(demo_db, tmp_path_factory.mktemp("attack-browser"), users) as served:
        yield served


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium not installed (run `make browser`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_printing_the_review_leaves_a_report_row_with_its_towns(browser: Any, server: Served, town: str) -> None:
    from dashboard.access import audit

    page = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.add_init_script("window.print = () => { window.__printed = (window.__printed || 0) + 1; };")
    sign_in_page(page, server.url, "tv", next_url="/review")
    page.wait_for_selector("#review-print", timeout=60_000)
    page.wait_for_function("() => /\\d/.test(document.querySelector('#review-total')?.textContent || '')",
                           timeout=60_000)
    assert audit.rows(server.db, actor="tv", action="report") == []
    page.click("#review-print")
    page.wait_for_function("() => window.__printed === 1", timeout=30_000)  # the browser still prints
    found = audit.rows(server.db, actor="tv", action="report")
    assert len(found) == 1, found
    row = found[0]
    after = row["after"] if isinstance(row["after"], dict) else json.loads(row["after"])
    assert row["role"] == "viewer" and row["object"] == "review:print"
    assert after["towns"] == [town] and after["start"] and after["end"]
    assert audit.verify(server.db).ok
    assert not errors, errors
