"""The quickstart notebook in a real browser: it runs clean, its widgets render, and a person
can add an example, train the tiny random model and compare base and tuned replies.

Screenshots of each stage go to tests/artifacts/ (quickstart_ran.png, dataset_added.png,
training_done.png, compare.png).
"""
from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser

NOTEBOOK = "00_quickstart.ipynb"
ROOTS = {"dataset": ".sftlab-dataset", "train": ".sftlab-train", "compare": ".sftlab-compare"}

NEW_INSTRUCTION = "Name the colour of a clear daytime sky."
NEW_RESPONSE = "Blue."


# ----------------------------------------------------------------------------- helpers

def show(jlab, key: str):
    """The widget root `.sftlab-<key>`, made visible: if it sits in a tab that is not
    selected, click the tabs of its tab widget until it shows."""
    page = jlab.page
    root = page.locator(ROOTS[key]).last
    jlab.wait_for(lambda: page.locator(ROOTS[key]).count() > 0,
                  f"the {ROOTS[key]} widget to be in the page", 60)
    if root.is_visible():
        root.scroll_into_view_if_needed()
        return root
    tabs = page.locator(".jp-OutputArea-output .lm-TabBar-tab")
    for i in range(tabs.count()):
        tabs.nth(i).click()
        if root.is_visible():
            root.scroll_into_view_if_needed()
            return root
    jlab.fail(f"{ROOTS[key]} is in the page but never became visible, not even after "
              f"clicking each of the {tabs.count()} tab(s)")


def button(root, text: str):
    return root.get_by_role("button", name=re.compile(rf"^\s*{re.escape(text)}\s*$", re.I))


def field(root, label: str):
    """The text field for `label` (instruction / response): by placeholder, aria-label or
    label text; the last one, since a freshly added example goes at the end."""
    pat = re.compile(label, re.I)
    for loc in (root.get_by_placeholder(pat), root.get_by_label(pat)):
        if loc.count():
            return loc.last
    return None


def shown_text(root) -> str:
    """What a person sees in `root`: its text plus the values of its fields."""
    values = root.locator("textarea, input").evaluate_all("els => els.map(e => e.value)")
    return root.inner_text() + "\n" + "\n".join(values)


# ----------------------------------------------------------------------------- tests

def test_run_all_cells_renders_widgets(jlab):
    jlab.open_notebook(NOTEBOOK)
    jlab.run_all(timeout_s=240)
    jlab.assert_clean("after Run All")
    page = jlab.page
    for key, sel in ROOTS.items():
        jlab.wait_for(lambda sel=sel: page.locator(sel).count() > 0,
                      f"the {key} widget ({sel}) to render", 30)
    jlab.screenshot("quickstart_ran.png")


def test_add_example_train_and_compare(jlab):
    page = jlab.page
    jlab.open_notebook(NOTEBOOK)
    jlab.run_all(timeout_s=240)
    jlab.assert_clean("after Run All")

    # -- dataset: add one example by typing it
    ds = show(jlab, "dataset")
    button(ds, "Add example").click()
    instruction, response = field(ds, "instruction"), field(ds, "response")
    if instruction is None or response is None:
        jlab.fail("after 'Add example' found no instruction/response field in the dataset builder")
    instruction.fill(NEW_INSTRUCTION)
    response.fill(NEW_RESPONSE)
    response.press("Tab")  # commit the edit (change events fire on blur)
    page.wait_for_timeout(1000)  # let a re-render after the kernel's echo happen first
    jlab.wait_for(lambda: NEW_INSTRUCTION in shown_text(ds) and NEW_RESPONSE in shown_text(ds),
                  "the new example (instruction and response) to stay in the dataset builder", 30)
    jlab.screenshot("dataset_added.png")
    jlab.assert_clean("after adding an example")

    # -- train: Start, then wait for the loss chart and the end of the run
    tr = show(jlab, "train")
    button(tr, "Start").click()
    points = tr.locator(".scatterlayer .trace .points path, .scatterlayer .trace path.js-line")
    jlab.wait_for(lambda: points.count() > 0, "the loss chart to show points", 180)
    jlab.wait_for(lambda: re.search(r"100\s*%|\bdone\b|finished", tr.inner_text(), re.I),
                  "the train panel to report the run done", 180)
    jlab.screenshot("training_done.png")
    jlab.assert_clean("after training")

    # -- compare: base and tuned side by side
    cmp_ = show(jlab, "compare")
    button(cmp_, "Compare").click()
    jlab.wait_for(lambda: re.search(r"base", cmp_.inner_text(), re.I)
                  and re.search(r"tuned", cmp_.inner_text(), re.I),
                  "base and tuned columns in the compare view", 120)
    jlab.screenshot("compare.png")
    jlab.assert_clean("after comparing")
