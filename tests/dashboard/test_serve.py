"""`onemap serve` as a wall display runs it: a real subprocess on a real database, waitress serving."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.status, r.headers.get("Server", ""), r.read()


def test_serve_answers_concurrent_requests_with_the_production_server(
    copy_demo_db: Path, tmp_path: Path
):
    port = _free_port()
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dashboard.cli", "serve", "--db", str(copy_demo_db), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                status, server, _ = _get(base + "/")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(log.read_text()) from None
                time.sleep(0.3)
        assert status == 200
        assert server == "onemap"  # waitress, not Flask's development server
        urls = [base + p for p in ("/", "/wall", "/plan", "/review", "/_dash-layout")] * 3
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(_get, urls))
        assert [a[0] for a in answers] == [200] * len(urls)
        assert all(len(a[2]) > 100 for a in answers)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
