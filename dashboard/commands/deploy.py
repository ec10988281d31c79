"""Running onemap on an intranet machine: `onemap backup` (a consistent copy while the app
serves) and `onemap bundle` (one folder with every wheel and Debian package an offline
machine needs, for `make demo BUNDLE=…` and `make test BUNDLE=…`).

Backup: the data file is replaced whole by each write (``geo.store.writer`` swaps a new
snapshot in by rename, holding ``<db>.lock``), so the copy is taken holding that same lock:
no snapshot is swapped in between the copy and the table counts it is checked against. The
control file (users, audit trail; ``dashboard.access.control``) is changed in place, so it is
checkpointed and copied under its own lock, with the audit head sidecar beside it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import click

from dashboard.access.audit import head_path
from dashboard.access.control import control_path, open_control
from dashboard.commands import config_option, db_option, echo_json, json_option
from geo import store
from geo.journal import journal_path
from geo.errors import OnemapError
from geo.settings import Settings

BACKUP_SUFFIX = ".duckdb"
DEFAULT_WAIT_S = 600
"""How long `onemap backup` waits for a running write (an ingest) to finish before giving up."""
MAX_NAME_BYTES = 200
"""Longest backup file name accepted (leaves room for the ``.control.duckdb.audit-head`` suffix)."""


class BackupError(OnemapError):
    """A backup could not be written or did not check out; nothing half-written is left."""


class BundleError(OnemapError):
    """The offline bundle could not be built; the message says which step and why."""


# =========================================================================== backup


@dataclass
class BackupResult:
    """What `onemap backup` wrote: the copies, the table counts they were checked on, the time."""

    source: str
    path: str
    bytes: int
    tables: dict[str, int]
    control: str | None = None
    control_tables: dict[str, int] = field(default_factory=dict)
    audit_head: str | None = None
    journal: str | None = None
    seconds: float = 0.0


def backup_target(dest: str, db: Path, now: datetime) -> Path:
    """The file a backup of ``db`` goes to: ``dest`` itself (a name ending in ``.duckdb``), or in
    directory ``dest`` (existing, or written with a trailing ``/``) a dated ``<stem>-<time>.duckdb``.

    Refuses, with the reason, any target that is or would overwrite a live file or an earlier
    backup, whose folder is missing, or whose name is not a plain ``*.duckdb`` file name."""
    if not dest or "\x00" in dest:
        raise BackupError("DEST is empty or holds a NUL byte: give a folder or a file name ending in .duckdb")
    raw = Path(dest).expanduser()
    longest = max((len(os.fsencode(part)) for part in raw.parts), default=0)
    if longest > MAX_NAME_BYTES:
        raise BackupError(f"DEST: a name in it is {longest} bytes long; use at most {MAX_NAME_BYTES}")
    if dest.endswith(("/", os.sep)) or raw.is_dir():
        folder = raw
        stamp = now.strftime("%Y%m%d-%H%M%S")
        target = folder / f"{db.stem}-{stamp}{BACKUP_SUFFIX}"
        n = 2
        while _taken(target):
            target, n = folder / f"{db.stem}-{stamp}-{n}{BACKUP_SUFFIX}", n + 1
    else:
        target = raw
        if target.suffix != BACKUP_SUFFIX or target.name == BACKUP_SUFFIX:
            raise BackupError(f"DEST {dest!r}: give a folder or a file name ending in {BACKUP_SUFFIX} "
                              f"(so a backup never overwrites another kind of file)")
        if not target.parent.is_dir():
            raise BackupError(f"DEST {dest!r}: folder {str(target.parent)!r} does not exist")
    if len(os.fsencode(target.name)) > MAX_NAME_BYTES:
        raise BackupError(f"DEST: the file name is {len(os.fsencode(target.name))} bytes long; "
                          f"use at most {MAX_NAME_BYTES}")
    _refuse_live(target, db)
    if _taken(target):
        raise BackupError(f"DEST {str(target)!r} (or its .control.duckdb beside it) exists: a backup never "
                          "overwrites a file; choose another name or a folder")
    return target


def _companions(path: Path) -> list[Path]:
    """``path`` and the files that go with it: control file, audit head sidecar, WAL and locks."""
    control = control_path(path)
    return [path, control, head_path(path), journal_path(path), path.with_name(path.name + ".wal"),
            path.with_name(path.name + ".lock"), control.with_name(control.name + ".wal"),
            control.with_name(control.name + ".lock")]


def _taken(target: Path) -> bool:
    return any(p.exists() or p.is_symlink() for p in _companions(target)[:3])


def _refuse_live(target: Path, db: Path) -> None:
    """Refuse a target that is (or links to) the live database or one of the files beside it."""
    live = {p.resolve() for p in _companions(db)}
    mine = {p.resolve() for p in _companions(target)[:3]}
    if live & mine:
        raise BackupError(f"DEST {str(target)!r} is the live database {str(db)!r} or a file beside it; "
                          "back up to another name")


@contextlib.contextmanager
def writer_lock(db: Path, wait_s: float) -> Iterator[None]:
    """Hold the lock ``geo.store.writer`` takes (``<db>.lock``): no snapshot is swapped in meanwhile.

    Waits up to ``wait_s`` for a running write (an ingest, a demo build) to finish."""
    path = db.with_name(db.name + ".lock")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise BackupError(f"cannot open the write lock {str(path)!r}: {exc.strerror}") from None
    try:
        deadline, told = time.monotonic() + wait_s, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise BackupError(f"a write to {str(db)!r} (an ingest?) is still running after "
                                      f"{wait_s:g} s; try again later or raise --wait") from None
                if not told:
                    click.echo("onemap: waiting for a running write (an ingest?) to finish…", err=True)
                    told = True
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _counts(path: Path) -> dict[str, int]:
    """Row count of every table in DuckDB file ``path``, opened read-only."""
    con = store.connect(path, read_only=True)
    try:
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'main' ORDER BY table_name").fetchall()]
        return {n: con.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
    finally:
        con.close()


def _copy_file(src: Path, dst: Path) -> None:
    """Copy ``src`` to a new file ``dst`` and flush it to disk."""
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
        fout.flush()
        os.fsync(fout.fileno())


def _publish(partial: Path, target: Path) -> None:
    """Give the checked ``partial`` its final name, never replacing a file that appeared meanwhile."""
    try:
        os.link(partial, target)
    except FileExistsError:
        raise BackupError(f"{str(target)!r} appeared while the backup ran; nothing was overwritten") from None
    finally:
        partial.unlink(missing_ok=True)
    store.fsync_directory(target.parent)


def _partial(target: Path) -> Path:
    return target.with_name(f".{target.name}.partial-{os.getpid()}")


def _backup_data(db: Path, target: Path, wait_s: float) -> dict[str, int]:
    """Copy the data file under the writer lock, check the copy's counts, publish it."""
    partial = _partial(target)
    try:
        with writer_lock(db, wait_s):
            if not db.is_file():
                raise BackupError(f"database {str(db)!r} not found; nothing to back up")
            expected = _counts(db)
            _copy_file(db, partial)
            if journal_path(db).is_file():  # under the same lock: no fold between the two copies
                _backup_journal(journal_path(db), journal_path(target))
        got = _counts(partial)
        if got != expected:
            raise BackupError(f"the copy's table counts {got} differ from the database's {expected}; "
                              "nothing was kept")
        _publish(partial, target)
        return got
    finally:
        partial.unlink(missing_ok=True)


