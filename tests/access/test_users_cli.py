"""`onemap user` on a real control database, as an administrator types it (and as an attacker
would), and `onemap serve --host` refusing the network until sign-in is configured."""

from __future__ import annotations

import json
import time
from pathlib import Path

import duckdb
import pytest
from helpers import PASSWORD, add_user, demo_towns, fetch, free_port, onemap, onemap_here, serve

from dashboard.access.control import control_path


def _users(db: Path) -> list[dict]:
    done = onemap_here("user", "list", "--json", "--db", str(db))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _audit(db: Path) -> list[tuple]:
    con = duckdb.connect(str(control_path(db)), read_only=True)
    try:
        return con.execute("SELECT actor, action, object, before, after FROM audit ORDER BY seq").fetchall()
    finally:
        con.close()


def test_the_first_user_must_be_an_admin(tmp_db: Path) -> None:
    done = add_user(tmp_db, "viewer1", "viewer", here=True)
    assert done.returncode == 2 and "first user must be an admin" in done.stderr
    assert _users(tmp_db) == []
    assert add_user(tmp_db, "boss", "admin", here=True).returncode == 0
    assert add_user(tmp_db, "viewer1", "viewer", here=True).returncode == 0
    assert [(u["name"], u["role"], u["towns"], u["has_password"]) for u in _users(tmp_db)] == [
        ("boss", "admin", None, True), ("viewer1", "viewer", None, True)]


def test_list_never_shows_a_hash_and_the_stored_hash_is_scrypt(tmp_db: Path) -> None:
    assert add_user(tmp_db, "boss", "admin", here=True).returncode == 0
    listed = "".join(onemap_here("user", "list", *more, "--db", str(tmp_db)).stdout for more in ([], ["--json"]))
    assert "scrypt" not in listed and PASSWORD not in listed and "boss" in listed
    con = duckdb.connect(str(control_path(tmp_db)), read_only=True)
    stored = con.execute("SELECT password_hash FROM users").fetchone()[0]
    con.close()
    assert stored.startswith("scrypt:") and PASSWORD not in stored


def test_every_change_leaves_an_audit_row(tmp_db: Path, demo_db: Path) -> None:
    db = tmp_db.with_name("d.duckdb")
    db.write_bytes(demo_db.read_bytes())
    town = demo_towns(db)[0]
    assert add_user(db, "boss", "admin").returncode == 0
    assert add_user(db, "t1", "viewer", towns=[town]).returncode == 0
    assert onemap("user", "set", "t1", "--role", "editor", "--all-towns", "--db", str(db)).returncode == 0
    assert onemap("user", "passwd", "t1", "--password-stdin", "--db", str(db), stdin="another-pass-9\n").returncode == 0
    assert onemap("user", "remove", "t1", "--db", str(db)).returncode == 0
    rows = [r for r in _audit(db) if r[1] == "user-change"]
    assert [r[2] for r in rows] == ["user:boss", "user:t1", "user:t1", "user:t1", "user:t1"]
    assert all(r[0].startswith("local:") for r in rows)
    assert json.loads(rows[1][4])["towns"] == [town]
    assert json.loads(rows[2][3])["role"] == "viewer" and json.loads(rows[2][4]) == {
        "name": "t1", "role": "editor", "towns": None, "has_password": True}
    assert json.loads(rows[4][3])["name"] == "t1" and rows[4][4] is None
    assert "another-pass-9" not in json.dumps(rows)


@pytest.mark.parametrize("name", ["", " boss", "boss ", "a" * 65, "bo\x00ss", "bo\nss", "bo\u200bss", "bo\u202ess",
                                  "local", "Anonymous", "a:b", "../etc", "\x1b[31mred"])
def test_hostile_user_names_are_refused_with_a_clear_message(tmp_db: Path, name: str) -> None:
    if "\x00" in name:  # the OS cannot pass a NUL in an argument; the function refuses it
        from dashboard.access.users import UserError, check_name

        with pytest.raises(UserError, match="control or invisible"):
            check_name(name)
        return
    done = add_user(tmp_db, name, "admin", here=True)
    assert done.returncode == 2, done.stdout
    assert done.stderr.startswith("onemap: ") and "Traceback" not in done.stderr
    assert _users(tmp_db) == []


@pytest.mark.parametrize("name", ["<img src=x onerror=alert(1)>", "{{7*7}}", "' OR 1=1 --", "岳阳街道-张三", "O'Brien"])
def test_odd_but_printable_names_are_stored_verbatim(tmp_db: Path, name: str) -> None:
    assert add_user(tmp_db, "boss", "admin", here=True).returncode == 0
    done = add_user(tmp_db, name, "viewer", here=True)
    assert done.returncode == 0, done.stderr
    assert name in [u["name"] for u in _users(tmp_db)]


