"""`onemap token create|list|revoke`: feed tokens for `POST /api/v1/events/<layer>` (issue 12).

A token is printed once by ``create`` and stored hashed in the control database
(``dashboard.access.tokens``); every change leaves a ``user-change`` audit row.
"""

from __future__ import annotations

import click

from dashboard.access import audit
from dashboard.access import tokens as keys
from dashboard.commands import config_option, db_option, echo_json, json_option
from geo import store
from geo.settings import Settings


def _db(db: str | None, config: str | None) -> str:
    return str(store.resolve_db_path(db, Settings.load(config)))


@click.group(name="token")
def token() -> None:
    """Feed tokens: create (printed once), list, revoke."""


@token.command(name="create")
@click.option("--source", required=True, help="Name of the platform that posts with it (12345, iot-smoke ...).")
@click.option("--layers", required=True, help="Comma-separated layers it may write, e.g. hazard,incident.")
@db_option
@config_option
@json_option
def create(source, layers, db, config, as_json) -> None:
    """Create a token for SOURCE writing LAYERS; it is printed once, keep it."""
    db_path = _db(db, config)
    text, row = keys.create(db_path, source, layers)
    audit.record_cli(db_path, "user-change", f"token:{row.id}", None,
                     {"source": row.source, "layers": list(row.layers)})
    if as_json:
        echo_json({**row.to_dict(), "token": text})
        return
    click.echo(text)
    click.echo(f"onemap: token {row.id} for {row.source!r} writing {', '.join(row.layers)} "
               "(shown once; store it in the platform's configuration)", err=True)


@token.command(name="list")
@db_option
@config_option
@json_option
def list_cmd(db, config, as_json) -> None:
    """List the tokens: id, source, layers, created, revoked (never a secret)."""
    rows = keys.list_tokens(_db(db, config))
    if as_json:
        echo_json([r.to_dict() for r in rows])
        return
    if not rows:
        click.echo("no tokens (onemap token create --source NAME --layers hazard)")
    for r in rows:
        state = f"revoked {r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else "active"
        click.echo(f"{r.id}  {r.source:<20} {','.join(r.layers):<24} {r.created_at:%Y-%m-%d %H:%M}  {state}")


@token.command(name="revoke")
@click.argument("token_id")
@db_option
@config_option
def revoke(token_id, db, config) -> None:
    """Revoke token TOKEN_ID (its id from `onemap token list`); it stops working at once."""
    db_path = _db(db, config)
    row = keys.revoke(db_path, token_id)
    audit.record_cli(db_path, "user-change", f"token:{row.id}", {"source": row.source}, {"revoked": True})
    click.echo(f"onemap: token {row.id} of {row.source!r} revoked")


COMMANDS = [token]
