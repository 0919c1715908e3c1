"""Learner editions of the workshop: the repository's notebooks are the instructor edition.

`write_learner_edition(out)` copies `notebooks/*.ipynb` into `out` without the cells a learner
must not see before trying (tagged `solution` or `answer-key`), with every output and execution
count cleared and the widget state dropped, so a copy shows nothing a run has not produced on the
learner's own laptop. Helpers beside the notebooks (`notebooks/*.py`) and the glossary
(`GLOSSARY.md`, which every notebook points to) are copied as they are; the instructor guide and
the teachers' README are not: a README for learners takes their place.

A notebook is plain JSON (nbformat 4), read and written here without nbformat, which is a test
dependency only.

>>> nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "# 1. Hi"},
...                 {"cell_type": "code", "metadata": {"tags": ["solution"]}, "source": "x = 1",
...                  "outputs": [], "execution_count": 3}],
...       "metadata": {"widgets": {"state": {}}}, "nbformat": 4, "nbformat_minor": 5}
>>> learner = learner_notebook(nb)
>>> [c["source"] for c in learner["cells"]], learner["metadata"]
(['# 1. Hi'], {})
"""
from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

from .. import atomic

HIDDEN_TAGS = ("solution", "answer-key")   # cells left out of a learner copy
MARKER = ".sft-lab-learner-edition"        # marks a folder this module wrote (safe to refresh)
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"  # the repository's, beside lab/


def is_hidden(cell: dict) -> bool:
    """True for a cell a learner must not see: a solution or an answer key."""
    return any(tag in HIDDEN_TAGS for tag in cell.get("metadata", {}).get("tags", []))


def learner_notebook(nb: dict) -> dict:
    """A copy of the notebook without hidden cells, outputs, execution counts or widget state."""
    out = copy.deepcopy(nb)
    out["cells"] = [c for c in out["cells"] if not is_hidden(c)]
    for cell in out["cells"]:
        cell.get("metadata", {}).pop("execution", None)   # nbclient's timings
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    out.get("metadata", {}).pop("widgets", None)
    return out


def title(nb: dict) -> str:
    """The notebook's first heading, without its number ('# 3. Generalisation' -> 'Generalisation')."""
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            for line in _source(cell).splitlines():
                if line.startswith("# "):
                    return re.sub(r"^\d+\.\s*", "", line[2:].strip())
    return ""


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def learner_readme(titles: list[tuple[str, str]]) -> str:
    """What to run, in what order: the README a learner edition carries."""
    rows = "\n".join(f"| `{name}` | {t} |" for name, t in titles)
    return f"""# SFT Lab workshop: your notebooks

Instruction fine-tuning, hands on: you will fine-tune a small chat model (SmolLM2-135M-Instruct,
all 135 million parameters) on your laptop, compare it with the model it started from, and find
out what the data did to it. Everything runs offline.

## Before you start

The lab must be installed on this laptop (your teacher has done it, or see the SFT Lab README:
`make lab`). Open JupyterLab from that environment, in this folder:

```bash
jupyter lab 00_quickstart.ipynb
```

## In this order

| notebook | what it is about |
| --- | --- |
{rows}

## How to work

* Run the cells from top to bottom (Shift+Enter). Training cells take a few minutes (notebooks
  4 and 6 train several models: about ten minutes each); the other cells take seconds.
* A word you do not know (NLL, perplexity, warmup ratio, probe, ...) is explained in
  `GLOSSARY.md`, in this folder.
* Lines that start with "checked:" are the notebook testing its own sentence against your run;
  `GLOSSARY.md` says what words such as "clearly" or "far" mean there.
* Before a cell that trains or compares models, the text often asks you to **predict** the
  outcome. Write your guess down first: that is where the learning happens.
* Each notebook ends with **exercises**. Try them in new cells below the question; your teacher
  has the worked answers and will go through them with you.
* The final quiz needs no code: write your answers in its markdown cells.
* The notebooks write their runs and your dataset here (`runs/`, `sftlab_dataset.jsonl`). A
  kernel restart loses nothing you built in the lab's Dataset tab.
* Replies differ a little from laptop to laptop and run to run. If every reply is gibberish,
  the notebook is in fast mode (`S.fast` is True): unset `SFT_LAB_FAST` and restart the kernel.
"""


def write_learner_edition(out: str | Path, source: str | Path | None = None) -> list[Path]:
    """Write learner copies of the notebooks in `source` (the repository's notebooks/) into `out`.

    `out` must be new, empty, or a learner edition written before (it is refreshed); it can never
    be the source folder. Returns the paths written.
    """
    src = Path(source) if source else NOTEBOOKS
    out = Path(out)
    notebooks = sorted(src.glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no notebooks (*.ipynb) in {src}; pass the workshop's notebooks folder")
    if out.exists() and out.resolve() == src.resolve():
        raise FileExistsError(f"{out} is the instructor edition itself; choose another folder")
    if out.exists() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise FileExistsError(f"{out} is not empty and not a learner edition; choose a new or empty folder")
    written, titles = [], []
    for path in notebooks:
        nb = learner_notebook(json.loads(path.read_text(encoding="utf-8")))
        titles.append((path.name, title(nb)))
        written.append(atomic.write_text(out / path.name, json.dumps(nb, indent=1, ensure_ascii=False) + "\n"))
    for helper in sorted(src.glob("*.py")) + sorted(src.glob("GLOSSARY.md")):
        written.append(atomic.write_text(out / helper.name, helper.read_text(encoding="utf-8")))
        shutil.copymode(helper, out / helper.name)
    written.append(atomic.write_text(out / "README.md", learner_readme(titles)))
    earlier = (out / MARKER).read_text().split() if (out / MARKER).is_file() else []
    for name in set(earlier) - {p.name for p in written}:   # a notebook the workshop dropped
        if "/" not in name and (Path(name).suffix in (".ipynb", ".py") or name == "GLOSSARY.md"):
            (out / name).unlink(missing_ok=True)
    atomic.write_text(out / MARKER, "".join(f"{p.name}\n" for p in written))
    return written
