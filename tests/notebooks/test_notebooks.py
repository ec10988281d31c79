"""Both planner notebooks execute top to bottom on the demo database, in a kernel of this venv."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.mark.parametrize("name", ["coverage_planning", "hotspot_review"])
def test_notebook_runs(name: str, demo_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernelspec "python3" runs `python`: put this venv first on PATH so it is the venv's python.
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    monkeypatch.setenv("ONEMAP_DB", str(demo_db))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    NotebookClient(nb, kernel_name="python3", timeout=180, resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    # The kernel is this venv's interpreter and read the test's database.
    assert f"python: {Path(sys.executable)}" in text or f"python: {sys.executable}" in text
    assert f"database: {demo_db}" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # maps and charts are drawn
    tables = [o for o in outputs if "text/html" in o.get("data", {})]
    assert len(tables) >= 3
