"""`onemap audit` (list and filter the audit trail) and `onemap audit verify` (walk its hash chain)."""

from __future__ import annotations

import sys
from typing import Any

import click

from dashboard.access import audit
from dashboard.access.control import control_path
from dashboard.commands import config_option, db_option, echo_json, json_option
from geo import store
from geo.errors import StoreError, ValidationError
from geo.settings import Settings

SHOWN_CHANGE = 60  # characters of before/after shown per row in the text listing


def _db(db: str | None, config: str | None) -> str:
    """The data file whose control file holds the trail; a clear error when neither exists (a typo)."""
    path = store.resolve_db_path(db, Settings.load(config))
    if not path.exists() and not control_path(path).exists():
        raise StoreError(f"database {path} not found (nor its control file {control_path(path).name}); "
                         "pass --db or set ONEMAP_DB")
    return str(path)


def _short(value: Any) -> str:
    text = "" if value is None else audit._json(value) if not isinstance(value, str) else value
    return text if len(text) <= SHOWN_CHANGE else text[:SHOWN_CHANGE] + "…"


def _echo_rows(found: list[dict[str, Any]]) -> None:
    if not found:
        click.echo("onemap: no audit rows match")
        return
    for r in found:
        change = " → ".join(x for x in (_short(r["before"]), _short(r["after"])) if x)
        # repr() of user-made text: a name with control characters cannot rewrite the terminal
        click.echo(f"{r['seq']:>6}  {r['at']}  {r['actor']!r:<20} {r['role'] or '-':<8} {r['action']:<16} "
                   f"{r['object']!r}  {change}")


@click.group(name="audit", invoke_without_command=True)
@db_option
@config_option
@click.option("--actor", default=None, help="Only rows of this actor (user name, token source, local:<os user>).")
@click.option("--action", "action", type=click.Choice(audit.AUDIT_ACTIONS), default=None, help="Only this action.")
@click.option("--since", default=None, help="From this date or time (YYYY-MM-DD[THH:MM], inclusive).")
@click.option("--until", default=None, help="Before this date or time (exclusive).")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, audit.MAX_LIST),
              help="Most rows shown, newest first.")
@json_option
@click.pass_context
def audit_cmd(ctx: click.Context, db, config, actor, action, since, until, limit, as_json) -> None:
    """The audit trail (审计日志), newest first: who did what, when, to what. `audit verify` checks it."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"db": db, "config": config}
        return
    found = audit.rows(_db(db, config), actor=actor, action=action, since=since, until=until, limit=limit)
    if as_json:
        echo_json(found)
        return
    _echo_rows(found)


@audit_cmd.command(name="verify")
@db_option
@config_option
@click.option("--anchor", "anchors", multiple=True, metavar="SEQ:HASH",
              help="A head noted earlier (printed by verify); the row must still have that hash. Repeatable.")
@json_option
@click.pass_context
def verify_cmd(ctx: click.Context, db, config, anchors, as_json) -> None:
    """Walk the hash chain: exit 0 when intact, 1 when a row was edited, deleted or inserted (named)."""
    outer = ctx.obj or {}
    path = _db(db or outer.get("db"), config or outer.get("config"))
    try:
        marks = tuple(audit.parse_anchor(a) for a in anchors)
    except ValidationError as exc:
        raise click.BadParameter(str(exc), param_hint="--anchor") from None
    verdict = audit.verify(path, marks)
    if as_json:
        echo_json(verdict.to_dict())
    elif verdict.ok:
        head = f"head {verdict.head_seq}:{verdict.head_hash}" if verdict.rows else "no rows yet"
        click.echo(f"onemap: audit trail intact: {verdict.rows:,} rows, {head}")
    else:
        click.echo(f"onemap: audit trail BROKEN ({len(verdict.problems)} problems, {verdict.rows:,} rows):")
        for problem in verdict.problems:
            click.echo(f"  {problem}")
    for warning in verdict.warnings if not as_json else ():
        click.echo(f"  warning: {warning}", err=True)
    if not verdict.ok:
        sys.exit(1)  # not ctx.exit: click returns its code silently when not standalone


COMMANDS: list[click.Command] = [audit_cmd]
