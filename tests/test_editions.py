"""Learner editions: no solution or answer key, no outputs, and the notebooks still run."""
from __future__ import annotations

import ast
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from lab.cli import main
from lab.workshop.editions import HIDDEN_TAGS, is_hidden, learner_notebook, write_learner_edition

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "notebooks"
NOTEBOOKS = sorted(SOURCE.glob("*.ipynb"))


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def source(cell: dict) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


@pytest.fixture(scope="module")
def edition(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("learner")
    assert main(["workshop", "learner", str(out)]) == 0
    return out


def test_every_notebook_with_exercises_hides_its_answers():
    """Otherwise the learner edition would give nothing away because nothing is tagged."""
    for path in NOTEBOOKS:
        hidden = [c for c in load(path)["cells"] if is_hidden(c)]
        if "Exercise" in "".join(source(c) for c in load(path)["cells"]) or "quiz" in path.name:
            assert hidden, f"{path.name} has exercises but no cell tagged {' or '.join(HIDDEN_TAGS)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_learner_copy_has_no_hidden_cell_and_no_output(edition, path):
    teacher, learner = load(path), load(edition / path.name)
    kept = [c for c in teacher["cells"] if not is_hidden(c)]
    assert [source(c) for c in learner["cells"]] == [source(c) for c in kept]
    for cell in learner["cells"]:
        assert not set(cell.get("metadata", {}).get("tags", [])) & set(HIDDEN_TAGS)
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    assert "widgets" not in learner["metadata"]


def test_outputs_counts_timings_and_widget_state_are_cleared():
    nb = load(NOTEBOOKS[1])
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            cell.update(execution_count=i, outputs=[{"output_type": "stream", "name": "stdout", "text": "42"}])
            cell["metadata"]["execution"] = {"iopub.execute_input": "2026-11-30T06:51:00Z"}
    nb["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"m": {}}}}
    learner = learner_notebook(nb)
    code = [c for c in learner["cells"] if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    assert not any("execution" in c["metadata"] for c in learner["cells"])
    assert "widgets" not in learner["metadata"] and "kernelspec" in learner["metadata"]
    assert nb["metadata"]["widgets"]  # the instructor's copy is untouched


def test_learner_readme_lists_the_notebooks_in_order_and_no_guide(edition):
    readme = (edition / "README.md").read_text()
    positions = [readme.index(f"`{p.name}`") for p in NOTEBOOKS]
    assert positions == sorted(positions)
    assert not (edition / "INSTRUCTOR.md").exists()
    assert sorted(p.name for p in edition.glob("*.ipynb")) == [p.name for p in NOTEBOOKS]


def test_learner_edition_carries_the_glossary_and_no_pointer_to_a_solution(edition):
    """Learners get the glossary every notebook points to, and no text sends them to a solution
    or an answer key their copy does not hold."""
    assert (edition / "GLOSSARY.md").read_text() == (SOURCE / "GLOSSARY.md").read_text()
    assert "GLOSSARY.md" in (edition / "README.md").read_text()
    for path in sorted(edition.glob("*.ipynb")):
        for cell in load(path)["cells"]:
            words = source(cell).lower()
            assert "solution" not in words and "answer key" not in words, f"{path.name}: {source(cell)[:200]!r}"


def _names(code: str) -> tuple[set[str], set[str]]:
    """(names a cell defines, names it reads), from its code without IPython magics."""
    lines = [ln for ln in code.splitlines() if not ln.lstrip().startswith(("%", "!"))]
    tree = ast.parse("\n".join(lines))
    defined, read = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (defined if isinstance(node.ctx, ast.Store) else read).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return defined, read


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_learner_cell_needs_a_name_only_a_removed_cell_defines(path):
    kept_defs, removed_defs = set(), set()
    for i, cell in enumerate(load(path)["cells"]):
        if cell["cell_type"] != "code":
            continue
        defined, read = _names(source(cell))
        if is_hidden(cell):
            removed_defs |= defined - kept_defs
            continue
        missing = (read & removed_defs) - kept_defs
        assert not missing, f"{path.name} cell {i} uses {sorted(missing)}, defined only in a solution cell"
        kept_defs |= defined


def test_refuses_the_instructor_folder_and_a_foreign_folder_and_refreshes_its_own(tmp_path, capsys):
    assert main(["workshop", "learner", str(SOURCE)]) == 2
    assert "instructor edition" in capsys.readouterr().err
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "README.md").write_text("mine")
    with pytest.raises(FileExistsError, match="not a learner edition"):
        write_learner_edition(foreign)
    assert (foreign / "README.md").read_text() == "mine"

    src = tmp_path / "src"
    src.mkdir()
    for p in NOTEBOOKS[:2]:
        shutil.copy(p, src)
    out = tmp_path / "out"
    write_learner_edition(out, src)
    (src / NOTEBOOKS[1].name).unlink()               # the workshop drops a notebook
    write_learner_edition(out, src)                  # an earlier edition is refreshed
    assert sorted(p.name for p in out.glob("*.ipynb")) == [NOTEBOOKS[0].name]
    with pytest.raises(FileNotFoundError, match="no notebooks"):
        write_learner_edition(tmp_path / "x", tmp_path / "empty")


@pytest.mark.slow  # a Jupyter kernel and a notebook run: about 10 s
def test_a_learner_notebook_runs_top_to_bottom_in_fast_mode(edition, tmp_path, monkeypatch):
    """The learner copy of notebook 1 (three exercises, their solutions removed) still runs."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("SFT_LAB_FAST", "1")
    monkeypatch.setenv("OMP_WAIT_POLICY", os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    monkeypatch.delenv("SFT_LAB_MODEL", raising=False)
    name = "01_instruction_tuning_is_sft.ipynb"
    shutil.copy(edition / name, tmp_path / name)
    nb = nbformat.read(tmp_path / name, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors


def test_final_quiz_has_an_answer_key_after_every_question_and_at_most_one_code_cell():
    cells = load(SOURCE / "07_final_quiz.ipynb")["cells"]
    assert sum(c["cell_type"] == "code" for c in cells) <= 1
    questions = 0
    for cell, after in zip(cells, cells[1:]):
        found = re.search(r"\*\*Q(\d+)\b", source(cell))
        if found and not is_hidden(cell):
            questions += 1
            assert is_hidden(after) and source(after).startswith(f"**Answer Q{found[1]}"), found[0]
    keys = [c for c in cells if "answer-key" in c["metadata"].get("tags", [])]
    assert questions == len(keys) >= 20
    for title in ("Diagnosing a fine-tuning problem", "Analysing a fine-tuning dataset's limitations"):
        assert any(title in source(c) for c in cells), title
