"""Core commands: demo, serve, info, layers, settings."""

from __future__ import annotations

import ipaddress
import os

import click

from dashboard.commands import config_option, db_option, echo_json, json_option
from geo import store
from geo.settings import Settings, describe
from layers.registry import LAYERS


def is_loopback(host: str) -> bool:
    """True for a loopback address: 127.0.0.0/8, ::1 (bracketed or IPv4-mapped too) or ``localhost``."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def _refuse_remote_debug(host: str) -> None:
    """Raise a UsageError (exit code 2) unless ``host`` is loopback: the debugger runs any Python."""
    if not is_loopback(host):
        msg = (f"--debug serves only on a loopback address (127.0.0.1, ::1, localhost), and the host is "
               f"{host!r} (from --host or the config's `host`): Flask's debugger runs any Python typed "
               f"into an error page, so it must not be reachable from the network. Nothing was started. "
               f"Use --host 127.0.0.1 with --debug, or drop --debug to serve {host!r} with waitress.")
        raise click.UsageError(msg)


def _refuse_open_network(settings: Settings, db_path: str) -> None:
    """Raise a UsageError (exit code 2) for a non-loopback host while nobody has to sign in."""
    from dashboard.access.web import sign_in_configured

    if is_loopback(settings.host) or sign_in_configured(settings, db_path):
        return
    msg = (f"the host is {settings.host!r} (from --host or the config's `host`), reachable from the network, "
           f"and no users are configured for {db_path}: everyone who can reach the port would read everything, "
           "personal fields included. Nothing was started. Add the first admin with "
           f"`onemap user add admin --role admin --db {db_path}` (then more users with `onemap user add`), "
           "or set `auth_remote_user_header` for an SSO proxy; or serve --host 127.0.0.1.")
    raise click.UsageError(msg)


def _add_new_layer_tables(db_path: str) -> None:
    """A database made before a layer was added (``alarm``, ``device``) gets its empty tables in one
    snapshot write before the app reads it (every page counts every layer's table)."""
    if not os.path.exists(db_path):
        return
    cur = store.Reader(db_path).connection()
    try:
        have = {r[0] for r in cur.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    finally:
        cur.close()
    missing = [name for name in LAYERS if name not in have]
    if missing:
        click.echo(f"onemap: adding the tables of the new layers {', '.join(missing)} to {db_path}")
        with store.writer(db_path):
            pass  # store.writer creates every layer's table in the new snapshot


def _serve(settings: Settings, db: str | None, debug: bool = False) -> None:
    """Serve the app: waitress (a production WSGI server, fit for a wall running for weeks);
    Flask's development server with its reloader in ``debug`` mode, on a loopback address only.
    A non-loopback host needs sign-in configured (``_refuse_open_network``)."""
    if debug:
        _refuse_remote_debug(settings.host)
    db_path = str(store.resolve_db_path(db, settings))
    _refuse_open_network(settings, db_path)
    _add_new_layer_tables(db_path)
    from dashboard.app import create_app

    app = create_app(settings, db_path=db_path)
    click.echo(f"onemap: serving on http://{settings.host}:{settings.port}  (Ctrl+C to stop)")
    if debug:
        app.run(host=settings.host, port=settings.port, debug=True)
        return
    from waitress import serve as waitress_serve

    waitress_serve(
        app.server,
        host=settings.host,
        port=settings.port,
        threads=settings.server_threads,
        ident="onemap",
        # keep X-Forwarded-For: the app believes it only from `auth_trusted_proxies` (the sign-in
        # rate limit and audit rows need the client's address, not the proxy's for everyone)
        clear_untrusted_proxy_headers=False,
    )


@click.command()
@db_option
@config_option
@click.option("--area", default="310117", show_default=True, help="adcode of the real boundary (310117 松江, 310115 浦东, 500154 开州, 330326 平阳).")
@click.option("--scale", default=1.0, show_default=True, type=float, help="Multiply the demo counts (benchmarks use 20+).")
@click.option("--seed", default=2024, show_default=True, type=int, help="Random seed: the same seed gives the same district.")
@click.option("--rebuild", is_flag=True, help="Rebuild the demo database even if it exists.")
@click.option("--no-serve", is_flag=True, help="Build the database, do not start the dashboard.")
@click.option("--host", default=None, help="Listen address (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default 8050).")
@click.option("--live", is_flag=True, help="Serve with the feed simulator posting alarms, heartbeats and hazards (5/s).")
def demo(db, config, area, scale, seed, rebuild, no_serve, host, port, live) -> None:
    """Build the demo district database if it is missing, then serve the dashboard."""
    from data.demo import build_demo

    settings = Settings.load(config, host=host, port=port)
    path = store.resolve_db_path(db, settings)
    if rebuild or not path.exists():
        click.echo(f"onemap: building the demo district {area} (scale {scale}) into {path} ...")
        summary = build_demo(path, area=area, scale=scale, seed=seed)
        for layer, n in summary.items():
            click.echo(f"  {layer:<14} {n:>9,}")
    else:
        click.echo(f"onemap: using the existing database {path} (--rebuild to make it anew)")
    if live and not no_serve:
        from dashboard.commands.simulate import start_live_demo

        start_live_demo(str(path), f"http://127.0.0.1:{settings.port}")
        click.echo("onemap: the feed simulator posts to the app once it answers (onemap simulate, 5 events/s)")
    if not no_serve:
        _serve(settings, str(path))


@click.command()
@db_option
@config_option
@click.option("--host", default=None, help="Listen address (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default 8050).")
@click.option("--debug", is_flag=True,
              help="Dash debug mode (reloads on code change); loopback --host only (127.0.0.1, ::1, localhost).")
def serve(db, config, host, port, debug) -> None:
    """Serve the dashboard on the database."""
    settings = Settings.load(config, host=host, port=port)
    _serve(settings, db, debug)


@click.command()
@db_option
@json_option
def info(db, as_json) -> None:
    """Counts per layer, bounds and the last ingests."""
    con = store.connect(db)
    counts = store.table_counts(con)
    bounds = {}
    for name, n in counts.items():
        if n:
            row = con.execute(f"SELECT min(lon), min(lat), max(lon), max(lat) FROM {name}").fetchone()
            bounds[name] = [round(v, 6) for v in row]
    log = store.query(con, "SELECT file, layer, crs, finished_at, accepted, rejected FROM ingest_log ORDER BY finished_at DESC LIMIT 10")
    if as_json:
        echo_json({"db": str(store.resolve_db_path(db)), "counts": counts, "bounds": bounds, "ingests": log})
        return
    click.echo(f"database: {store.resolve_db_path(db)}")
    for name, n in counts.items():
        spec = LAYERS[name]
        click.echo(f"  {name:<14} {spec.zh:<8} {n:>10,}  {bounds.get(name, '')}")
    if len(log):
        click.echo("last ingests:")
        click.echo(log.to_string(index=False))


@click.command(name="layers")
@json_option
def layers_cmd(as_json) -> None:
    """List the layer specs with their fields and import header aliases."""
    if as_json:
        out = {n: {"zh": s.zh, "en": s.en, "geometry": s.geometry,
                   "fields": [{"name": f.name, "type": f.type, "zh": f.zh, "en": f.en, "required": f.required,
                               "choices": f.choices, "aliases": f.aliases,
                               "value_aliases": dict(f.value_aliases)} for f in s.fields]}
               for n, s in LAYERS.items()}
        echo_json(out)
        return
    for name, spec in LAYERS.items():
        click.echo(f"{name} ({spec.zh} / {spec.en}, {spec.geometry})")
        for f in spec.fields:
            req = "*" if f.required else " "
            choices = f"  [{'/'.join(f.choices)}]" if f.choices else ""
            click.echo(f"  {req} {f.name:<18} {f.zh}  {f.type}{choices}  ← {', '.join(f.aliases)}")
            if f.value_aliases:
                mapped = ", ".join(f"{a}→{c}" for a, c in f.value_aliases)
                click.echo(f"      {'':<18} values also accepted: {mapped}")


@click.command(name="settings")
@json_option
def settings_cmd(as_json) -> None:
    """List every setting with its default and its source (standard or seed)."""
    rows = describe()
    if as_json:
        echo_json({n: {"default": d, "help": h} for n, d, h in rows})
        return
    for name, default, help_text in rows:
        click.echo(f"{name} = {default!r}\n    {help_text}")


COMMANDS: list[click.Command] = [demo, serve, info, layers_cmd, settings_cmd]
