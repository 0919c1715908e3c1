"""The class challenge's widgets without a kernel: set traits the way the front end does and
check the Python side. The Gallery reads hand-made submission folders (no training): the
leaderboard, broken ones apart, two opened side by side with a word diff, a new submission
picked up by the watcher, Export. The ChallengePanel refuses a dataset over the budget with
its message and keeps the name once given."""
from __future__ import annotations

import json
import time

import pytest

from lab.classroom import store
from lab.classroom.challenge import new

pytest.importorskip("anywidget")


def land(ch, name, nll, examples, reply):
    d = ch.submissions / name
    d.mkdir()
    (d / "dataset.jsonl").write_text("".join(json.dumps(
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}) + "\n"
        for i in range(examples)))
    store.write(d, {"name": name, "participant": name, "submitted_ts": time.time(), "submitted_at": "now",
                    "scores": {"held_out_nll": nll, "checks_passed": 2, "checks_total": 10},
                    "public_replies": [{"prompt": p.prompt, "reply": reply} for p in ch.probes],
                    "dataset": {"examples": examples, "tokens": 40 * examples, "duplicates": 0, "diversity": 0.5,
                                "covered": ch.topics[:examples], "topics": ch.topics}}, {})


def test_gallery_ranks_opens_two_and_picks_up_new_submissions(tmp_path):
    from widgets import Gallery

    ch = new(tmp_path / "c", "support", model="tiny-random")
    land(ch, "ann", 2.0, 5, "Thanks for reaching out! Bills are due by the 15th.")
    land(ch, "bo", 1.5, 3, "Thanks for reaching out! Pay by the 15th.")
    (ch.submissions / "torn").mkdir()
    g = Gallery(ch.folder, every=0.2)
    try:
        assert [(r["rank"], r["name"], r["examples"]) for r in g.rows] == [(1, "bo", 3), (2, "ann", 5)]
        assert [(b["folder"], b["status"]) for b in g.broken] == [("torn", "broken")]
        g.opened = ["bo", "ann"]  # as the Open and Beside buttons do
        assert [d["name"] for d in g.detail] == ["bo", "ann"] and len(g.detail[1]["dataset"]) == 5
        first, second = g.detail[0]["replies"][0], g.detail[1]["replies"][0]
        assert first["diff"] is None and ["insert", "Bills are due"] in [list(p) for p in second["diff"]]
        with pytest.raises(ValueError, match="no submission by 'cy'; the leaderboard has bo, ann"):
            g.show("cy")
        land(ch, "cy", 1.0, 20, "x")
        deadline = time.monotonic() + 10
        while len(g.rows) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [r["name"] for r in g.rows] == ["cy", "bo", "ann"], "the watcher did not pick up the new one"
        assert [s["key"] for s in g.separates][:2] == ["examples", "tokens"] and g.separates[0]["top"] == 20
        g.export_path = str(tmp_path / "class.html")
        g.export_clicks += 1
        assert g.error == "" and (tmp_path / "class.html").is_file() and "Wrote" in g.message
    finally:
        g.close()


def test_challenge_panel_refuses_a_dataset_over_budget_and_keeps_the_name(tmp_path):
    from lab.data import starters
    from lab.session import Session
    from widgets.challenge_panel import ChallengePanel

    ch = new(tmp_path / "c", "support", model="tiny-random", budget=4)
    data = starters.load("support")[:6]
    state = tmp_path / "ds.jsonl.challenge.json"
    panel = ChallengePanel(ch, Session("tiny-random"), lambda: data, state_path=state)
    assert panel.examples == 6 and panel.challenge["budget"] == 4 and panel.challenge["held_out"] == 5
    assert ch.held_out[0].prompt not in json.dumps(panel.challenge)  # nothing held out goes to the browser
    panel.name = "Ada"
    panel.submit_clicks += 1
    assert "your dataset has 6 examples and this challenge allows at most 4: remove 2" in panel.error
    assert panel.state == "idle" and not ch.submissions.exists() or not any(ch.submissions.iterdir())
    state.write_text(json.dumps({"name": "Ada"}))
    again = ChallengePanel(ch, None, lambda: data[:2], state_path=state)
    assert again.name == "Ada" and again.name_locked and again.examples == 2
