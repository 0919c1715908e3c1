"""The quickstart notebook in a real browser: it runs clean, its widgets render, and a person
can add an example, train the tiny random model and compare base and tuned replies.

Screenshots of each stage go to tests/artifacts/: quickstart_ran.png, dataset_added.png,
training_done.png, compare.png (FAILED-<test>.png when a test fails).
"""
from __future__ import annotations

import re

import pytest
from sftlab_ui import assert_clean, button, shown_text, show, wait_state, watch_state  # beside this file

pytestmark = pytest.mark.browser

NOTEBOOK = "00_quickstart.ipynb"
ROOTS = (".sftlab-dataset", ".sftlab-train", ".sftlab-compare")  # the widgets Lab() shows

NEW_INSTRUCTION = "Name the colour of a clear daytime sky."
NEW_RESPONSE = "The sky is blue."

RUN_ALL_S = 240      # the notebook top to bottom with the tiny random model
TRAIN_S = 240        # one short run of the tiny random model
COMPARE_S = 180      # base and tuned replies


# ----------------------------------------------------------------------------- helpers

def run_quickstart(jlab):
    jlab.open_notebook(NOTEBOOK)
    jlab.run_all(timeout_s=RUN_ALL_S)
    assert_clean(jlab, "after Run All")
    page = jlab.page
    for sel in ROOTS:
        jlab.wait_for(lambda sel=sel: page.locator(sel).count() > 0,
                      f"the widget {sel} to render", 60)


# ----------------------------------------------------------------------------- tests

def test_run_all_cells_renders_widgets(jlab):
    """Run > Run All Cells: every cell runs, no errors, the three widgets render, and the
    charts are drawn by one copy of plotly.js for the page (plotly's FigureWidget sent its
    5 MB library with each of the Lab's five figures: 19 s to Run All the Lab cell, 7 s now)."""
    run_quickstart(jlab)
    ds = show(jlab, ".sftlab-dataset")
    jlab.wait_for(lambda: ds.locator(".sftlab-example").count() > 0 or "No examples" in ds.inner_text(),
                  "the dataset builder to draw its list", 30)
    jlab.wait_for(lambda: ds.locator(".js-plotly-plot .trace").count() > 0,
                  "the token-length histogram to draw its bars", 30)
    show(jlab, ".sftlab-train")
    charts = jlab.page.locator(".sftlab-train .js-plotly-plot")
    jlab.wait_for(lambda: charts.count() == 2, "the Train tab's loss and timeline charts", 30)
    loads = jlab.page.evaluate("globalThis.__sftlabPlotlyLoads")
    assert loads == 1, f"plotly.js should load once for the page, loaded {loads} times"
    jlab.screenshot("quickstart_ran.png")


def test_add_example_train_and_compare(jlab):
    """The whole loop by hand: type an example, train, compare base and tuned."""
    page = jlab.page
    run_quickstart(jlab)

    # -- dataset: add one example by typing it -------------------------------------------
    ds = show(jlab, ".sftlab-dataset")
    examples = ds.locator(".sftlab-example")
    before = examples.count()
    button(ds, "Add example").click()
    jlab.wait_for(lambda: examples.count() == before + 1, "a new empty example card", 30)
    card = examples.last
    card.get_by_label("Instruction").fill(NEW_INSTRUCTION)
    card.get_by_label("Response").fill(NEW_RESPONSE)
    card.get_by_label("Response").press("Tab")  # blur: the edit is committed on change
    # Python computes the summary and each card's token count: seeing them proves the kernel
    # received the new example, not only the browser.
    n = before + 1
    jlab.wait_for(lambda: re.search(rf"\b{n} examples\b", ds.locator(".sftlab-summary").inner_text()),
                  f"the summary (computed in Python) to count {n} examples", 30)
    jlab.wait_for(lambda: "tokens" in card.locator(".sftlab-tokens").inner_text(),
                  "the new example's token count (computed in Python)", 30)
    page.wait_for_timeout(500)  # a late redraw must not drop what was typed
    text = shown_text(card)
    if NEW_INSTRUCTION not in text or NEW_RESPONSE not in text:
        jlab.fail(f"the typed example did not stay in its card; the card shows:\n{text}")
    card.evaluate("e => e.scrollIntoView({block: 'center'})")
    jlab.screenshot("dataset_added.png")
    assert_clean(jlab, "after adding an example")

    # -- train: Start, the loss chart fills, the run ends ----------------------------------
    tr = show(jlab, ".sftlab-train")
    jlab.wait_for(lambda: re.search(rf"\b{n} examples\b", tr.locator(".sftlab-estimate").inner_text()),
                  f"the train panel to train on the {n} examples of the builder", 30)
    watch_state(tr)
    button(tr, "Start").click()
    wait_state(jlab, tr, "done", "the training run", TRAIN_S)
    points = tr.locator(".sftlab-loss-chart .scatterlayer .trace .points path")
    jlab.wait_for(lambda: points.count() > 0, "the loss chart to show points", 30)
    progress = tr.locator(".sftlab-progress-text").inner_text()
    m = re.search(r"step (\d+)/(\d+)", progress)
    if not m or m.group(1) != m.group(2):
        jlab.fail(f"the progress line should show the last step when done, shows {progress!r}")
    tr.locator(".sftlab-loss-chart").evaluate("e => e.scrollIntoView({block: 'center'})")
    jlab.screenshot("training_done.png")
    assert_clean(jlab, "after training")

    # -- compare: base and tuned side by side ---------------------------------------------
    cmp_ = show(jlab, ".sftlab-compare")
    if cmp_.locator(".sftlab-source").input_value() == "typed" and \
            not cmp_.locator(".sftlab-prompts").input_value().strip():
        prompts = cmp_.locator(".sftlab-prompts")
        prompts.fill(NEW_INSTRUCTION)
        prompts.press("Tab")
    # Greedy replies of the tiny random model are blank (it repeats "\n"); seeded sampling
    # gives words, so there is text to see in both columns.
    cmp_.locator(".sftlab-decoding").select_option("sampled")
    watch_state(cmp_)
    button(cmp_, "Compare").click()
    wait_state(jlab, cmp_, "done", "the comparison", COMPARE_S)
    # Every row has a base and a tuned cell; the tiny random model may end a reply at once
    # (an empty cell), so each column needs text in some row, not in all.
    rows = cmp_.locator("tbody tr.sftlab-row").count()
    for col in ("base", "tuned"):
        replies = cmp_.locator(f"td.sftlab-cell[data-column={col}] .sftlab-reply")
        # a placeholder ("…", "(empty reply)") is not a reply
        texts = replies.evaluate_all(
            "els => els.map(e => e.querySelector('.sftlab-pending') ? '' : e.innerText)")
        if not rows or len(texts) != rows or not any(t.strip() for t in texts):
            jlab.fail(f"the comparison should show a {col} reply in each of its {rows} rows, "
                      f"with text in at least one; {col} cells: {texts}; states seen: "
                      f"{cmp_.evaluate('el => el.__sftlabStates')}; decoding: "
                      f"{cmp_.locator('.sftlab-decoding').input_value()}")
    heads = cmp_.locator("thead th").all_inner_texts()
    if not all(any(re.search(word, h, re.IGNORECASE) for h in heads) for word in ("base", "tuned")):
        jlab.fail(f"the comparison table should head a base and a tuned column; heads: {heads}")
    cmp_.locator(".sftlab-replies-table").evaluate("e => e.scrollIntoView({block: 'start'})")
    jlab.screenshot("compare.png")
    assert_clean(jlab, "after comparing")
