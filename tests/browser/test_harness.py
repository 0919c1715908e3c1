"""Prove the harness itself: in this JupyterLab, ipywidgets and anywidget views render and
talk to the kernel. If this fails and the quickstart test fails too, look at the environment
(jupyterlab_widgets / anywidget front-end extensions, Chromium) before the lab's widgets.

The notebook is generated into the server's temporary root; nothing is committed.
"""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.browser

COUNTER = '''
import anywidget, traitlets

class Counter(anywidget.AnyWidget):
    _esm = """
    function render({ model, el }) {
      const b = document.createElement("button");
      b.className = "harness-counter";
      const show = () => { b.textContent = `count is ${model.get("value")}`; };
      b.addEventListener("click", () => { model.set("value", model.get("value") + 1); model.save_changes(); });
      model.on("change:value", show);
      show();
      el.appendChild(b);
    }
    export default { render };
    """
    value = traitlets.Int(0).tag(sync=True)

counter = Counter()
counter
'''

BUTTON = '''
import ipywidgets as W
clicks = W.Label("clicked 0")
button = W.Button(description="Harness button")
def on_click(_):
    n = int(clicks.value.split()[-1]) + 1
    clicks.value = f"clicked {n}"
button.on_click(on_click)
W.VBox([button, clicks])
'''


def _notebook(tmp_path):
    cells = [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
              "source": src} for src in (COUNTER, BUTTON)]
    nb = {"cells": cells, "nbformat": 4, "nbformat_minor": 5,
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                      "language": "python"}}}
    path = tmp_path / "harness.ipynb"
    path.write_text(json.dumps(nb))
    return path


def test_widgets_render_and_sync(jlab, tmp_path):
    jlab.open_notebook("harness.ipynb", source=_notebook(tmp_path))
    jlab.run_all(timeout_s=120)
    jlab.assert_clean("after Run All")

    page = jlab.page
    counter = page.locator("button.harness-counter")
    counter.wait_for(state="visible")
    counter.click()
    counter.click()
    jlab.wait_for(lambda: counter.inner_text() == "count is 2", "the anywidget counter to read 2", 30)

    page.get_by_role("button", name="Harness button").click()
    label = page.locator(".widget-label", has_text="clicked")
    jlab.wait_for(lambda: label.inner_text() == "clicked 1",
                  "the ipywidgets Label to change after a kernel-side on_click", 30)
    jlab.screenshot("harness_widgets.png")
    jlab.assert_clean("after clicking")
