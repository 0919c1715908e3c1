"""A class challenge in a real JupyterLab: two participants, each in their own notebook and
kernel, press Submit in their Lab's Dataset tab (the name typed in the page; one dataset over
the budget first, refused with a message); each sees their score and rank; then the
teacher's Lab shows both in its Gallery tab, ranked, opens the two side by side, and a third
submission landing from another process shows up without a click. Names and texts that look
like HTML stay text.

Screenshots (tests/artifacts/): class_participant_a.png, class_participant_b.png,
class_gallery.png, class_gallery_sides.png.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sftlab_ui import assert_clean, assert_fits, button, show, wait_state, watch_state

pytestmark = pytest.mark.browser

HOSTILE = "<b>bold</b><img src=x onerror=alert(1)>"

SETUP = """
import json
from lab.classroom.challenge import new, load
ch = new("class", "support", budget=8, model="tiny-random", settings={"max_steps": 2})
spec = json.loads(open("class/challenge.json").read())
spec["reply_tokens"] = 4
open("class/challenge.json", "w").write(json.dumps(spec))
"""


def participant(n_examples: int, autosave: str, extra: str = "") -> str:
    return f"""
from lab.data import starters
from widgets import Lab
lab = Lab(challenge="class", path={autosave!r}, runs_dir="runs_{autosave[:-6]}")
rows = starters.load("support")[:{n_examples}]
{extra}
lab.builder.set_examples(rows, lab.builder.probes)
lab
"""


def notebook(tmp_path, name: str, *cells: str):
    nb = {"cells": [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "execution_count": None, "outputs": [],
                     "source": src} for i, src in enumerate(cells)],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / name
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


def submit_in_page(jlab, name: str, *, over_budget_first: bool = False):
    root = show(jlab, ".sftlab-challenge")
    assert "Brightwave support bot" in root.inner_text() and "Thanks for reaching out" in root.inner_text()
    root.locator(".sftlab-challenge-name").fill(name)
    if over_budget_first:
        assert "10 of at most 8 examples" in root.locator(".sftlab-challenge-budget").inner_text()
        button(root, "Submit").click()
        err = root.locator(".sftlab-challenge-error")
        jlab.wait_for(lambda: "allows at most 8: remove 2" in err.inner_text(), "the budget's message", 30)
        # take two examples out the way a person does: delete them in the Dataset tab
        ds = jlab.page.locator(".sftlab-dataset").last
        for _ in range(2):
            ds.locator(".sftlab-example").last.get_by_role("button", name="Delete").click()
        jlab.wait_for(lambda: "8 of at most 8" in root.locator(".sftlab-challenge-budget").inner_text(),
                      "the budget line to count 8 examples", 30)
    watch_state(root)
    button(root, "Submit").click()
    wait_state(jlab, root, "done", f"{name}'s submission", 300)
    result = root.locator(".sftlab-challenge-result").inner_text()
    assert "Rank" in result and "held-out NLL" in result and "checks passed" in result, result
    assert root.locator(".sftlab-challenge-name").is_disabled(), "the name is asked once"
    assert_fits(jlab, root, f"{name} submitted")
    return root, result


def test_two_participants_submit_and_the_teachers_gallery_ranks_both(jlab, tmp_path):
    page = jlab.page
    jlab.open_notebook("class_setup.ipynb", source=notebook(tmp_path, "class_setup.ipynb", SETUP))
    jlab.run_all(timeout_s=120)
    assert_clean(jlab, "making the challenge")

    # -- participant A: 10 examples, over the budget of 8, then trimmed to 8 -----------------------
    jlab.open_notebook("a.ipynb", source=notebook(tmp_path, "a.ipynb", participant(10, "a_data.jsonl")))
    jlab.run_all(timeout_s=300)
    assert_clean(jlab, "participant A's lab")
    root, result_a = submit_in_page(jlab, f"Ann {HOSTILE}", over_budget_first=True)
    assert page.locator("b:text-is('bold'), img[src='x']").count() == 0, "a name became HTML"
    assert "Rank 1 of 1" in result_a, result_a
    jlab.screenshot("class_participant_a.png")

    # -- participant B: 3 examples, a response that looks like HTML ---------------------------------
    extra = f"rows = [rows[0].with_response({HOSTILE!r} + ' ' + rows[0].response)] + rows[1:]"
    jlab.open_notebook("b.ipynb", source=notebook(tmp_path, "b.ipynb", participant(3, "b_data.jsonl", extra)))
    jlab.run_all(timeout_s=300)
    assert_clean(jlab, "participant B's lab")
    root, result_b = submit_in_page(jlab, "Bo")
    assert "of 2" in result_b, result_b
    jlab.screenshot("class_participant_b.png")

    # -- the teacher's gallery ---------------------------------------------------------------------
    teacher = 'from widgets import Lab\nLab(challenge="class", path="teacher.jsonl", teacher=True)'
    jlab.open_notebook("teacher.ipynb", source=notebook(tmp_path, "teacher.ipynb", teacher))
    jlab.run_all(timeout_s=300)
    assert_clean(jlab, "the teacher's lab")
    tabs = page.locator(".jp-OutputArea-output .lm-TabBar-tab")
    tabs.filter(has_text="Gallery").last.click()
    g = page.locator(".sftlab-gallery").last
    jlab.wait_for(lambda: g.is_visible() and g.locator("tbody tr[data-folder]").count() >= 2, "two rows in the gallery", 60)
    rows = g.locator(".sftlab-gallery-board tbody tr[data-folder]")
    folders = rows.evaluate_all("els => els.map((e) => e.dataset.folder)")
    assert sorted(folders) == sorted(["Ann_b_bold_b_img_src_x_onerror_alert_1", "Bo"]), folders
    ranks = [rows.nth(i).locator("td").first.inner_text().strip() for i in range(2)]
    assert ranks == ["1", "2"], ranks
    nlls = [float(rows.nth(i).locator("td").nth(2).inner_text()) for i in range(2)]
    assert nlls[0] <= nlls[1], nlls
    examples = {f: rows.nth(i).locator("td").nth(4).inner_text().strip() for i, f in enumerate(folders)}
    assert examples == {"Ann_b_bold_b_img_src_x_onerror_alert_1": "8", "Bo": "3"}, examples
    assert_fits(jlab, g, "the gallery with two rows")
    g.scroll_into_view_if_needed()
    jlab.screenshot("class_gallery.png")

    # -- two side by side: the datasets and replies; hostile text stays text -------------------------
    rows.nth(0).locator(".sftlab-gallery-open").click()
    rows.nth(1).locator(".sftlab-gallery-beside").click()
    sides = g.locator(".sftlab-gallery-side")
    jlab.wait_for(lambda: sides.count() == 2, "two submissions side by side", 30)
    assert sides.nth(0).locator(".sftlab-gallery-replies tr").count() == 5  # the public probes
    counts = sorted(sides.nth(i).locator(".sftlab-gallery-dataset tr").count() for i in range(2))
    assert counts == [3, 8], counts
    assert HOSTILE in g.inner_text(), "the response that looks like HTML should show as typed"
    assert page.locator("b:text-is('bold'), img[src='x']").count() == 0, "text became HTML"
    assert_fits(jlab, g, "two side by side")
    sides.first.scroll_into_view_if_needed()
    jlab.screenshot("class_gallery_sides.png")

    # -- a third submission from another process lands: the gallery shows it without a click ---------
    cli = subprocess.run([sys.executable, "-m", "lab", "class", "submit", "class", "b_data.jsonl", "--name", "Cy"],
                         cwd=jlab.server.root, capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert cli.returncode == 0, cli.stderr
    jlab.wait_for(lambda: rows.count() == 3, "the third submission to appear in the gallery by itself", 60)
    assert_clean(jlab, "at the end")
