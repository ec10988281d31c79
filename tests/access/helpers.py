"""Helpers for tests of sign-in, roles and audit on the real server (issue 13).

- ``add_user(db, name, role, password, towns)``: ``onemap user add`` as a subprocess;
- ``Served``/``serve(db, ...)``: ``onemap serve`` on a free loopback port (a context manager);
- ``sign_in(base_url, user, password)``: a urllib opener holding the session cookie;
- ``fetch(opener_or_none, url, ...)``: (status, headers, body) without raising on 4xx/5xx;
- ``sign_in_page(page, base_url, user, password)``: sign a Playwright page in through the form;
- the ``signin_server`` fixture (in ``tests/access/conftest.py``): a copy of the demo database
  with users ``USERS`` made by the CLI and a server on it, shared by a test module.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PASSWORD = "correct-horse-42"
# name -> (role, towns); towns are filled in from the demo database by the fixture when None
USERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "admin": ("admin", ()),
    "viewer": ("viewer", ()),
    "wall": ("wall", ()),
    "planner": ("planner", ()),
    "editor": ("editor", ()),
}


def onemap(*args: str, stdin: str | None = None, cwd: Path | None = None,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``onemap ARGS`` in a subprocess (the installed CLI, as a user would)."""
    return subprocess.run([sys.executable, "-m", "dashboard.cli", *args], input=stdin, capture_output=True,
                          text=True, timeout=120, cwd=cwd, env={**os.environ, **(env or {})})