@pytest.mark.parametrize("password, message", [("short", "at least 8"), ("x" * 257, "at most 256"),
                                               ("tab\there-long", "control characters"), ("", "at least 8")])
def test_weak_or_hostile_passwords_are_refused(tmp_db: Path, password: str, message: str) -> None:
    done = add_user(tmp_db, "boss", "admin", password=password, here=True)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert _users(tmp_db) == []


@pytest.mark.parametrize("args, message", [
    (["--role", "root"], "Invalid value for '--role'"),
    (["--role", "viewer", "--town", "no such town"], "unknown town"),
    (["--role", "viewer", "--town", "<b>x</b>"], "unknown town"),
    (["--role", "viewer", "--town", ""], "1-64 characters"),
])
def test_bad_roles_and_towns_are_refused(copy_demo_db: Path, args: list[str], message: str) -> None:
    assert add_user(copy_demo_db, "boss", "admin", here=True).returncode == 0
    done = onemap_here("user", "add", "u2", *args, "--password-stdin", "--db", str(copy_demo_db), stdin=PASSWORD + "\n")
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert [u["name"] for u in _users(copy_demo_db)] == ["boss"]


def test_towns_are_checked_against_the_data_file(copy_demo_db: Path) -> None:
    towns = demo_towns(copy_demo_db)
    assert len(towns) >= 2
    assert add_user(copy_demo_db, "boss", "admin").returncode == 0
    assert add_user(copy_demo_db, "t", "viewer", towns=towns[:2]).returncode == 0
    assert next(u for u in _users(copy_demo_db) if u["name"] == "t")["towns"] == sorted(towns[:2])
    done = onemap("user", "set", "t", "--town", towns[0], "--all-towns", "--db", str(copy_demo_db))
    assert done.returncode == 2 and "not both" in done.stderr


def test_the_last_admin_stays(tmp_db: Path) -> None:
    assert add_user(tmp_db, "boss", "admin", here=True).returncode == 0
    assert add_user(tmp_db, "v", "viewer", here=True).returncode == 0
    for args in (["remove", "boss"], ["set", "boss", "--role", "viewer"]):
        done = onemap_here("user", *args, "--db", str(tmp_db))
        assert done.returncode == 2 and "last admin" in done.stderr
    taken = onemap_here("user", "add", "v", "--role", "viewer", "--no-password", "--db", str(tmp_db))
    assert taken.returncode == 2 and "exists already" in taken.stderr
    assert onemap_here("user", "remove", "nobody", "--db", str(tmp_db)).returncode == 2
    nobody = onemap_here("user", "passwd", "nobody", "--password-stdin", "--db", str(tmp_db), stdin="x" * 9)
    assert nobody.returncode == 2 and "no user 'nobody'" in nobody.stderr


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "wall.example.cn"])
def test_serve_on_a_network_address_is_refused_without_users(tmp_path: Path, host: str) -> None:
    db = tmp_path / "none.duckdb"
    done = onemap("serve", "--host", host, "--port", str(free_port()), "--db", str(db), cwd=tmp_path)
    assert done.returncode == 2
    assert "onemap user add admin --role admin" in done.stderr and "Nothing was started" in done.stderr
    assert "serving on" not in done.stdout
    assert not control_path(db).exists()


def test_serve_on_a_network_address_starts_once_an_admin_exists(copy_demo_db: Path) -> None:
    assert add_user(copy_demo_db, "boss", "admin").returncode == 0
    with serve(copy_demo_db, host="0.0.0.0") as served:
        assert fetch(None, served.url + "/api/empty.geojson")[0] == 401
        assert fetch(None, served.url + "/")[0] == 302
        assert onemap_here("user", "remove", "boss", "--db", str(copy_demo_db)).returncode == 0
        time.sleep(0.1)
        # no users left: the running server stays closed (it never falls back to the open local mode)
        assert fetch(None, served.url + "/api/empty.geojson")[0] == 401
        assert fetch(None, served.url + "/")[0] == 302


def test_the_password_is_asked_twice_at_a_hidden_prompt(tmp_db: Path) -> None:
    add = ("user", "add", "boss", "--role", "admin", "--db", str(tmp_db))
    typed = onemap_here(*add, stdin="s3cret-pass\ns3cret-pass\n")
    assert typed.returncode == 0, typed.stderr
    assert "s3cret-pass" not in typed.stdout  # hidden: not echoed
    from dashboard.access.users import verify

    assert verify(tmp_db, "boss", "s3cret-pass") is not None and verify(tmp_db, "boss", "s3cret-pasS") is None
    differ = onemap_here("user", "add", "boss2", *add[3:], stdin="first-pass-1\nother-pass-2\n")
    assert differ.returncode != 0 and "do not match" in differ.stdout + differ.stderr
    assert [u["name"] for u in _users(tmp_db)] == ["boss"]
