"""Watching a run change the model, in a real browser: the timeline chart (probe and retention
NLL) draws live beside the loss while the quickstart trains, and the Compare tab's step slider
walks through the run's replies.

The run forces six points with the Train tab's "Timeline points" box (points by budget, the
default, are tested in tests/test_timeline.py). Runs on the tiny random model like every browser test; `SFT_LAB_BROWSER_FAST=0` runs it on the
default model. Screenshots: timeline_live.png, timeline_done.png, slider_first.png,
slider_last.png (tests/artifacts/).
"""
from __future__ import annotations

import os
import re
import time

import pytest
from sftlab_ui import assert_clean, button, show, wait_state, watch_state

pytestmark = pytest.mark.browser

NOTEBOOK = "00_quickstart.ipynb"
S_FAST = os.environ.get("SFT_LAB_BROWSER_FAST", "1") != "0"  # the tiny model: a longer run to watch


def _timeline_points(page) -> int:
    """Markers drawn in the Train tab's timeline chart, all traces together."""
    return page.locator(".sftlab-timeline-chart .scatterlayer .trace .points path").count()


def test_timeline_draws_live_and_the_slider_walks_the_run(jlab):
    page = jlab.page
    jlab.open_notebook(NOTEBOOK)
    jlab.run_all(timeout_s=900)
    assert_clean(jlab, "after Run All")

    # a second run from the Train tab, long enough to watch: sample the timeline chart as it fills
    tr = show(jlab, ".sftlab-train")
    if S_FAST:
        steps = tr.locator(".sftlab-max-steps")
        steps.fill("40")
        steps.press("Tab")
    # six points, as typed: by budget (the default, 0) a tiny model's short run may get none between
    points = tr.locator(".sftlab-timeline-points")
    points.fill("6")
    points.press("Tab")
    button(tr, "Reset to base").click()
    watch_state(tr)
    button(tr, "Start").click()
    counts: list[int] = []  # markers in the timeline chart, each time the number changed
    deadline = time.monotonic() + 900
    def running() -> bool:  # this run started and has not ended (not the 'done' of Run All's run)
        now = tr.evaluate("el => ({state: el.dataset.state, seen: el.__sftlabStates || []})")
        return not (now["state"] == "done" and any(s != "done" for s in now["seen"]))
    while time.monotonic() < deadline and running():
        n = _timeline_points(page)
        if n and (not counts or n != counts[-1]):
            counts.append(n)
            if len(counts) == 2:
                tr.locator(".sftlab-charts").evaluate("e => e.scrollIntoView({block: 'center'})")
                jlab.screenshot("timeline_live.png")
        page.wait_for_timeout(200)
    wait_state(jlab, tr, "done", "the second run", 900)
    assert len(counts) >= 2 and counts == sorted(counts), \
        f"the timeline chart should gain points while the run trains; drawn counts: {counts}"
    tr.locator(".sftlab-charts").evaluate("e => e.scrollIntoView({block: 'center'})")
    jlab.screenshot("timeline_done.png")
    assert page.locator(".sftlab-timeline-chart .scatterlayer .trace").count() == 3  # probes, Q&A, text

    cmp_ = show(jlab, ".sftlab-compare")
    slider = cmp_.locator(".sftlab-timeline-slider")
    jlab.wait_for(lambda: slider.count() == 1 and slider.is_visible(), "the step slider", 60)
    last = int(slider.get_attribute("max"))
    assert last >= 2, f"the run has {last + 1} timeline points"
    head = cmp_.locator(".sftlab-timeline-head")
    seen = []
    for value in (0, last // 2, last):
        slider.evaluate(f"(e) => {{ e.value = '{value}'; e.dispatchEvent(new Event('input')); }}")
        text = head.inner_text()
        seen.append(int(re.search(r"step (\d+)", text).group(1)))
        assert cmp_.locator(".sftlab-timeline-row").count() >= 2, text
        cmp_.locator(".sftlab-timeline").evaluate("e => e.scrollIntoView({block: 'start'})")
        if value == 0:
            assert "before training" in text
            jlab.screenshot("slider_first.png")
        elif value == last:
            jlab.screenshot("slider_last.png")
    assert seen[0] == 0 and seen == sorted(seen) and seen[-1] > seen[0], seen
    slider.focus()
    slider.press("ArrowLeft")  # the keyboard moves it too, and the key stays in the widget
    assert f"step {seen[-1]}" not in head.inner_text()