def _backup_journal(source: Path, dest: Path) -> None:
    """Copy the live feed's journal (``geo.journal``) with SQLite's online backup: a consistent
    copy while the feed appends. Its unfolded events are folded into the restored file when the
    app next runs; without it those acknowledged events would be lost."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


def _backup_control(db: Path, target: Path) -> dict[str, int]:
    """Checkpoint and copy the control file and its audit head sidecar under the control lock."""
    source, dest = control_path(db), control_path(target)
    partial = _partial(dest)
    head_src, head_dst = head_path(db), head_path(target)
    try:
        with open_control(db) as con:
            con.execute("CHECKPOINT")
            names = [r[0] for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
                "ORDER BY table_name").fetchall()]
            expected = {n: con.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
            _copy_file(source, partial)
            if head_src.exists():
                shutil.copyfile(head_src, head_dst)
        got = _control_counts(partial, list(expected))
        if got != expected:
            raise BackupError(f"the control copy's counts {got} differ from {expected}; nothing was kept")
        _publish(partial, dest)
        return got
    except BaseException:
        head_dst.unlink(missing_ok=True)
        raise
    finally:
        partial.unlink(missing_ok=True)


def _control_counts(path: Path, names: list[str]) -> dict[str, int]:
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        return {n: con.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
    finally:
        con.close()


def backup(db: Path, dest: str, wait_s: float = DEFAULT_WAIT_S) -> BackupResult:
    """Back up data file ``db`` (and its control file, if any) to ``dest``; see `backup_target`."""
    started = time.monotonic()
    if not db.is_file():
        raise BackupError(f"database {str(db)!r} not found; nothing to back up")
    try:
        target = backup_target(dest, db, datetime.now())
        target.parent.mkdir(parents=True, exist_ok=True)
        tables = _backup_data(db, target, wait_s)
        result = BackupResult(source=str(db), path=str(target), bytes=target.stat().st_size, tables=tables,
                              journal=str(journal_path(target)) if journal_path(target).exists() else None)
        if control_path(db).is_file():
            result.control_tables = _backup_control(db, target)
            result.control = str(control_path(target))
            result.audit_head = str(head_path(target)) if head_path(target).exists() else None
    except OSError as exc:
        raise BackupError(f"cannot write the backup to {dest!r}: {exc.strerror or exc}") from None
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _finite(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not math.isfinite(value):  # FloatRange lets NaN through: it compares false with both bounds
        raise click.BadParameter(f"{value!r} is not a number of seconds", ctx, param)
    return value


@click.command(name="backup")
@click.argument("dest")
@db_option
@config_option
@click.option("--wait", "wait_s", default=DEFAULT_WAIT_S, show_default=True, type=click.FloatRange(0, 86400),
              callback=_finite, help="Seconds to wait for a running ingest to finish.")
@json_option
def backup_cmd(dest, db, config, wait_s, as_json) -> None:
    """Copy the database (and its users/audit control file) to DEST while the app serves.

    DEST is a folder (a dated onemap-YYYYMMDD-HHMMSS.duckdb is written in it) or a file name
    ending in .duckdb. The copy is taken between two writes, opened and its table counts
    checked; an existing file is never overwritten."""
    path = store.resolve_db_path(db, Settings.load(config))
    result = backup(path, dest, wait_s)
    if as_json:
        echo_json(asdict(result))
        return
    click.echo(f"onemap: backup {result.path}  ({result.bytes / 1e6:.1f} MB, "
               f"{sum(result.tables.values()):,} rows in {len(result.tables)} tables, checked)")
    if result.control:
        click.echo(f"        control {result.control}  ({sum(result.control_tables.values()):,} rows: "
                   f"users, audit, scenarios)")
    if result.journal:
        click.echo(f"        journal {result.journal}  (feed events not yet folded in)")
    click.echo(f"        {result.seconds:.2f} s. Restore: stop the service, copy the file(s) back as "
               f"{path.name} (and {control_path(path).name}, {journal_path(path).name}), start it.")


# =========================================================================== bundle

DEB_PACKAGES: tuple[str, ...] = ("chromium", "fonts-noto-cjk", "poppler-utils", "python3-venv", "make")
"""Debian packages an offline machine may lack: the browser tests and PDF/PNG reports
(chromium, CJK fonts, poppler), and what the two make commands need (make, python3-venv)."""
BASE_PRIORITIES = ("required", "important")
"""A base Debian: the Essential packages, those of these priorities, and their dependencies."""
BUNDLE_MARK = "bundle.json"


def project_root() -> Path:
    """The source tree this onemap runs from (a clone: pyproject.toml and Makefile beside `dashboard/`)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file() or not (root / "Makefile").is_file():
        raise BundleError(f"{root} is not a onemap source tree (no pyproject.toml/Makefile): "
                          "run `make bundle` in a clone")
    return root


