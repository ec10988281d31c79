"""``/province`` in Chromium shows what the Spark job wrote: districts in scorecard order with their
scores and coverage shares, the hot cells, a drill-down link only where a safe URL is set."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import urlopen

import duckdb
import pytest

pytestmark = pytest.mark.e2e
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
SONGJIANG_URL = "http://127.0.0.1:9/songjiang/"

if not Path(CHROMIUM).exists():  # pragma: no cover - `make test` installs it (make browser)
    if os.environ.get("CI"):
        pytest.fail("Debian chromium not installed: `make browser` must run before the tests", pytrace=False)
    pytest.skip("Debian chromium not installed (run `make browser`)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(province: dict, demo_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`onemap serve` with province_results set to the job's output (Pingyang's URL is hostile)."""
    root = tmp_path_factory.mktemp("province-serve")
    cfg = root / "onemap.toml"
    cfg.write_text(f'[onemap]\nprovince_results = "{province["out"].as_posix()}"\n'
                   f'[onemap.province_district_urls]\n310117 = "{SONGJIANG_URL}"\n330326 = "javascript:alert(1)"\n',
                   encoding="utf-8")
    port = _free_port()
    log = open(root / "server.log", "w")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen([sys.executable, "-m", "dashboard.cli", "serve", "--db", str(demo_db), "--port",
                             str(port), "--config", str(cfg)], stdout=log, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urlopen(url + "/api/empty.geojson", timeout=1)
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError((root / "server.log").read_text()) from None
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _parquet(province: dict, name: str) -> list[dict]:
    glob = (province["out"] / name).as_posix() + "/*.parquet"
    return duckdb.connect().execute(f"SELECT * FROM read_parquet('{glob}')").df().to_dict("records")


def _rows(page, table: str) -> list[list[str]]:
    page.wait_for_selector(f"#{table} tbody tr", timeout=30_000)
    return page.eval_on_selector_all(f"#{table} tbody tr",
                                     "rows => rows.map(r => [...r.cells].map(c => c.innerText.trim()))")


def test_the_page_shows_the_ranking_the_job_wrote(server: str, browser, province: dict) -> None:
    want = sorted(_parquet(province, "district_rank"), key=lambda r: (r["rank"], r["district"]))
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server + "/province")
    rows = _rows(page, "province-rank")
    assert [r[2] for r in rows] == [w["district"] for w in want]
    assert [r[1] for r in rows] == [w["name"] for w in want]
    assert [r[-2] for r in rows] == [f"{w['score']:.1f}" for w in want]
    assert [r[3] for r in rows] == [f"{w['discovered']:,}" for w in want]
    cov = {c["district"]: c for c in _parquet(province, "coverage_district")}
    assert [r[9] for r in rows] == [f"{100 * cov[w['district']]['area_share']:.1f}%" for w in want]
    assert "全省视图" in page.inner_text("body") and "排名" in page.inner_text("#province-rank")
    # drill-down: a link only for the district with a plain http URL; javascript: is never a link
    links = page.eval_on_selector_all("#province-rank a", "as => as.map(a => a.getAttribute('href'))")
    assert links == [SONGJIANG_URL]
    assert "javascript:alert" not in page.inner_html("#province-page")
    assert errors == []
    page.close()


def test_the_hot_cells_are_the_jobs_most_significant(server: str, browser, province: dict) -> None:
    hot = [h for h in _parquet(province, "hotspots") if h["significant"] and h["z"] > 0]
    hot.sort(key=lambda h: (-h["z"], h["district"], h["h3"]))
    page = browser.new_page()
    page.goto(server + "/province?lang=en")
    rows = _rows(page, "province-hot")
    assert len(rows) == min(30, len(hot)) > 0
    assert [r[1] for r in rows] == [h["h3"] for h in hot[: len(rows)]]
    assert [r[3] for r in rows] == [f"{h['z']:.2f}" for h in hot[: len(rows)]]
    assert "Province view" in page.inner_text("body") and "Rank" in page.inner_text("#province-rank")
    page.close()


@pytest.mark.parametrize("query", ["?lang={{7*7}}", "?lang=<script>alert(1)</script>", "?lang=' OR 1=1 --",
                                   "?district=../../etc/passwd", "?lang=" + "x" * 5000])
def test_hostile_query_strings_get_the_page_not_an_error(server: str, query: str) -> None:
    try:
        with urlopen(server + "/province" + query.replace(" ", "%20").replace("<", "%3C").replace(">", "%3E"),
                     timeout=30) as r:
            status, body = r.status, r.read().decode()
    except HTTPError as exc:
        status, body = exc.code, exc.read().decode()
    assert status == 200 or 400 <= status < 500
    assert "Traceback" not in body and "<script>alert" not in body
