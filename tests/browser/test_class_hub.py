"""The class challenge on a real multi-user JupyterHub (bench/class_demo.py, `make class-demo`):
the hub on 127.0.0.1 with its proxy from npm, a shared password, SimpleLocalProcessSpawner, the
challenge in a shared folder. Two participants log in, each in their own browser context, get
their own single-user server, open the `challenge.ipynb` the hub put in their home, type
examples in the Dataset tab (the name is prefilled with their hub user name), press Submit in
both at the same time, each sees their rank; then the teacher logs in, opens `gallery.ipynb`
and its Gallery tab ranks both. Stopping the hub leaves no process of it running.

Screenshots (tests/artifacts/): class_hub_participant_a.png, class_hub_participant_b.png,
class_hub_gallery.png.

Skipped, with what to install, when JupyterHub or configurable-http-proxy is missing
(`make class-demo` installs both).
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from jupyterlab_driver import JupyterLab
from sftlab_ui import assert_clean, assert_fits, button, show, wait_state, watch_state

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench import class_demo  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]

VIEWPORT = {"width": 1400, "height": 1000}
EXAMPLES = {
    "ann": [("My invoice shows two charges for May.",
             "Thanks for reaching out! A double charge is refunded within 5 business days; "
             "open Billing > Invoices and press Report duplicate. Best, Brightwave Support"),
            ("How do I reset my password?",
             "Thanks for reaching out! Press Forgot password on the sign-in page and follow the "
             "email link within 30 minutes. Best, Brightwave Support")],
    "bo": [("Can I pause my plan?", "Yes. Best, Brightwave Support")],
}


class HubUser:
    """What the JupyterLab driver needs of a server, for one user's server behind the hub:
    their URL under /user/<name>, their home as the root, the hub's log."""

    def __init__(self, hub, user: str):
        self.hub, self.user = hub, user
        self.url, self.root, self.log = f"{hub.url}/user/{user}", hub.home(user), hub.log

    def lab_url(self, notebook: str) -> str:
        return f"{self.url}/lab/tree/{notebook}?reset"  # the login cookie, no token

    def fresh_notebook(self, name: str, source=None) -> Path:
        path = self.root / name  # the notebook the hub's pre-spawn hook put in the home
        if not path.is_file():
            pytest.fail(f"the hub did not put {name} in {self.root} (see seed_home in "
                        f"the config {self.hub.root / 'hub' / 'jupyterhub_config.py'})", pytrace=False)
        return path

    def log_tail(self, n: int = 40) -> str:
        return self.hub.log_tail(n)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    if class_demo.missing():
        pytest.skip("the JupyterHub try needs " + "; and ".join(class_demo.missing())
                    + " (`make class-demo` installs both)")
    hub = class_demo.start_hub(tmp_path_factory.mktemp("class-hub"))
    try:
        yield hub
    finally:
        hub.stop()