def requirements(root: Path) -> dict[str, list[str]]:
    """pyproject's requirement lists: ``app`` (dependencies and the report extra), ``test`` (dev),
    ``build`` (pip and the build system, to install the source tree editable offline)."""
    meta = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    extras = meta["project"].get("optional-dependencies", {})
    return {"app": [*meta["project"]["dependencies"], *extras.get("report", [])],
            "test": list(extras.get("dev", [])),
            "build": ["pip", *meta["build-system"]["requires"]]}


def _stderr() -> int | None:
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def _run(cmd: list[str], what: str, cwd: Path | None = None, quiet: bool = False) -> str:
    """Run ``cmd``; its output goes to stderr (progress) unless ``quiet`` (then returned)."""
    streams = {"capture_output": True} if quiet else {"stdout": _stderr()}
    try:
        done = subprocess.run(cmd, cwd=cwd, text=True, check=False, stdin=subprocess.DEVNULL, **streams)
    except FileNotFoundError:
        raise BundleError(f"{what}: {cmd[0]} not found") from None
    if done.returncode != 0:
        tail = "" if not quiet else ": " + f"{done.stdout}\n{done.stderr}".strip()[-1500:]
        raise BundleError(f"{what} failed (exit {done.returncode}){tail}")
    return done.stdout or ""


