"""The workshop notebooks run top to bottom, as CI runs them: fast mode, tiny random model.

Fast mode (`SFT_LAB_FAST=1`, see `lab.workshop.expect.settings`) swaps the default model for the tiny
random one and caps training at 3 steps, so the notebooks take the same code paths as in a
workshop in a fraction of the time. Each notebook runs in a copy of `notebooks/` in a temporary
folder, so its run folders and autosaved files never land in the repository.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT = 300  # seconds per cell; whole notebooks take well under a minute in fast mode


def _widgets_available() -> bool:
    try:
        import widgets  # noqa: F401
    except Exception:
        return False
    return True


def _errors(nb) -> list[str]:
    """'cell N: Error: message' for every cell with an error output."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                found.append(f"cell {i}: {out.get('ename')}: {out.get('evalue')}")
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path: Path, tmp_path: Path, monkeypatch):
    if path.name.startswith("00_") and not _widgets_available():
        pytest.skip("the quickstart needs the widgets package")
    work = tmp_path / "notebooks"
    shutil.copytree(REPO / "notebooks", work,
                    ignore=shutil.ignore_patterns("runs", ".ipynb_checkpoints", "__pycache__"))
    monkeypatch.setenv("SFT_LAB_FAST", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # spinning OpenMP threads slow torch down many times over when other processes compete
    # for the cores (as in a CI machine running several jobs); passive waiting avoids that
    monkeypatch.setenv("OMP_WAIT_POLICY", os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    monkeypatch.delenv("SFT_LAB_MODEL", raising=False)
    nb = nbformat.read(work / path.name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(work)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:
        pytest.fail(f"{path.name} failed:\n{err}", pytrace=False)
    assert not _errors(nb), f"{path.name}: " + "; ".join(_errors(nb))
