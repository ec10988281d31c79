"""The sign-in rate limit and the idle timeout on the real server, with short windows
(3 failures in 6 s; sessions end after 6 s without a request) so the test sees them pass."""

from __future__ import annotations

import time

import duckdb
from helpers import PASSWORD, fetch, opener, post_login, sign_in, signin_server_fixture

from dashboard.access.control import control_path

WINDOW_S = 6.0
signin_server = signin_server_fixture(config_text=f"[onemap]\nlogin_max_failures = 3\n"
                                                  f"login_lock_minutes = {WINDOW_S / 60}\n"
                                                  f"session_idle_minutes = {WINDOW_S / 60}\n")


def _failures(db) -> int:
    con = duckdb.connect(str(control_path(db)), read_only=True)
    try:
        return con.execute("SELECT count(*) FROM audit WHERE action = 'sign-in-failed'").fetchone()[0]
    finally:
        con.close()


def test_failures_lock_the_name_then_the_window_passes(signin_server) -> None:
    base, db = signin_server.url, signin_server.db
    before = _failures(db)
    for _ in range(3):
        assert post_login(opener(), base, "viewer", "wrong-password")[0] == 401
    locked_at = time.monotonic()
    status, headers, body = post_login(opener(), base, "viewer", PASSWORD)  # the right password, still locked
    assert status == 429 and 1 <= int(headers["Retry-After"]) <= WINDOW_S + 1
    assert "登录失败次数过多" in body.decode()
    assert post_login(opener(), base, "editor", PASSWORD)[0] == 429  # the address is locked too
    assert _failures(db) == before + 3  # locked attempts are not even checked
    time.sleep(max(0.0, WINDOW_S + 0.5 - (time.monotonic() - locked_at)))
    assert post_login(opener(), base, "viewer", PASSWORD)[0] == 302


def test_a_session_ends_after_the_idle_time_but_not_while_used(signin_server) -> None:
    base = signin_server.url
    client = sign_in(base, "wall")
    for _ in range(4):  # a wall polling more often than the idle time stays signed in
        time.sleep(WINDOW_S / 3)
        assert fetch(client, base + "/api/empty.geojson")[0] == 200
    time.sleep(WINDOW_S + 1)
    assert fetch(client, base + "/api/empty.geojson")[0] == 401
