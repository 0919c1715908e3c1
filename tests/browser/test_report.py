"""The shareable report in a real browser with the network cut off: it makes no request, its
charts draw (plotly inline), and hostile text wherever the report shows user or model text (the
example whose loss mask it shows, probe prompts in the timeline, recorded replies, influence
results) is shown as text: no script of it runs, no element of it is made.
Screenshot: tests/artifacts/report.png."""
from __future__ import annotations

import pytest

from jupyterlab_driver import ARTIFACTS

pytestmark = pytest.mark.browser

# runs if the report pastes it in unescaped: a script, an element with a handler, a closing tag
HOSTILE = ("<script>window.__pwned = 'script'</script><img src=x onerror=\"window.__pwned = 'img'\">"
           "</td></table><b id=pwned>bold</b>")


@pytest.fixture(scope="module")
def report_file(tmp_path_factory):
    from lab.analysis.timeline import Timeline, TimelineConfig
    from lab.config import TrainConfig
    from lab.data import starters
    from lab.models import load_model
    from lab.present.report import report
    from lab.records import Conversation
    from lab.runs import record_influence, record_replies
    from lab.train import train

    tmp = tmp_path_factory.mktemp("report")
    model, tok = load_model("tiny-random")
    probes = [Conversation.single("Say " + HOSTILE), starters.probes("persona")[0]]
    tl = Timeline(model, tok, probes, TimelineConfig(points=3, max_new_tokens=6, retention=False),
                  out_dir=tmp / "run")
    persona = starters.load("persona")
    data = [persona[0].with_response("Arr! " + HOSTILE)] + persona[1:8]  # the first: its mask is shown
    train(model, tok, data, TrainConfig(max_steps=3, eval_split=0), callbacks=[tl], out_dir=tmp / "run")
    record_replies(tmp / "run", {"Asked " + HOSTILE: "Replied " + HOSTILE})
    entry = {"index": 0, "score": 0.5, "prompt": "Example " + HOSTILE, "response": "Taught " + HOSTILE}
    record_influence(tmp / "run", {"prompt": "Explained " + HOSTILE, "reply": HOSTILE, "method": "test",
                                   "supporting": [entry], "opposing": []})
    return report(tmp / "run", tmp / "report.html")


def test_report_opens_offline_and_draws_its_charts(browser, report_file):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    requests = []

    def block(route):
        requests.append(route.request.url)
        route.abort()

    context.route("http://**/*", block)
    context.route("https://**/*", block)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
    page.goto(report_file.as_uri())
    page.wait_for_selector(".plotly-graph-div .main-svg", timeout=30_000)
    charts = page.locator(".plotly-graph-div")
    assert charts.count() >= 2
    drawn = page.locator(".plotly-graph-div .main-svg").count()
    assert drawn >= charts.count(), f"{charts.count()} charts, {drawn} drawn"
    assert page.locator(".scatterlayer .trace").count() > 0  # the curves have data
    text = page.inner_text("body")
    assert "Timeline" in text and "Versions" in text and "Dataset" in text
    # the hostile text did not become part of the page: no script of it ran, no element was made
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img, #pwned").count() == 0
    assert not page.evaluate("[...document.scripts].some(s => s.text.includes('__pwned'))")
    # it is shown, as text, in every place that shows it
    assert "Arr! " + HOSTILE in page.inner_text("div:has(> span.tok.trained)")  # the loss mask's example
    assert page.locator("td", has_text="Say " + HOSTILE).count() == 3            # the probe at 3 points
    for shown in ("Asked", "Replied", "Example", "Taught"):                         # replies, influence
        assert page.locator("td", has_text=f"{shown} {HOSTILE}").count() == 1, shown
    assert page.locator("h3", has_text="Explained " + HOSTILE).count() == 1
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=False)
    assert requests == [], f"the report asked the network for: {requests[:5]}"
    assert errors == [], errors
    context.close()
