"""The offline bundle (`onemap bundle`, `make bundle`) and installing from it with no network.

The main test builds a bundle of this clone (the app's wheels), then runs the README's first
command pointed at it, `make demo BUNDLE=..`, in the bundle's copy of the source with pip cut
off from every index (no config, dead proxy, `--no-index`), and opens the demo it serves.
It takes about 1.5 to 2.5 minutes (pip wheel ~30 s, an install of 90 wheels ~45 s, the demo,
then `make setup BUNDLE=..` adds the 35 test wheels and runs tests/test_readme.py with them).
The Debian packages are checked lighter: the full list resolves against a base Debian, and a
small part of it is downloaded, read by dpkg-deb and installs offline in apt's simulation.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard.cli import main
from dashboard.commands import deploy

ROOT = Path(__file__).resolve().parents[2]
ONEMAP = [sys.executable, "-m", "dashboard.cli"]
TEST_TOOLS = ("pytest", "playwright", "nbclient", "ipykernel")


def offline_env() -> dict[str, str]:
    """The environment of a machine whose pip reaches no index: no pip config or PIP_* variables
    (this machine's point at local indexes), and every proxy a closed port."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("PIP_", "VIRTUAL_ENV"))}
    dead = "http://127.0.0.1:9"
    env.update(PIP_CONFIG_FILE=os.devnull, http_proxy=dead, https_proxy=dead, HTTP_PROXY=dead,
               HTTPS_PROXY=dead, all_proxy=dead, no_proxy="", PATH=os.defpath + ":" + env.get("PATH", ""))
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wheel_versions(folder: Path) -> dict[str, str]:
    """{normalised project name: version} of the wheels in ``folder``."""
    found = {}
    for wheel in folder.glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        found[re.sub(r"[-_.]+", "-", name).lower()] = version
    return found


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict]]:
    """A bundle of this clone: the app's wheels, pip and the build tools, the test tools (no debs)."""
    dest = tmp_path_factory.mktemp("bundle") / "onemap-bundle"
    done = subprocess.run([*ONEMAP, "bundle", str(dest), "--no-debs", "--no-archive", "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    yield dest, json.loads(done.stdout)
    shutil.rmtree(dest, ignore_errors=True)  # 1.3 GB with the venv the demo test installs


def test_the_bundle_holds_the_installed_versions_for_this_python(bundle: tuple[Path, dict]) -> None:
    dest, info = bundle
    assert json.loads((dest / "bundle.json").read_text()) | {"archive": None} == info | {"archive": None}
    assert info["python"] == f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert not (dest / "debs").exists()
    test = wheel_versions(dest / "wheels" / "test")
    assert {"pytest", "nbclient", "ipykernel"} <= set(test) and not {"duckdb", "playwright"} & set(test)
    app = wheel_versions(dest / "wheels" / "app")
    assert app["onemap"] == importlib.metadata.version("onemap")
    assert {"duckdb", "duckdb-extension-spatial", "pyarrow", "dash", "waitress", "playwright"} <= set(app)
    assert not {"pytest", "nbclient", "ipykernel"} & set(app)  # the test tools are not the app's
    mismatched = {}
    for name, version in app.items():  # the versions the tests run on, not the newest on the index
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if name != "onemap" and installed != version:
            mismatched[name] = (version, installed)
    assert mismatched == {}
    assert [p.name for p in dest.rglob("*") if p.parent.name in ("app", "build") and p.suffix != ".whl"] == []
    assert {"pip", "setuptools", "wheel"} <= set(wheel_versions(dest / "wheels" / "build"))
    shipped = dest / "onemap"
    assert (shipped / "Makefile").is_file() and (shipped / "docs" / "deploy" / "onemap.service").is_file()
    assert not (shipped / ".venv").exists() and not list(shipped.glob("data/*.duckdb"))
    assert "make demo BUNDLE=.." in (dest / "INSTALL.txt").read_text(encoding="utf-8")
    check = subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=dest, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_make_demo_installs_from_the_bundle_alone_and_serves(bundle: tuple[Path, dict], tmp_path: Path) -> None:
    dest, _ = bundle
    source = dest / "onemap"
    port = free_port()
    log = tmp_path / "make-demo.log"
    python = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    started = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(["make", "demo", "BUNDLE=..", f"PY={python}", "PIP_FLAGS=--no-compile",
                                 f"DEMO_ARGS=--scale 0.05 --port {port}"], cwd=source, env=offline_env(),
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 900
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/wall", timeout=30) as r:
                    status, page = r.status, r.read().decode("utf-8", "replace")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(log.read_text()[-4000:]) from None
                time.sleep(1)
        seconds = time.monotonic() - started
        assert status == 200 and "dash" in page.lower()
        text = log.read_text()
        assert "--no-index" in text and "Looking in links" in text
        assert "Looking in indexes" not in text and "Downloading" not in text  # nothing came from an index
        assert "==> [setup]" in text  # progress, step by step
        venv = source / ".venv" / "bin"
        version = subprocess.run([str(venv / "onemap"), "--version"], capture_output=True, text=True)
        assert version.stdout.strip() == f"onemap, version {importlib.metadata.version('onemap')}"
        listed = subprocess.run([str(venv / "python"), "-m", "pip", "list", "--format", "json"],
                                capture_output=True, text=True, env=offline_env())
        names = {p["name"].lower() for p in json.loads(listed.stdout)}
        assert "onemap" in names and "duckdb" in names
        assert not names & set(TEST_TOOLS)  # make demo installs the app only
        print(f"make demo BUNDLE=.. served after {seconds:.0f} s")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)

    # `make test BUNDLE=..` installs the test tools from the bundle alone too; its tests then run
    setup = subprocess.run(["make", "setup", "BUNDLE=..", f"PY={python}", "PIP_FLAGS=--no-compile"], cwd=source,
                           env=offline_env(), capture_output=True, text=True, timeout=900)
    assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
    assert "Downloading" not in setup.stdout and "Looking in indexes" not in setup.stdout
    tests = subprocess.run([str(source / ".venv" / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "tests/test_readme.py"], cwd=source, env=offline_env(), capture_output=True, text=True,
                           timeout=300)
    assert tests.returncode == 0 and "3 passed" in tests.stdout, tests.stdout[-3000:]


@pytest.fixture
def make_dir(tmp_path: Path) -> Path:
    """A copy of the Makefile and pyproject, to run make's checks that come before any install."""
    folder = tmp_path / "src"
    folder.mkdir()
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, folder / name)
    return folder


@pytest.mark.parametrize("content, said", [
    (None, "is not an onemap bundle"),
    ('{"python": "cp27"}', "holds wheels for cp27"),
    ('{"python": "{{7*7}}; rm -rf /"}', "holds wheels for {{7*7}}; rm -rf /"),
])
def test_make_refuses_a_bundle_for_another_python_plainly(make_dir: Path, tmp_path: Path,
                                                          content: str | None, said: str) -> None:
    fake = tmp_path / "fake-bundle"
    fake.mkdir()
    if content is not None:
        (fake / "bundle.json").write_text(content)
    for goal in ("demo", "test"):
        done = subprocess.run(["make", goal, f"BUNDLE={fake}"], cwd=make_dir, capture_output=True, text=True,
                              env=offline_env(), timeout=120)
        assert done.returncode != 0
        assert said in done.stdout + done.stderr
        assert not (make_dir / ".venv").exists()  # stopped before creating anything


@pytest.mark.parametrize("dest, said", [
    ("existing", "is not an earlier bundle"),
    ("", "is not an earlier bundle"),
    ("/", "is not an earlier bundle"),
    ("SOURCE/tests/bundle", "inside the source tree"),
    ("SOURCE", "inside the source tree"),
    ("/proc/onemap-bundle", "cannot write"),
])
def test_bundle_refuses_a_destination_it_must_not_replace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str],
                                                          dest: str, said: str) -> None:
    (tmp_path / "existing").mkdir()
    (tmp_path / "existing" / "notes.txt").write_text("keep me")
    monkeypatch.chdir(tmp_path)
    try:
        main(["bundle", dest.replace("SOURCE", str(ROOT)), "--no-debs", "--no-test-tools", "--no-archive"])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    output = "".join(capsys.readouterr())
    assert code == 2 and said in output and "Traceback" not in output
    assert (tmp_path / "existing" / "notes.txt").read_text() == "keep me"
    assert not (ROOT / "tests" / "bundle").exists()