def pins() -> str:
    """The versions installed in this Python (known to work: the tests ran on them), as pip constraints."""
    frozen = _run([sys.executable, "-m", "pip", "freeze", "--all", "--exclude-editable"], "pip freeze", quiet=True)
    keep = [line for line in frozen.splitlines()
            if re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*==\S+$", line) and not line.lower().startswith("onemap==")]
    return "\n".join(keep) + "\n"


def _pip_wheels(dest: Path, reqs: list[str], constraints: Path | None, find_links: list[Path]) -> None:
    """Put a wheel of every package ``reqs`` needs (for this Python and platform) in ``dest``."""
    req_file = dest / "requirements.in"
    req_file.write_text("\n".join(reqs) + "\n", encoding="utf-8")
    cmd = [sys.executable, "-m", "pip", "wheel", "--progress-bar", "off", "--wheel-dir", str(dest),
           "-r", str(req_file)]
    cmd += ["--constraint", str(constraints)] if constraints else []
    for folder in find_links:
        cmd += ["--find-links", str(folder)]
    _run(cmd, f"pip wheel into {dest.name}")
    req_file.unlink()


def _drop_duplicates(folder: Path, others: list[Path]) -> None:
    """Remove from ``folder`` the wheels already in ``others`` (each set holds only what it adds)."""
    seen = {p.name for other in others for p in other.glob("*.whl")}
    for wheel in folder.glob("*.whl"):
        if wheel.name in seen:
            wheel.unlink()


def source_files(root: Path) -> list[str]:
    """The project's files to ship: tracked and new (not ignored) files that exist, per git,
    less ``dist/`` and hidden partial folders (where bundles are written)."""
    out = _run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
               "git ls-files (the bundle ships the source of a git clone)", quiet=True)
    names = {name for name in out.split("\0") if name and (root / name).is_file()}
    return sorted(n for n in names if not n.startswith("dist/") and ".partial-" not in n)


def copy_source(root: Path, dest: Path) -> int:
    """Copy the project's source files into ``dest``; returns how many."""
    names = source_files(root)
    for name in names:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)
    return len(names)


