"""Sign-in settings: hostile values stop `onemap serve` with a clear message, and
`session_cookie_secure` puts the Secure flag on the session cookie."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import PASSWORD, free_port, onemap_here

from dashboard.access import users


@pytest.mark.parametrize("line, message", [
    ('auth_trusted_proxies = ["10.0.0.0/33"]', "not an IP address or network"),
    ('auth_trusted_proxies = ["evil.example"]', "not an IP address or network"),
    ('auth_trusted_proxies = [7]', "auth_trusted_proxies"),
    ('auth_remote_user_header = "X-User\\r\\nX-Admin: 1"', "header name"),
    ('auth_remote_user_header = "X User"', "header name"),
    ('session_cookie_secure = "yes"', "true or false"),
    ("login_max_failures = 0", "greater than 0"),
    ("login_lock_minutes = -1", "login_lock_minutes"),
    ("session_idle_minutes = nan", "session_idle_minutes"),
    ("password_min_length = 0", "greater than 0"),
])
def test_hostile_sign_in_settings_stop_serve_with_a_message(tmp_path: Path, line: str, message: str) -> None:
    config = tmp_path / "onemap.toml"
    config.write_text(f"[onemap]\n{line}\n", encoding="utf-8")
    done = onemap_here("serve", "--config", str(config), "--db", str(tmp_path / "x.duckdb"), "--port", str(free_port()))
    assert done.returncode == 2, done.stdout
    assert message in done.stderr and "serving on" not in done.stdout


@pytest.mark.parametrize("secure", [True, False])
def test_session_cookie_secure_sets_the_secure_flag(copy_demo_db: Path, secure: bool) -> None:
    from dashboard.app import create_app
    from geo.settings import Settings

    users.add_user(copy_demo_db, "boss", "admin", PASSWORD)
    app = create_app(Settings(session_cookie_secure=secure), str(copy_demo_db), warm=False)
    client = app.server.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    answer = client.post("/login", data={"username": "boss", "password": PASSWORD, "next": "", "csrf": token})
    assert answer.status_code == 302
    cookie = next(c for c in answer.headers.getlist("Set-Cookie") if c.startswith("onemap_session="))
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "samesite"} <= flags
    assert ("secure" in flags) is secure


@pytest.mark.parametrize("typed", ["", "None", "sso", PASSWORD])
def test_an_sso_only_user_cannot_sign_in_with_the_form(copy_demo_db: Path, typed: str) -> None:
    from dashboard.app import create_app
    from geo.settings import Settings

    users.add_user(copy_demo_db, "boss", "admin", PASSWORD)
    users.add_user(copy_demo_db, "zhang", "editor", None)
    assert users.verify(copy_demo_db, "zhang", typed) is None
    client = create_app(Settings(), str(copy_demo_db), warm=False).server.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    answer = client.post("/login", data={"username": "zhang", "password": typed, "next": "", "csrf": token})
    assert answer.status_code == 401
    assert client.get("/api/empty.geojson").status_code == 401