STATUS = """Package: base-a
Status: install ok installed
Priority: required
Essential: yes
Pre-Depends: libb (>= 1)
Depends: virt-c | libd, liba:any

Package: libb
Status: install ok installed
Priority: optional

Package: provider-c
Status: install ok installed
Priority: optional
Provides: virt-c (= 2)

Package: libd
Status: install ok installed
Priority: optional

Package: liba
Status: install ok installed
Priority: optional
Depends: libb

Package: tool-e
Status: install ok installed
Priority: optional
Depends: libd

Package: removed-f
Status: deinstall ok config-files
Priority: important
"""


def test_base_status_keeps_the_base_and_what_it_depends_on() -> None:
    kept = re.findall(r"^Package: (\S+)", deploy.base_status(STATUS), re.M)
    # provider-c satisfies "virt-c | libd" first; tool-e is optional and needed by nothing base
    assert sorted(kept) == ["base-a", "liba", "libb", "provider-c"]


def _apt_ready() -> str | None:
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        return "not a Debian machine"
    policy = subprocess.run(["apt-cache", "policy", "chromium"], capture_output=True, text=True).stdout
    if "Candidate:" not in policy or "Candidate: (none)" in policy:
        return "apt has no package lists (run apt-get update once)"
    return None


@pytest.mark.skipif(_apt_ready() is not None, reason=str(_apt_ready()))
def test_debian_packages_resolve_against_a_base_debian_and_install_offline(tmp_path: Path) -> None:
    debs = dict(deploy.resolve_debs())
    assert set(deploy.DEB_PACKAGES) <= set(debs)
    assert {"libnss3", "libgtk-3-0", "libpoppler126"} <= set(debs)  # dependencies a base Debian lacks
    assert not {"libc6", "dpkg", "bash", "coreutils"} & set(debs)  # the base is not bundled
    candidate = subprocess.run(["apt-cache", "policy", "chromium"], capture_output=True, text=True).stdout
    assert f"Candidate: {debs['chromium']}" in candidate

    small = deploy.resolve_debs(("libxrender1",))  # a small part of the list, with its dependencies
    assert 3 <= len(small) < 12 and all(debs.get(name) == version for name, version in small)
    files = deploy.download_debs(small, tmp_path / "debs")
    for path in files:
        info = subprocess.run(["dpkg-deb", "-f", str(path), "Package", "Version"], capture_output=True, text=True)
        assert info.returncode == 0, info.stderr
        fields = dict(line.split(": ", 1) for line in info.stdout.splitlines())
        assert (fields["Package"], fields["Version"]) in small
    assert deploy.check_debs(tmp_path / "debs") == len(small)  # installs with no package source

    needed = next(p for p in files if p.name.startswith("libx11-6_"))
    needed.unlink()  # without one dependency the set no longer installs, and apt says which
    with pytest.raises(deploy.BundleError, match="libx11-6"):
        deploy.check_debs(tmp_path / "debs")


