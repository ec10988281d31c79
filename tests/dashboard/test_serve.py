"""`onemap serve` as a wall display runs it: a real subprocess on a real database, waitress serving."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner

from dashboard.cli import cli
from dashboard.commands.core import is_loopback


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


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.20", "10.0.0.5", "wall.example.cn",
                                  "localhost.example.cn", "127.0.0.1.nip.io"])
def test_debug_refuses_a_host_outside_loopback(host: str, tmp_path: Path) -> None:
    """Flask's debugger runs any Python typed into it: `serve --debug` never listens on the network."""
    db = tmp_path / "none.duckdb"
    result = CliRunner().invoke(cli, ["serve", "--debug", "--host", host, "--port", str(_free_port()),
                                      "--db", str(db)])
    assert result.exit_code == 2, result.output
    assert "loopback" in result.output and repr(host) in result.output
    assert "Nothing was started" in result.output and "serving on" not in result.output
    assert not db.exists()


def test_debug_refuses_a_network_host_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "onemap.toml"
    config.write_text('host = "0.0.0.0"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["serve", "--debug", "--config", str(config), "--db", str(tmp_path / "x.duckdb")])
    assert result.exit_code == 2 and "'0.0.0.0'" in result.output and "--host 127.0.0.1" in result.output


def test_loopback_addresses() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LocalHost",
                                 "::ffff:127.0.0.1"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "", "192.168.1.20", "::ffff:10.0.0.1", "localhost.example.cn",
                                     "127.0.0.1.nip.io", "128.0.0.1"]))
