"""Stop works while a notebook cell waits for a run (what Run All does in the quickstart): the
click reaches the kernel, the run ends within a step or two, and the waiting cell returns the
stopped run. Screenshot: stop_while_waiting.png."""
from __future__ import annotations

import json
import re

import pytest
from sftlab_ui import button, show  # beside this file

pytestmark = pytest.mark.browser

STEPS = 1000  # far more than the test waits for: only Stop ends this run early


def _notebook(path, runs):
    cells = [
        "from widgets import Lab\n"
        f"app = Lab('tiny-random', path='stop_ds.jsonl', starter='persona', runs_dir={str(runs)!r})\n"
        "app.selected_index = 1\napp",
        f"app.trainer.max_steps = {STEPS}\napp.trainer.timeline = False\n"
        "app.trainer.start()\nrun = app.trainer.wait()\n"
        "print(f'RESULT steps={run.result.steps} stopped={run.result.stopped}')",
    ]
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "source": c, "outputs": [],
                     "execution_count": None} for c in cells],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))
    return path


def test_stop_while_a_cell_waits_for_the_run(jlab, tmp_path):
    page = jlab.page
    jlab.open_notebook("stop_wait.ipynb", _notebook(tmp_path / "stop_wait.ipynb", tmp_path / "runs"))
    page.locator(".jp-NotebookPanel .jp-Notebook").first.click(position={"x": 5, "y": 5})
    jlab.click_menu("Run", "Run All Cells")
    tr = show(jlab, ".sftlab-train")
    progress = tr.locator(".sftlab-progress-text")

    def step():
        m = re.search(r"step (\d+)/", progress.inner_text())
        return int(m.group(1)) if m else 0

    jlab.wait_for(lambda: step() >= 3, "the run to reach step 3 while the cell waits", 180)
    stop = button(tr, "Stop")
    jlab.wait_for(lambda: stop.is_enabled(), "Stop to be enabled while training", 30)
    at_click = step()
    stop.click()
    jlab.wait_for(lambda: "RESULT" in page.locator(".jp-OutputArea-output").last.inner_text(),
                  "the waiting cell to return after Stop", 120)
    out = page.locator(".jp-OutputArea-output").last.inner_text()
    m = re.search(r"RESULT steps=(\d+) stopped=(\w+)", out)
    jlab.screenshot("stop_while_waiting.png")
    assert m, out
    steps, stopped = int(m.group(1)), m.group(2)
    assert stopped == "True", out
    # the browser shows progress a few times a second: allow the steps made while the click
    # travelled, but not a run that went on to its end
    assert steps < at_click + 50 and steps < STEPS, (at_click, steps)
    jlab.wait_for(lambda: tr.get_attribute("data-state") == "stopped", "the panel to say stopped", 30)