def login(browser, hub, user: str) -> JupyterLab:
    """Log in at the hub's login page in a browser context of its own; wait for JupyterLab."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(60_000)
    page = context.new_page()
    page.console_errors = []  # type: ignore[attr-defined]
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(f"console.error: {m.text}"))
    page.on("pageerror", lambda e: page.console_errors.append(f"page error: {e}"))
    jlab = JupyterLab(page, HubUser(hub, user), f"class_hub_{user}")
    page.goto(f"{hub.url}/hub/login", wait_until="domcontentloaded")
    page.locator("#username_input").fill(user)
    page.locator("#password_input").fill(class_demo.PASSWORD)
    page.locator("#login_submit").click()
    jlab.wait_for(lambda: f"/user/{user}/lab" in page.url and page.locator(".jp-LabShell").count(),
                  f"{user}'s own JupyterLab after logging in (the hub spawns it)", 240)
    hub.watch()
    return jlab


def type_examples(jlab, rows):
    ds = show(jlab, ".sftlab-dataset")
    examples = ds.locator(".sftlab-example")
    for instruction, response in rows:
        n = examples.count()
        button(ds, "Add example").click()
        jlab.wait_for(lambda: examples.count() == n + 1, "a new empty example card", 30)
        card = examples.last
        card.get_by_label("Instruction").fill(instruction)
        card.get_by_label("Response").fill(response)
        card.get_by_label("Response").press("Tab")  # blur: the edit is committed on change
        jlab.wait_for(lambda: re.search(rf"\b{n + 1} examples?\b", ds.locator(".sftlab-summary").inner_text()),
                      f"the summary (computed in Python) to count {n + 1} examples", 30)


def open_challenge(browser, hub, user: str):
    jlab = login(browser, hub, user)
    jlab.open_notebook("challenge.ipynb", timeout_s=180)
    jlab.run_all(timeout_s=300)
    assert_clean(jlab, f"{user}'s challenge notebook")
    root = show(jlab, ".sftlab-challenge")
    assert "Brightwave support bot" in root.inner_text(), root.inner_text()
    name = root.locator(".sftlab-challenge-name").input_value()
    assert name == user, f"the name should be prefilled with the hub user name {user!r}, not {name!r}"
    type_examples(jlab, EXAMPLES[user])
    root = show(jlab, ".sftlab-challenge")
    n = len(EXAMPLES[user])
    jlab.wait_for(lambda: f"{n} of at most 8" in root.locator(".sftlab-challenge-budget").inner_text(),
                  f"the budget line to count {n} examples", 30)
    return jlab, root


def test_two_participants_on_a_hub_submit_and_the_teacher_sees_both(hub, browser):
    contexts = []
    try:
        ann, ann_root = open_challenge(browser, hub, "ann")
        contexts.append(ann.page.context)
        bo, bo_root = open_challenge(browser, hub, "bo")
        contexts.append(bo.page.context)
        # both press Submit at about the same moment: two users' kernels train at once
        for jlab, root in ((ann, ann_root), (bo, bo_root)):
            watch_state(root)
            button(root, "Submit").click()
        results = {}
        for user, jlab, root in (("ann", ann, ann_root), ("bo", bo, bo_root)):
            wait_state(jlab, root, "done", f"{user}'s submission", 420)
            results[user] = root.locator(".sftlab-challenge-result").inner_text()
            assert "Rank" in results[user] and "held-out NLL" in results[user], results[user]
            assert_clean(jlab, f"{user} submitted")
            assert_fits(jlab, root, f"{user} submitted")
        assert any("of 2" in r for r in results.values()), results
        for user, jlab, root in (("ann", ann, ann_root), ("bo", bo, bo_root)):
            root.scroll_into_view_if_needed()
            jlab.screenshot(f"class_hub_participant_{'a' if user == 'ann' else 'b'}.png")
        landed = sorted(p.name for p in (hub.challenge / "submissions").iterdir() if not p.name.startswith("."))
        assert landed == ["ann", "bo"], landed
        assert json.loads((hub.challenge / "submissions" / "bo" / "submission.json").read_text())

        # -- the teacher's gallery ----------------------------------------------------------------
        teacher = login(browser, hub, class_demo.TEACHER)
        contexts.append(teacher.page.context)
        teacher.open_notebook("gallery.ipynb", timeout_s=180)
        teacher.run_all(timeout_s=300)
        assert_clean(teacher, "the teacher's gallery notebook")
        page = teacher.page
        page.locator(".jp-OutputArea-output .lm-TabBar-tab").filter(has_text="Gallery").last.click()
        g = page.locator(".sftlab-gallery").last
        rows = g.locator(".sftlab-gallery-board tbody tr[data-folder]")
        teacher.wait_for(lambda: g.is_visible() and rows.count() == 2, "both submissions in the gallery", 60)
        folders = rows.evaluate_all("els => els.map((e) => e.dataset.folder)")
        assert sorted(folders) == ["ann", "bo"], folders
        ranks = [rows.nth(i).locator("td").first.inner_text().strip() for i in range(2)]
        assert ranks == ["1", "2"], ranks
        nlls = [float(rows.nth(i).locator("td").nth(2).inner_text()) for i in range(2)]
        assert nlls[0] <= nlls[1], nlls
        examples = {f: rows.nth(i).locator("td").nth(4).inner_text().strip() for i, f in enumerate(folders)}
        assert examples == {"ann": "2", "bo": "1"}, examples
        assert_fits(teacher, g, "the teacher's gallery")
        g.scroll_into_view_if_needed()
        teacher.screenshot("class_hub_gallery.png")
    finally:
        for c in contexts:
            c.close()
    hub.watch()
    left = hub.stop()
    assert not left, f"processes of the hub still running after it stopped (ended by id): {left}"