def test_service_and_proxy_examples() -> None:
    folder = ROOT / "docs" / "deploy"
    unit = (folder / "onemap.service").read_text(encoding="utf-8")
    assert re.search(r"^User=onemap$", unit, re.M) and re.search(r"^Restart=on-failure$", unit, re.M)
    assert "serve --host 127.0.0.1" in unit and "StandardOutput=journal" in unit
    assert "[Journal]" in (folder / "journald-onemap.conf").read_text(encoding="utf-8")
    if shutil.which("systemd-analyze"):
        checked = Path(os.environ.get("TMPDIR", "/tmp")) / f"onemap-units-{os.getpid()}"
        checked.mkdir(exist_ok=True)
        try:  # the binaries are not installed here: the unit syntax is what is checked
            for name in ("onemap.service", "onemap-backup.service", "onemap-backup.timer"):
                text = (folder / name).read_text(encoding="utf-8")
                (checked / name).write_text(re.sub(r"(Exec\w+=)\S+", r"\1/bin/true", text), encoding="utf-8")
            verify = subprocess.run(["systemd-analyze", "verify", *(str(p) for p in sorted(checked.iterdir()))],
                                    capture_output=True, text=True)
            assert verify.returncode == 0 and "Unknown" not in verify.stderr, verify.stderr
        finally:
            shutil.rmtree(checked)
    nginx = (folder / "nginx-onemap.conf").read_text(encoding="utf-8")
    locations = re.findall(r"location [^{]*\{(.*?)\n    \}", nginx, re.S)
    proxied = [body for body in locations if "proxy_pass http://onemap" in body]
    assert proxied and all("proxy_set_header X-Remote-User" in body for body in proxied)
    assert "X-Forwarded-Proto" in nginx and "ssl_certificate" in nginx
    syntax = subprocess.run(["sh", "-n", str(folder / "install-debs.sh")], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
