"""Shared fixtures: a temporary DuckDB file and a small demo district built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture
def tmp_db(tmp_path: Path) -> Path:
    """Path of a DuckDB file that does not exist yet."""
    return tmp_path / "onemap.duckdb"


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo district (Songjiang, scale 0.2, fixed seed) in a real DuckDB file.

    Read-only for tests: a test that writes must copy it first (``copy_demo_db``).
    """
    from data.demo import build_demo

    path = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    build_demo(path, area="310117", scale=0.2, seed=7)
    return path


@pytest.fixture
def copy_demo_db(demo_db: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the session's demo database."""
    import shutil

    target = tmp_path / "demo_copy.duckdb"
    shutil.copyfile(demo_db, target)
    return target


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests keep screenshots, PDFs and PNGs for people to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
