"""The workshop notebooks run top to bottom, as CI runs them, and what they show is checked.

Fast mode (`SFT_LAB_FAST=1`, see `lab.workshop.expect.settings`) swaps the default model for the
tiny random one and caps training at 3 steps, so the notebooks take the same code paths as in a
workshop in a fraction of the time. Each notebook runs in a copy of `notebooks/` in a temporary
folder, so its run folders and autosaved files never land in the repository. About two minutes
for the eight: `slow` (left out of `make test-fast`, run by `make test` and CI).

A run in fast mode checks, per notebook: no cell has an error output; every `expect(...)` the
notebook holds was reached (its condition computed; in fast mode `expect` only prints "not
checked"), and the claims that do not depend on what a model learnt (the data's shape, the loss
mask, the objective computed three ways) hold even here; every widget shown was built (its model
is in the notebook's widget state); every plot drawn has data, and where the notebook holds live
charts (`widgets.chart.Chart`), one at least has data at the end.

Full mode (`expect` raises `ClaimFailed` on a claim that does not hold) needs a model that learns
what the text says it learns. With `SFT_LAB_MODEL=tiny-random` and the notebooks' own settings
(learning rates for a 135M-parameter model) the tiny model's loss barely moves (10.8 -> 10.7 in
the quickstart) and every notebook with claims has some that fail (00: 2 of 4, 01: 4 of 9, 02:
4 of 4, 03: 5 of 6, 04: 2 of 7, 05: 3 of 7, 06: 5 of 10; 07 has none), so the full-mode check
runs the quickstart on the default model (`test_quickstart_claims_hold_in_full_mode`, slow).
"""
from __future__ import annotations

import ast
import json
import os
import shutil
from pathlib import Path

import pytest

import widgets  # noqa: F401  (every notebook's widgets: a broken package fails here, it is no skip)

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT = 300  # seconds per cell; whole notebooks take well under a minute in fast mode
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PLOTLY = "application/vnd.plotly.v1+json"

# Claims that hold whatever the model learnt: checked in fast mode too.
HOLD_ON_ANY_MODEL = {
    "01_instruction_tuning_is_sft": ["the trained part ends with <|im_end|> and the newline after it",
                                     "the three agree"],
    "05_new_task": ["a third of B's responses lack the greeting"],
    "06_diagnose": ["five kinds of contract", "about thirty governing laws, most of them seen once",
                    "the excerpts are about 110 to 135 tokens each", "no summary says a clause is missing"],
    "08_class_challenge": ["the broad set covers all five probe topics", "the narrow set covers billing only"],
}

# Run first in the kernel: every expect() call is also written to a file, {claim, holds}.
PRELUDE = """\
import json as _json, lab.workshop.expect as _claims
_expect = _claims.expect
def _recording_expect(condition, claim, *, measured=None):
    with open({log!r}, "a") as _f:
        _f.write(_json.dumps({{"claim": claim, "holds": bool(condition), "measured": measured}}) + "\\n")
    return _expect(condition, claim, measured=measured)
_claims.expect = _recording_expect
"""

# Run last: each live chart's title and how many points its traces hold.
EPILOGUE = """\
import json as _json
from ipywidgets.widgets import widget as _widget
from widgets.chart import Chart as _Chart
def _points(trace):
    return sum(len(v) for v in (getattr(trace, k, None) for k in ("x", "y", "values")) if v is not None)
_figures = [{{"title": f.layout.title.text, "points": sum(_points(t) for t in f.data)}}
            for f in list(_widget._instances.values()) if isinstance(f, _Chart)]
with open({path!r}, "w") as _f:
    _json.dump(_figures, _f)
"""


