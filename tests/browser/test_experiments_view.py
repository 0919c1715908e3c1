"""The Experiments view with a full history, in a real JupyterLab: a notebook cell runs a size
ladder over two seeds, a loss ablation and a run that fails (tiny random model, two steps
each), compares two runs, then shows the view. Its tables are built in the browser from rows
of data: every run listed, the failed run's note a message (no exception name, no traceback),
the variants over their seeds, held-out NLL with one probe's replies at a time, the size
ladder's chart for that experiment, two runs side by side with a word diff; text that looks
like HTML shows as text; nothing is wider than the page (1400 px).

Screenshots (tests/artifacts/): experiments_tables.png, experiments_nll.png,
experiments_ladder.png, experiments_compare.png.
"""
from __future__ import annotations

import json

import pytest
from sftlab_ui import assert_clean, assert_fits, show

pytestmark = pytest.mark.browser

NOTEBOOK = "experiments_view.ipynb"
ROOT = ".sftlab-experiments"
MARKUP = "Say <b>bold</b> & <img src=x onerror=alert(1)>"

CELL = f"""
from lab.data import starters
from lab.generate import GenConfig
from lab.records import Conversation
from lab.session import Session
from lab.train import TrainConfig
from widgets import ExperimentsView

lab = Session("tiny-random", runs_dir="exp_runs")
cfg = TrainConfig(max_steps=2, batch_size=4)
gen = GenConfig(max_new_tokens=16, temperature=0.9, seed=0)  # tiny-random: greedy replies are empty
# a run that fails in training: no example has a reply
broken = ExperimentsView(lab, [Conversation.single("q")], runs_dir="exp_runs", config=cfg, gen=gen)
broken.add("baseline", "", "broken"); broken.run(); broken.wait()
probes = starters.probes("persona")
view = ExperimentsView(lab, starters.load("persona"), eval_data=probes, runs_dir="exp_runs", config=cfg,
                       gen=gen, probes=[p.prompt for p in probes[:3]] + [{MARKUP!r}])
view.seeds = 2
view.add("subsample", "4, 8, 16", "sizes")
view.seeds = 1
view.add("loss", "")
view.run(); view.wait()
view.compare("sizes/n=4 s0", "loss/full-sequence")
view
"""


