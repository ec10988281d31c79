"""`onemap watch DIR`: ingest the files a platform drops in a folder (issue 12, for sources that cannot POST).

A file is taken once its size and modification time have stood still for
``Settings.watch_settle_s`` (a platform still writing it is left alone; so are names that say
"not finished": a leading dot or ``~``, ``.part``, ``.tmp``, ``.crdownload``). Each taken file
goes through the normal ``onemap ingest`` (rejected rows kept, an audit row per file) and is
then moved to ``DIR/done``; a file that cannot be read goes to ``DIR/failed`` with
``<name>.error.txt`` beside it saying why (so does a file read whole with not one row accepted:
its rows are kept in ``rejected`` as by ``onemap ingest``). The layer is ``--layer`` or the file name's first
word (``alarm_20261206.csv``, ``hazard-week49.xlsx``).
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import click

from dashboard.access import audit
from dashboard.commands import config_option, db_option
from geo.errors import OnemapError
from geo.ingest import ingest_file
from geo.settings import Settings
from layers.registry import LAYERS

TAKEN = {".csv", ".tsv", ".txt", ".xlsx", ".geojson", ".json", ".gpkg", ".parquet", ".zip", ".shp"}
UNFINISHED = (".part", ".tmp", ".crdownload", ".partial", ".filepart", ".swp")
DONE, FAILED = "done", "failed"
LAYER_WORD = re.compile(r"^([a-z_]+?)(?:[-_.\s]|$)")


@dataclass
class Watcher:
    """Sizes and times of the files seen, to take each one only once it has settled."""

    root: Path
    settle_s: float
    seen: dict[str, tuple[int, int, float]] = field(default_factory=dict)  # name → (size, mtime_ns, since)

    def candidates(self) -> list[Path]:
        """Files in the folder that look finished (not hidden, not a temp name, a known format)."""
        out = []
        for path in sorted(self.root.iterdir()):
            name = path.name.lower()
            if (path.is_file() and not name.startswith((".", "~")) and not name.endswith(UNFINISHED)
                    and path.suffix.lower() in TAKEN):
                out.append(path)
        return out

    def settled(self, now: float) -> list[Path]:
        """The candidates whose size and mtime have not changed for ``settle_s`` seconds."""
        ready, names = [], set()
        for path in self.candidates():
            names.add(path.name)
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            # first sight: a file untouched for a while has settled already (its mtime says how long)
            first = (-1, -1, now - max(0.0, min(time.time() - st.st_mtime, self.settle_s)))
            size, mtime, since = self.seen.get(path.name, first)
            if (st.st_size, st.st_mtime_ns) != (size, mtime):
                since = now if size >= 0 else since
                self.seen[path.name] = (st.st_size, st.st_mtime_ns, since)
            if now - since >= self.settle_s and st.st_size > 0:
                ready.append(path)
        self.seen = {k: v for k, v in self.seen.items() if k in names}
        return ready


def layer_of(path: Path, layer: str | None) -> str:
    """``--layer``, else the file name's first word when it names a layer; OnemapError otherwise."""
    if layer:
        return layer
    m = LAYER_WORD.match(path.name.lower())
    word = m.group(1) if m else ""
    if word in LAYERS:
        return word
    for name in sorted(LAYERS, key=len, reverse=True):  # vulnerable_person_2026.csv, key_place-1.csv
        if path.name.lower().startswith(name):
            return name
    raise OnemapError(f"no layer for {path.name!r}: start the file name with one of {', '.join(LAYERS)} "
                      "(alarm_20261206.csv) or pass --layer")


def _move(path: Path, folder: str) -> Path:
    """Move ``path`` into ``root/folder`` (a name already there gets the time appended)."""
    target_dir = path.parent / folder
    target_dir.mkdir(exist_ok=True)
    target = target_dir / path.name
    if target.exists():
        target = target_dir / f"{path.stem}.{datetime.now():%Y%m%d%H%M%S%f}{path.suffix}"
    shutil.move(str(path), target)
    return target


def take(path: Path, layer: str | None, db: str | None, crs: str | None, settings: Settings) -> str:
    """Ingest one settled file and move it to done/ (or failed/ with its reason); one summary line."""
    try:
        name = layer_of(path, layer)
        result = ingest_file(name, path, db=db, crs=crs, settings=settings)
    except (OnemapError, ValueError, OSError, KeyError) as exc:  # the file, not the watcher, is wrong
        _fail(path, f"{type(exc).__name__}: {exc}")
        return f"onemap watch: {path.name} → {FAILED}/ ({exc})"
    audit.record_cli(result.db, "import", f"{name}:{result.file}", after={
        "file": result.file, "layer": name, "sha256": result.sha256, "rows_read": result.rows_read,
        "accepted": result.accepted, "rejected": result.rejected, "via": "watch"})
    line = f"read {result.rows_read:,}, accepted {result.accepted:,}, rejected {result.rejected:,}"
    if result.rows_read and not result.accepted:  # read, but not one row taken: the platform must look
        reasons = ", ".join(f"{code} ×{n}" for code, n in result.rejected_by_reason.items())
        _fail(path, f"no row accepted ({line}; {reasons}); the rows are in the rejected table, "
                    f"file = '{result.file}'")
        return f"onemap watch: {path.name} → {name}: {line} → {FAILED}/"
    _move(path, DONE)
    return f"onemap watch: {path.name} → {name}: {line} → {DONE}/"


def _fail(path: Path, reason: str) -> None:
    """Move ``path`` to failed/ with ``<name>.error.txt`` holding ``reason``."""
    moved = _move(path, FAILED)
    moved.with_name(moved.name + ".error.txt").write_text(reason + "\n", encoding="utf-8")


def _finite(value: float) -> float:
    """click's FloatRange lets NaN through (every comparison is false): refuse it here."""
    if value != value:
        raise click.BadParameter("give seconds between looks (0.1 to 3600), not NaN")
    return value


@click.command(name="watch")
@click.argument("folder", type=click.Path(file_okay=False, exists=True))
@click.option("--layer", type=click.Choice(list(LAYERS)), default=None,
              help="Layer of every file (default: the file name's first word, e.g. alarm_20261206.csv).")
@click.option("--crs", default=None, help="Source coordinates of the files (as `onemap ingest --crs`).")
@click.option("--once", is_flag=True, help="Take the files that have settled, then exit (for cron).")
@click.option("--poll", type=click.FloatRange(0.1, 3600), default=1.0, show_default=True, callback=lambda _c, _p, v: _finite(v),
              help="Seconds between looks at the folder.")
@db_option
@config_option
def watch(folder, layer, crs, once, poll, db, config) -> None:
    """Ingest files dropped in FOLDER: done ones go to FOLDER/done, unreadable ones to FOLDER/failed
    with <name>.error.txt; a file still being written (size or time changing within
    `watch_settle_s`) is left for a later look."""
    settings = Settings.load(config)
    watcher = Watcher(Path(folder), settings.watch_settle_s)
    deadline = time.monotonic() + settings.watch_settle_s + poll if once else None
    while True:
        for path in watcher.settled(time.monotonic()):
            click.echo(take(path, layer, db, crs, settings))
        if deadline is not None and time.monotonic() >= deadline:
            return
        time.sleep(poll)


COMMANDS: list[click.Command] = [watch]
