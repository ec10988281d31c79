"""`onemap user add|list|remove|passwd|set`: the app's users, their roles and towns (issue 13).

The users live in the control database beside the data file (``dashboard.access.control``).
The first user must be an admin (``onemap user add admin --role admin``, done at set-up);
every change leaves a ``user-change`` row in the audit trail, by ``local:<os user>``.
"""

from __future__ import annotations

import sys

import click

from dashboard.access import ROLES, audit
from dashboard.access import users as accounts
from dashboard.commands import config_option, db_option, echo_json, json_option
from geo import store
from geo.settings import Settings

_ROLE_HELP = "Role: " + ", ".join(f"{r.name} ({r.label_zh})" for r in ROLES.values()) + "."


def _db(db: str | None, config: str | None) -> tuple[str, Settings]:
    settings = Settings.load(config)
    return str(store.resolve_db_path(db, settings)), settings


def _read_password(from_stdin: bool, min_length: int) -> str:
    """The new password: one line of standard input, or typed twice at a hidden prompt."""
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password[:-1] if password.endswith("\r") else password
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return accounts.check_password(password, min_length)


def _audit(db_path: str, name: str, before: object, after: object) -> None:
    audit.record(db_path, audit.cli_actor(), None, "user-change", f"user:{name}", before, after)


@click.group(name="user")
def user() -> None:
    """Users who sign in to the dashboard: add, list, remove, passwd, set (role and towns)."""


@user.command(name="add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(list(ROLES)), help=_ROLE_HELP)
@click.option("--town", "towns", multiple=True, help="A town (街镇) the user is limited to; repeat for more. "
              "None: the whole district.")
@click.option("--password-stdin", is_flag=True, help="Read the password from one line of standard input.")
@click.option("--no-password", is_flag=True, help="No password: the user signs in only through the SSO proxy's header.")
@db_option
@config_option
def add(name, role, towns, password_stdin, no_password, db, config) -> None:
    """Add user NAME with a role (the first user must be an admin)."""
    db_path, settings = _db(db, config)
    accounts.check_name(name)
    if not accounts.count_users(db_path) and role != "admin":
        raise accounts.UserError("the first user must be an admin: onemap user add NAME --role admin")
    password = None if no_password else _read_password(password_stdin, settings.password_min_length)
    added = accounts.add_user(db_path, name, role, password, list(towns) or None,
                              min_length=settings.password_min_length)
    _audit(db_path, name, None, added)
    scope = "whole district" if added["towns"] is None else (", ".join(added["towns"]) or "no town")
    click.echo(f"onemap: added user {name!r} ({role}, {scope})")


@user.command(name="list")
@db_option
@config_option
@json_option
def list_cmd(db, config, as_json) -> None:
    """List the users: name, role, towns, whether they have a password (never the hash)."""
    db_path, _ = _db(db, config)
    rows = accounts.list_users(db_path)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no users: the app serves 127.0.0.1 only, without sign-in (onemap user add admin --role admin)")
        return
    for r in rows:
        scope = "whole district" if r["towns"] is None else (", ".join(r["towns"]) or "no town")
        login = "password" if r["has_password"] else "SSO only"
        flag = "  (disabled)" if r["disabled"] else ""
        click.echo(f"{r['name']:<20} {r['role']:<8} {login:<9} {scope}{flag}")


@user.command(name="remove")
@click.argument("name")
@db_option
@config_option
def remove(name, db, config) -> None:
    """Remove user NAME (the last admin stays while other users remain)."""
    db_path, _ = _db(db, config)
    removed = accounts.remove_user(db_path, name)
    _audit(db_path, name, removed, None)
    click.echo(f"onemap: removed user {name!r}")


@user.command(name="passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from one line of standard input.")
@db_option
@config_option
def passwd(name, password_stdin, db, config) -> None:
    """Set the password of NAME (their sessions signed in with the old one end)."""
    db_path, settings = _db(db, config)
    accounts.get_user(db_path, name)  # fails clearly for an unknown user before asking for a password
    accounts.set_password(db_path, name, _read_password(password_stdin, settings.password_min_length),
                          min_length=settings.password_min_length)
    _audit(db_path, name, None, {"password": "changed"})
    click.echo(f"onemap: password of {name!r} changed")


@user.command(name="set")
@click.argument("name")
@click.option("--role", default=None, type=click.Choice(list(ROLES)), help=_ROLE_HELP)
@click.option("--town", "towns", multiple=True, help="Limit the user to this town (街镇); repeat for more.")
@click.option("--all-towns", is_flag=True, help="The whole district (no town limit).")
@db_option
@config_option
def set_cmd(name, role, towns, all_towns, db, config) -> None:
    """Change the role and/or the towns of NAME."""
    if towns and all_towns:
        raise click.UsageError("give --town or --all-towns, not both")
    if role is None and not towns and not all_towns:
        raise click.UsageError("nothing to change: give --role, --town or --all-towns")
    db_path, _ = _db(db, config)
    scope = list(towns) if towns else None
    before, after = (accounts.set_role(db_path, name, role, scope) if towns or all_towns
                     else accounts.set_role(db_path, name, role))
    _audit(db_path, name, before, after)
    shown = "whole district" if after["towns"] is None else (", ".join(after["towns"]) or "no town")
    click.echo(f"onemap: {name!r} is {after['role']} ({shown})")


COMMANDS: list[click.Command] = [user]