def notebook(tmp_path):
    nb = {"cells": [{"cell_type": "code", "id": "experiments", "metadata": {}, "execution_count": None,
                     "outputs": [], "source": CELL}],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / NOTEBOOK
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


def texts(root, sel: str) -> list[str]:
    return [t.strip() for t in root.locator(sel).all_inner_texts()]


def test_experiments_tables_ladder_and_comparison(jlab, tmp_path):
    page = jlab.page
    jlab.open_notebook(NOTEBOOK, source=notebook(tmp_path))
    jlab.run_all(timeout_s=600)
    assert_clean(jlab, "after Run All")
    ex = show(jlab, ROOT)

    # -- status: every run, the failed one with a message -------------------------------------
    status = ex.locator(".sftlab-exp-status tr[data-run]")
    jlab.wait_for(lambda: status.count() == 9, f"nine runs in the status table ({status.count()})", 60)
    runs = status.evaluate_all("els => els.map((e) => e.dataset.run)")
    assert runs[0] == "broken/baseline" and runs[1:] == [
        "sizes/n=4 s0", "sizes/n=4 s1", "sizes/n=8 s0", "sizes/n=8 s1", "sizes/n=16 s0", "sizes/n=16 s1",
        "loss/completion-only", "loss/full-sequence"], runs
    failed = ex.locator(".sftlab-exp-status tr[data-run='broken/baseline']")
    note = failed.locator(".sftlab-exp-failed").inner_text().strip()
    if not note.startswith("no trainable example") or "Error" in note or "Traceback" in note:
        jlab.fail(f"the failed run's note should read as a message, reads {note!r}")
    assert "run.json" in failed.locator(".sftlab-exp-failed").get_attribute("title")
    assert texts(ex, ".sftlab-exp-status tr[data-run] .sftlab-status").count("done") == 8
    assert_fits(jlab, ex, "with nine runs")
    ex.locator(".sftlab-exp-status").evaluate("e => e.scrollIntoView({block: 'start'})")
    jlab.screenshot("experiments_tables.png")

    # -- variants over their seeds, held-out NLL with one probe's replies -----------------------
    variants = texts(ex, ".sftlab-exp-group-table tr[data-variant] td:first-child")
    assert variants == ["broken/baseline", "sizes/n=4", "sizes/n=8", "sizes/n=16", "loss/completion-only",
                        "loss/full-sequence"], variants
    assert texts(ex, ".sftlab-exp-group-table .sftlab-best").count("lowest mean") == 1
    nll = ex.locator(".sftlab-exp-nll")
    assert nll.locator("tr[data-run]").count() == 9
    assert nll.locator(".sftlab-best").count() >= 1 and "*" in nll.locator("tr[data-run='loss/full-sequence']").inner_text()
    probe = nll.locator("select.sftlab-exp-probe")
    assert probe.locator("option").count() == 4
    probe.select_option(index=3)  # the probe that looks like HTML
    jlab.wait_for(lambda: "reply to probe 4" in nll.locator("thead").inner_text(),
                  "the reply column to follow the chosen probe", 10)
    shown = probe.locator("option").nth(3).inner_text()
    assert shown == f"4. {MARKUP}", f"the probe should show as typed: {shown!r}"
    assert_fits(jlab, ex, "with the NLL tables")
    nll.evaluate("e => e.scrollIntoView({block: 'start'})")
    jlab.screenshot("experiments_nll.png")

    # -- two runs side by side ----------------------------------------------------------------------
    table = ex.locator(".sftlab-exp-compare-table")
    assert table.locator("tbody tr").count() == 4
    heads = texts(table, "thead th")
    assert heads[1].startswith("sizes/n=4 s0") and "held-out NLL" in heads[1], heads
    assert heads[2].startswith("loss/full-sequence"), heads
    prompt = table.locator("tbody tr").nth(3).locator(".sftlab-prompt-cell").inner_text().strip()
    assert prompt == MARKUP, prompt
    assert ex.locator("b:has-text('bold'), img[src='x']").count() == 0, "text became HTML"
    assert table.locator(".sftlab-ins, .sftlab-del-mark").count() > 0, "no word diff in the second column"
    titles = table.locator(".sftlab-ins").evaluate_all("els => els.map((e) => e.title)")
    assert all(t == "added" or t.startswith("in place of: ") for t in titles), titles  # as the Compare tab
    assert_fits(jlab, ex, "with the comparison")
    table.evaluate("e => e.scrollIntoView({block: 'start'})")
    jlab.screenshot("experiments_compare.png")

    # -- one experiment that is a size ladder: its chart shows ----------------------------------
    ex.locator(".sftlab-exp-show select").select_option("sizes")
    jlab.wait_for(lambda: status.count() == 6, "the filter to show the six runs of 'sizes'", 30)
    ladder = ex.locator(".sftlab-exp-ladder")
    jlab.wait_for(lambda: ladder.is_visible(), "the size ladder's chart to show", 30)
    ladder.evaluate("e => e.scrollIntoView({block: 'center'})")  # plotly draws once it is on screen
    jlab.wait_for(lambda: ladder.locator(".main-svg").count() > 0, "the size ladder's chart to draw", 60)
    assert ex.locator(".sftlab-exp-nll tr[data-run]").count() == 6
    assert_fits(jlab, ex, "with the ladder")
    ladder.evaluate("e => e.scrollIntoView({block: 'center'})")
    jlab.screenshot("experiments_ladder.png")
    ex.locator(".sftlab-exp-show select").select_option("all experiments")
    jlab.wait_for(lambda: not ladder.is_visible() and status.count() == 9, "all runs again, no ladder", 30)
    assert_clean(jlab, "at the end")
    print(f"[{jlab.test_name}] {jlab.console_report()} {page.url}")