def onemap_here(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``onemap ARGS`` in this process (click's runner; an OnemapError becomes exit code 2 and
    ``onemap: message`` on stderr, as ``dashboard.cli.main`` makes it): fast, for many hostile cases."""
    from click.testing import CliRunner

    from dashboard.cli import cli
    from geo.errors import OnemapError

    result = CliRunner().invoke(cli, list(args), input=stdin)
    if isinstance(result.exception, OnemapError):
        return subprocess.CompletedProcess(list(args), 2, result.stdout, f"onemap: {result.exception}\n")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)


def add_user(db: Path, name: str, role: str, password: str | None = PASSWORD,
             towns: Sequence[str] = (), *, here: bool = False) -> subprocess.CompletedProcess[str]:
    """``onemap user add NAME --role ROLE [--town T]... --password-stdin`` (``--no-password`` for None);
    a subprocess, or in this process with ``here``."""
    run = onemap_here if here else onemap
    args = ["user", "add", name, "--role", role, "--db", str(db)]
    for town in towns:
        args += ["--town", town]
    if password is None:
        return run(*args, "--no-password")
    return run(*args, "--password-stdin", stdin=password + "\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    """A running ``onemap serve``: its base URL, database, log file and process."""

    url: str
    db: Path
    log: Path
    proc: subprocess.Popen[bytes]
    users: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)


@contextlib.contextmanager
def serve(db: Path, *, config: Path | None = None, host: str = "127.0.0.1",
          wait_path: str = "/login.css", timeout_s: float = 120) -> Iterator[Served]:
    """``onemap serve --db DB`` on a free port; waits until ``wait_path`` answers; stops it after."""
    port = free_port()
    log = db.with_name(f"serve-{port}.log")
    args = [sys.executable, "-m", "dashboard.cli", "serve", "--db", str(db), "--port", str(port), "--host", host]
    if config is not None:
        args += ["--config", str(config)]
    with open(log, "w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=db.parent)
    served = Served(f"http://127.0.0.1:{port}", db, log, proc)
    try:
        deadline = time.monotonic() + timeout_s
        while fetch(None, served.url + wait_path, timeout=2)[0] is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start:\n{log.read_text()}")
            time.sleep(0.2)
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def opener(follow_redirects: bool = False) -> urllib.request.OpenerDirector:
    """A urllib opener with its own cookie jar (``.jar``); redirects are returned, not followed."""
    jar = http.cookiejar.CookieJar()
    handlers: list[Any] = [urllib.request.HTTPCookieProcessor(jar)]
    if not follow_redirects:
        handlers.append(_NoRedirect())
    built = urllib.request.build_opener(*handlers)
    built.jar = jar  # type: ignore[attr-defined]
    return built


def fetch(client: urllib.request.OpenerDirector | None, url: str, data: bytes | dict[str, str] | None = None,
          headers: dict[str, str] | None = None, method: str | None = None,
          timeout: float = 60) -> tuple[int | None, dict[str, str], bytes]:
    """(status, headers, body) of a request; 4xx/5xx are answers, not exceptions; None when unreachable."""
    if isinstance(data, dict):
        data = urllib.parse.urlencode(data).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    client = client or opener()
    try:
        with client.open(request, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()
    except (OSError, urllib.error.URLError):
        return None, {}, b""


def login_form(client: urllib.request.OpenerDirector, base_url: str) -> str:
    """GET /login with ``client`` (its cookie jar takes the session) and return the form's CSRF token."""
    status, _, body = fetch(client, base_url + "/login")
    assert status == 200, (status, body[:300])
    found = re.search(rb'name="csrf" value="([^"]+)"', body)
    assert found, body[:500]
    return found.group(1).decode()


def post_login(client: urllib.request.OpenerDirector, base_url: str, user: str, password: str,
               next_url: str = "", **extra: str) -> tuple[int | None, dict[str, str], bytes]:
    """POST the sign-in form (after GETting it for its token) with ``client``."""
    token = login_form(client, base_url)
    return fetch(client, base_url + "/login",
                 {"username": user, "password": password, "next": next_url, "csrf": token, **extra})


def sign_in(base_url: str, user: str, password: str = PASSWORD) -> urllib.request.OpenerDirector:
    """An opener signed in as ``user`` (AssertionError when the server does not redirect after the form)."""
    client = opener()
    status, headers, body = post_login(client, base_url, user, password)
    assert status == 302, (status, body[:300])
    return client


def sign_in_page(page: Any, base_url: str, user: str, password: str = PASSWORD, next_url: str = "") -> None:
    """Sign a Playwright page in through the real form; waits until it has left /login."""
    query = f"?next={urllib.parse.quote(next_url)}" if next_url else ""
    page.goto(base_url + "/login" + query)
    page.fill("#username", user)
    page.fill("#password", password)
    with page.expect_navigation():
        page.click("button[type=submit]")


def demo_towns(db: Path) -> list[str]:
    """The towns (街镇) of a demo database, as the user commands check them."""
    from dashboard.access.users import known_towns

    return known_towns(db)


@contextlib.contextmanager
def signin_app(source_db: Path, root: Path, users: dict[str, tuple[str, tuple[str, ...]]] | None = None,
               config_text: str = "") -> Iterator[Served]:
    """A copy of ``source_db`` under ``root`` with ``users`` (default ``USERS``, all with ``PASSWORD``)
    made by ``onemap user add``, and ``onemap serve`` on it; the first user must be an admin."""
    import shutil

    db = root / "demo.duckdb"
    shutil.copyfile(source_db, db)
    wanted = users if users is not None else USERS
    for name, (role, towns) in wanted.items():
        done = add_user(db, name, role, PASSWORD, towns)
        assert done.returncode == 0, done.stderr
    config = None
    if config_text:
        config = root / "onemap.toml"
        config.write_text(config_text, encoding="utf-8")
    with serve(db, config=config) as served:
        served.users = dict(wanted)
        yield served


def signin_server_fixture(scope: str = "module", config_text: str = "") -> Any:
    """A pytest fixture factory: ``signin_server = signin_server_fixture()`` in a test module gives
    a ``Served`` with ``USERS`` on a copy of the session's demo database."""
    import pytest

    @pytest.fixture(scope=scope)
    def signin_server(demo_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
        with signin_app(demo_db, tmp_path_factory.mktemp("signin"), config_text=config_text) as served:
            yield served

    return signin_server