def _own_wheel(source: Path, wheels: Path, build: Path) -> None:
    """Build onemap's wheel from the shipped source, offline, with the bundle's build tools."""
    with tempfile.TemporaryDirectory(prefix="onemap-wheel-") as tmp:
        work = Path(tmp) / "src"
        shutil.copytree(source, work)
        _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index", "--find-links", str(build),
              "--progress-bar", "off", "--wheel-dir", str(wheels), str(work)], "building onemap's wheel")


# --------------------------------------------------------------------------- Debian packages


def _stanzas(status_text: str) -> dict[str, dict[str, str]]:
    """Installed packages of a dpkg status file: name → fields (continuation lines joined)."""
    found: dict[str, dict[str, str]] = {}
    for block in status_text.strip().split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if "Package" in fields and "install ok installed" in fields.get("Status", ""):
            fields["_raw"] = block
            found[fields["Package"]] = fields
    return found


def _depends(fields: dict[str, str], installed: dict[str, dict[str, str]], provides: dict[str, str]) -> list[str]:
    """The installed packages that satisfy a package's Pre-Depends and Depends (first alternative found)."""
    out = []
    for key in ("Pre-Depends", "Depends"):
        for group in fields.get(key, "").split(","):
            for alternative in group.split("|"):
                name = alternative.strip().split(" ")[0].split(":")[0]
                chosen = name if name in installed else provides.get(name)
                if chosen:
                    out.append(chosen)
                    break
    return out


def base_status(status_text: str) -> str:
    """A dpkg status file holding only a base Debian: Essential packages, those of priority
    required or important, and everything they depend on, as installed on this machine."""
    installed = _stanzas(status_text)
    provides = {}
    for name, fields in installed.items():
        for item in fields.get("Provides", "").split(","):
            if item.strip():
                provides.setdefault(item.strip().split(" ")[0], name)
    todo = [n for n, f in installed.items()
            if f.get("Essential") == "yes" or f.get("Priority") in BASE_PRIORITIES]
    base: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in base:
            base.add(name)
            todo += _depends(installed[name], installed, provides)
    return "\n\n".join(installed[n]["_raw"] for n in sorted(base)) + "\n"


def resolve_debs(packages: tuple[str, ...] = DEB_PACKAGES,
                 status: Path = Path("/var/lib/dpkg/status")) -> list[tuple[str, str]]:
    """(name, version) of every .deb that ``packages`` need on a base Debian, in install order.

    apt's own solver decides (``apt-get -s install --no-install-recommends``) against a status
    file that holds only the base system (`base_status`), so what this machine happens to have
    installed beyond that does not hide a dependency."""
    out = _simulate(list(packages), status, "resolving Debian packages (run `apt-get update` once if "
                    "a package has no candidate)")
    found = re.findall(r"^Inst (\S+) (?:\[[^\]]*\] )?\((\S+)", out, re.M)
    if not found:
        raise BundleError(f"apt-get resolved no package for {list(packages)}")
    return found


def _simulate(args: list[str], status: Path, what: str, offline: bool = False) -> str:
    """``apt-get -s install --no-install-recommends ARGS`` on a base Debian (`base_status`);
    ``offline``: with no package sources, so only the .deb files named in ``args`` can be used."""
    if shutil.which("apt-get") is None or not status.is_file():
        raise BundleError("Debian packages need a Debian machine (apt-get, dpkg); use --no-debs elsewhere")
    with tempfile.TemporaryDirectory(prefix="onemap-apt-") as tmp:
        base = Path(tmp) / "status"
        base.write_text(base_status(status.read_text(encoding="utf-8", errors="replace")), encoding="utf-8")
        options = ["-o", f"Dir::State::status={base}", "-o", "Debug::NoLocking=1",
                   "-o", f"Dir::State::extended_states={Path(tmp) / 'ext'}"]
        if offline:
            options += ["-o", "Dir::Etc::SourceList=/dev/null", "-o", "Dir::Etc::SourceParts=/dev/null"]
        return _run(["apt-get", "-s", "install", "--no-install-recommends", *options, *args], what, quiet=True)


