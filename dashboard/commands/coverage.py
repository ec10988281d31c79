"""CLI commands of this topic (filled by its issue)."""

import click

COMMANDS: list[click.Command] = []
