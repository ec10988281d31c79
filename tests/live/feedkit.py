"""Shared pieces of the live tests: a served copy of the demo with feed tokens, posting, peeking."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

CENTRE = (121.228, 31.032)  # inside the demo district (Songjiang)


def onemap(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``onemap ARGS`` in a subprocess (the installed CLI, as a user would)."""
    return subprocess.run([sys.executable, "-m", "dashboard.cli", *args], input=stdin, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str, data: bytes | None = None, headers: dict[str, str] | None = None,
          method: str | None = None, timeout: float = 60) -> tuple[int | None, bytes]:
    """(status, body) of a request; 4xx/5xx are answers, not exceptions; None when unreachable."""
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (OSError, urllib.error.URLError):
        return None, b""


@dataclass
class Served:
    """A running ``onemap serve``: base URL, database, log, process, port."""

    url: str
    db: Path
    log: Path
    proc: subprocess.Popen[bytes]
    port: int


def start(db: Path, port: int, config: Path | None = None) -> Served:
    """Start ``onemap serve`` on ``port`` and wait until it answers."""
    log = db.with_name(f"serve-{port}.log")
    args = [sys.executable, "-m", "dashboard.cli", "serve", "--db", str(db), "--port", str(port)]
    if config is not None:
        args += ["--config", str(config)]
    with open(log, "a") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=db.parent)
    served = Served(f"http://127.0.0.1:{port}", db, log, proc, port)
    deadline = time.monotonic() + 120
    while fetch(served.url + "/login.css", timeout=2)[0] is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"server did not start:\n{log.read_text()}")
        time.sleep(0.2)
    return served


@contextlib.contextmanager
def serve(db: Path, config: Path | None = None) -> Iterator[Served]:
    """``onemap serve --db DB`` on a free port for the block."""
    served = start(db, free_port(), config)
    try:
        yield served
    finally:
        served.proc.terminate()
        try:
            served.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            served.proc.kill()


def token(db: Path, source: str, layers: str) -> str:
    """A new feed token (``onemap token create``, a subprocess as an operator runs it)."""
    done = onemap("token", "create", "--source", source, "--layers", layers, "--db", str(db))
    assert done.returncode == 0, done.stderr
    text = done.stdout.strip()
    assert text.startswith("om_") and "shown once" in done.stderr
    return text


def post(url: str, layer: str, body: Any, tok: str | None, *, content_type: str = "application/json",
         timeout: float = 60) -> tuple[int | None, Any]:
    """POST ``body`` (JSON-encoded unless bytes) to the feed; (status, parsed answer or raw text)."""
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    headers = {"Content-Type": content_type}
    if tok is not None:
        headers["Authorization"] = f"Bearer {tok}"
    status, raw = fetch(f"{url}/api/v1/events/{layer}", data=data, headers=headers, method="POST",
                        timeout=timeout)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw[:300].decode("utf-8", "replace")


def hazard(hid: str | None = None, status: str = "发现", at: str = "2026-12-05 10:00:00",
           lonlat: tuple[float, float] = CENTRE, **extra: Any) -> dict[str, Any]:
    """A new hazard as a GeoJSON Feature (Chinese field names, as a platform would send)."""
    props = {"隐患类别": "其他", "隐患等级": "一般", "状态": status, "发现时间": at, **extra}
    if hid is not None:
        props["隐患编号"] = hid
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(lonlat)}, "properties": props}


def update(hid: str, **props: Any) -> dict[str, Any]:
    """A partial update: the id and some fields, no geometry."""
    return {"type": "Feature", "geometry": None, "properties": {"id": hid, **props}}


def peek(db: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` on a copy of the served database file (the snapshot the server swapped in)."""
    copy = db.with_name(f"peek-{time.monotonic_ns()}.duckdb")
    shutil.copyfile(db, copy)
    try:
        con = duckdb.connect(str(copy), read_only=True)
        try:
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()
    finally:
        copy.unlink(missing_ok=True)


def journal_head(db: Path) -> int:
    from geo import journal

    return journal.head(db)


def wait_folded(db: Path, timeout_s: float = 60) -> int:
    """Wait until the snapshot holds every journal event and rejection (the compactor folded them)."""
    from geo import journal

    deadline = time.monotonic() + timeout_s
    while True:
        want = (journal.head(db), journal.rejected_head(db))
        try:
            got = tuple(v or 0 for v in peek(db, "SELECT max(seq), max(rejected_seq) FROM journal_folded")[0])
        except duckdb.CatalogException:
            got = (0, 0)
        if got[0] >= want[0] and got[1] >= want[1]:
            return int(got[0])
        if time.monotonic() > deadline:
            raise AssertionError(f"journal not folded: snapshot at {got}, journal at {want}")
        time.sleep(0.2)