def check_debs(folder: Path, status: Path = Path("/var/lib/dpkg/status")) -> int:
    """Check that the .deb files in ``folder`` install on a base Debian with no package source
    (as `install-debs.sh` runs them offline); returns how many apt would install."""
    files = [str(p) for p in sorted(folder.resolve().glob("*.deb"))]  # absolute: apt reads them as files
    if not files:
        raise BundleError(f"no .deb files in {folder}")
    out = _simulate(files, status,
                    f"the Debian packages in {folder} do not install on a base Debian without network",
                    offline=True)
    return len(re.findall(r"^Inst ", out, re.M))


def download_debs(debs: list[tuple[str, str]], dest: Path) -> list[Path]:
    """Download the given .deb files (``apt-get download``) into ``dest``; returns their paths."""
    dest.mkdir(parents=True, exist_ok=True)
    _run(["apt-get", "download", *[f"{name}={version}" for name, version in debs]],
         "apt-get download", cwd=dest, quiet=True)
    files = sorted(dest.glob("*.deb"))
    if len(files) < len(debs):
        raise BundleError(f"apt-get download gave {len(files)} files for {len(debs)} packages")
    (dest / "packages.txt").write_text("".join(f"{n} {v}\n" for n, v in debs), encoding="utf-8")
    return files


# --------------------------------------------------------------------------- the bundle


def _python_tag() -> str:
    return f"cp{sys.version_info.major}{sys.version_info.minor}"


def _debian() -> str | None:
    path = Path("/etc/debian_version")
    return path.read_text(encoding="ascii", errors="replace").strip() if path.exists() else None


def _write_sums(bundle: Path) -> None:
    """SHA256SUMS of every file (``sha256sum -c SHA256SUMS`` checks a copy carried by USB stick)."""
    lines = []
    for path in sorted(p for p in bundle.rglob("*") if p.is_file() and p.name != "SHA256SUMS"):
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        lines.append(f"{digest.hexdigest()}  {path.relative_to(bundle).as_posix()}\n")
    (bundle / "SHA256SUMS").write_text("".join(lines), encoding="utf-8")


def _archive(bundle: Path) -> Path:
    """``<bundle>.tar.gz`` of the folder (gzip level 1: wheels and debs are compressed already)."""
    target = bundle.with_name(bundle.name + ".tar.gz")
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    with tarfile.open(partial, "w:gz", compresslevel=1) as tar:
        tar.add(bundle, arcname=bundle.name)
    os.replace(partial, target)
    return target


def _check_dest(dest: Path, root: Path) -> None:
    inside = dest.is_relative_to(root) and dest != root
    if dest == root or (inside and dest.relative_to(root).parts[0] != "dist"):
        raise BundleError(f"{str(dest)!r} is inside the source tree, which the bundle copies: "
                          f"write it under {root / 'dist'} or outside {root}")
    if dest.exists() and not (dest.is_dir() and (dest / BUNDLE_MARK).is_file()):
        raise BundleError(f"{str(dest)!r} exists and is not an earlier bundle; remove it or choose another folder")


def _wheel_sets(root: Path, work: Path, with_tests: bool) -> dict[str, int]:
    """Fill ``work/wheels/{build,app,test}``; returns how many wheels each set holds."""
    reqs, sets = requirements(root), {}
    with tempfile.TemporaryDirectory(prefix="onemap-pins-") as tmp:
        constraints = Path(tmp) / "pins.txt"
        constraints.write_text(pins(), encoding="utf-8")
        order = [("build", None), ("app", constraints)] + ([("test", constraints)] if with_tests else [])
        for name, pinned in order:
            folder = work / "wheels" / name
            folder.mkdir(parents=True)
            click.echo(err=True, message=f"==> wheels/{name}: {', '.join(reqs[name])}")
            _pip_wheels(folder, reqs[name], pinned, [])
            if name == "app":
                click.echo(err=True, message="==> wheels/app: onemap itself, built offline from the shipped source")
                _own_wheel(work / "onemap", folder, work / "wheels" / "build")
            if name == "test":  # app and build stay whole: each installs on its own
                _drop_duplicates(folder, [work / "wheels" / s for s in sets])
            sets[name] = len(list(folder.glob("*.whl")))
    return sets


