"""The `onemap` command. Each topic's commands live in `dashboard/commands/<topic>.py`
and export ``COMMANDS``; this module only gathers them."""

from __future__ import annotations

import importlib
import sys

import click

from geo.errors import OnemapError

# Topic modules, each with a COMMANDS list of click commands.
COMMAND_MODULES = ("core", "ingest", "coverage", "figures", "report", "calibrate", "response", "audit", "users", "deploy", "province", "tokens", "watch", "simulate")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="onemap")
def cli() -> None:
    """onemap 一图作战: fire-safety situational awareness for districts, towns and streets."""


for _name in COMMAND_MODULES:
    for _command in importlib.import_module(f"dashboard.commands.{_name}").COMMANDS:
        cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI; an OnemapError becomes one clear line and exit code 2."""
    try:
        cli.main(args=argv, standalone_mode=False)
    except OnemapError as exc:
        click.echo(f"onemap: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
