"""The shareable report in a real browser with the network cut off: it makes no request, and
its charts draw (plotly inline). Screenshot: tests/artifacts/report.png."""
from __future__ import annotations

import pytest

from jupyterlab_driver import ARTIFACTS

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def report_file(tmp_path_factory):
    from lab.data import starters
    from lab.config import TrainConfig
    from lab.models import load_model
    from lab.present.report import report
    from lab.analysis.timeline import Timeline, TimelineConfig
    from lab.train import train

    tmp = tmp_path_factory.mktemp("report")
    model, tok = load_model("tiny-random")
    probes = starters.probes("persona")[:2]
    tl = Timeline(model, tok, probes, TimelineConfig(points=3, max_new_tokens=6, retention=False),
                  out_dir=tmp / "run")
    data = starters.load("persona")[:8] + [starters.load("persona")[0].with_response("<script>alert(1)</script>")]
    train(model, tok, data, TrainConfig(max_steps=3, eval_split=0), callbacks=[tl], out_dir=tmp / "run")
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
    assert "<script>alert(1)</script>" in text or "Timeline" in text  # user text shown as text
    assert "Timeline" in text and "Versions" in text and "Dataset" in text
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=False)
    assert requests == [], f"the report asked the network for: {requests[:5]}"
    assert errors == [], errors
    context.close()