def _errors(nb) -> list[str]:
    """'cell N: Error: message' for every cell with an error output."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                found.append(f"cell {i}: {out.get('ename')}: {out.get('evalue')}")
    return found


def _claims_in_source(nb) -> list[str]:
    """The claim (second argument, a string literal) of every expect(...) call in the code."""
    claims = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse("\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!"))))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "expect" and len(node.args) > 1
                    and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
                claims.append(node.args[1].value)
    return claims


def _execute(path: Path, tmp_path: Path, monkeypatch, fast: bool):
    """Run a copy of the notebook; return it executed, the expect() calls and the figures."""
    work = tmp_path / "notebooks"
    shutil.copytree(REPO / "notebooks", work,
                    ignore=shutil.ignore_patterns("runs", "reference", ".ipynb_checkpoints", "__pycache__"))
    if fast:
        monkeypatch.setenv("SFT_LAB_FAST", "1")
    else:
        monkeypatch.delenv("SFT_LAB_FAST", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # spinning OpenMP threads slow torch down many times over when other processes compete
    # for the cores (as in a CI machine running several jobs); passive waiting avoids that
    monkeypatch.setenv("OMP_WAIT_POLICY", os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    monkeypatch.delenv("SFT_LAB_MODEL", raising=False)
    monkeypatch.delenv("SFT_LAB_SEED", raising=False)
    log, figures = tmp_path / "claims.jsonl", tmp_path / "figures.json"
    nb = nbformat.read(work / path.name, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(PRELUDE.format(log=str(log))))
    nb.cells.append(nbformat.v4.new_code_cell(EPILOGUE.format(path=str(figures))))
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT if fast else 1800, kernel_name="python3",
                                     resources={"metadata": {"path": str(work)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:
        pytest.fail(f"{path.name} failed:\n{err}", pytrace=False)
    claims = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return nb, claims, json.loads(figures.read_text())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path: Path, tmp_path: Path, monkeypatch):
    nb, claims, figures = _execute(path, tmp_path, monkeypatch, fast=True)
    assert not _errors(nb), f"{path.name}: " + "; ".join(_errors(nb))

    # every claim of the text was reached, and those that need no trained model hold
    reached = {c["claim"] for c in claims}
    missed = [c for c in _claims_in_source(nb) if c not in reached]
    assert not missed, f"{path.name}: expect() never reached for {missed}"
    for claim in HOLD_ON_ANY_MODEL.get(path.stem, []):
        assert claim in reached, f"{path.name}: no expect() says {claim!r} (renamed? update HOLD_ON_ANY_MODEL)"
        assert all(c["holds"] for c in claims if c["claim"] == claim), \
            f"{path.name}: {claim!r} does not hold: " + str([c["measured"] for c in claims if c["claim"] == claim])

    # every widget shown was built, every plot drawn has data
    outputs = [out for cell in nb.cells for out in cell.get("outputs", [])]
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    views = [out["data"][WIDGET_VIEW]["model_id"] for out in outputs if WIDGET_VIEW in out.get("data", {})]
    assert all(model_id in state for model_id in views), f"{path.name}: a widget shown was never built"
    for out in outputs:
        for trace in out.get("data", {}).get(PLOTLY, {}).get("data", []):
            assert any(len(trace.get(k) or []) for k in ("x", "y", "values")), f"{path.name}: an empty trace"
    if figures:
        assert any(f["points"] for f in figures), f"{path.name}: every chart is empty: {figures}"
    if "from widgets import" in "".join(c.source for c in nb.cells):
        assert views or any("text/html" in out.get("data", {}) for out in outputs), \
            f"{path.name}: imports widgets and shows none"


@pytest.mark.skipif(not __import__("lab.models").models.is_prepared(__import__("lab.models").models.default_model_dir()),
                    reason="default model not prepared (run `sft-lab fetch-model default`)")
def test_quickstart_claims_hold_in_full_mode(tmp_path: Path, monkeypatch):
    """The quickstart as a workshop runs it (the default model, its own epochs): each claim of
    its text is checked, and one that does not hold raises ClaimFailed, an error here."""
    path = REPO / "notebooks" / "00_quickstart.ipynb"
    nb, claims, _ = _execute(path, tmp_path, monkeypatch, fast=False)
    assert not _errors(nb), "; ".join(_errors(nb))
    assert claims and all(c["holds"] for c in claims), claims
    assert {c["claim"] for c in claims} >= set(_claims_in_source(nb))