def build_bundle(dest: Path, with_debs: bool = True, with_tests: bool = True, archive: bool = True) -> dict:
    """Write the offline bundle folder ``dest`` (and ``dest.tar.gz``); returns its ``bundle.json``."""
    root = project_root()
    dest = Path(os.path.abspath(dest))
    _check_dest(dest, root)
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        click.echo(err=True, message=f"==> onemap/: the source ({copy_source(root, work / 'onemap')} files)")
        info = {"onemap": _version(root), "python": _python_tag(), "platform": sysconfig.get_platform(),
                "glibc": "-".join(platform.libc_ver()), "debian": _debian(),
                "built": datetime.now().isoformat(timespec="seconds"),
                "wheels": _wheel_sets(root, work, with_tests), "debs": 0}
        if with_debs:
            click.echo(err=True, message=f"==> debs/: resolving {', '.join(DEB_PACKAGES)} against a base Debian")
            debs = resolve_debs()
            click.echo(err=True, message=f"==> debs/: downloading {len(debs)} packages")
            info["debs"] = len(download_debs(debs, work / "debs"))
            click.echo(err=True, message=f"==> debs/: {check_debs(work / 'debs')} packages install offline "
                                         "on a base Debian (apt simulation)")
            shutil.copy2(root / "docs" / "deploy" / "install-debs.sh", work / "install-debs.sh")
        shutil.copyfile(root / "docs" / "deploy" / "INSTALL.txt", work / "INSTALL.txt")
        (work / BUNDLE_MARK).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        _write_sums(work)
        _swap_in(work, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if archive:
        click.echo(err=True, message=f"==> {dest.name}.tar.gz")
        info["archive"] = str(_archive(dest))
    return info


def _swap_in(work: Path, dest: Path) -> None:
    """Replace an earlier bundle at ``dest`` (if any) by the finished ``work`` folder."""
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    if dest.exists():
        os.replace(dest, old)
    os.replace(work, dest)
    shutil.rmtree(old, ignore_errors=True)


def _version(root: Path) -> str:
    meta = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    return str(meta["project"]["version"])


@click.command(name="bundle")
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path), default=Path("dist/onemap-bundle"))
@click.option("--no-debs", is_flag=True, help="Leave out the Debian packages (chromium, CJK fonts, poppler, make, python3-venv).")
@click.option("--no-test-tools", is_flag=True, help="Leave out wheels/test (what `make test` needs beyond the app).")
@click.option("--no-archive", is_flag=True, help="Write the folder only, no DEST.tar.gz.")
@json_option
def bundle_cmd(dest: Path, no_debs: bool, no_test_tools: bool, no_archive: bool, as_json: bool) -> None:
    """Write an offline installation bundle to DEST (default dist/onemap-bundle) and DEST.tar.gz.

    Every wheel onemap needs for this Python and platform at the versions installed here
    (wheels/app, with onemap's own), pip and the build tools (wheels/build), the test tools
    (wheels/test), the Debian packages (debs/), the source (onemap/) and INSTALL.txt. Needs
    the network; `make demo BUNDLE=DEST` then installs with none."""
    try:
        info = build_bundle(dest, with_debs=not no_debs, with_tests=not no_test_tools, archive=not no_archive)
    except OSError as exc:
        raise BundleError(f"cannot write the bundle {str(dest)!r}: {exc.strerror or exc}") from None
    if as_json:
        echo_json(info)
        return
    sets = ", ".join(f"{k} {v}" for k, v in info["wheels"].items())
    click.echo(f"onemap: bundle {dest}  (wheels: {sets}; debs: {info['debs']}; for {info['python']} "
               f"{info['platform']}, Debian {info['debian']})")
    click.echo(f"        offline: cd {dest}/onemap && make demo BUNDLE=..   (see {dest}/INSTALL.txt)")


COMMANDS = [backup_cmd, bundle_cmd]
