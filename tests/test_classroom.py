"""The class challenge: a challenge folder (made from a starter or by hand, validated with
every problem named), submissions trained the challenge's way and filed whole, twenty
processes publishing at once, broken folders listed without stopping the gallery, the
leaderboard, what separates the top third, and an HTML export with every text escaped."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lab.classroom import challenge as chmod
from lab.classroom import gallery, stats, store
from lab.classroom.challenge import ChallengeError, check_reply, load, new
from lab.data import starters
from lab.records import Conversation

REPO = Path(__file__).resolve().parents[1]
HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def quick(folder: Path, **settings) -> chmod.Challenge:
    """A support challenge on the tiny model that trains one step and answers in 2 tokens."""
    new(folder, "support", model="tiny-random", settings={"max_steps": 1, **settings})
    spec = json.loads((folder / "challenge.json").read_text())
    (folder / "challenge.json").write_text(json.dumps({**spec, "reply_tokens": 2}))
    return load(folder)


# ---------------------------------------------------------------------------- the challenge

def test_new_from_a_starter_splits_probes_by_topic_and_keeps_checks(tmp_path):
    ch = new(tmp_path / "c", "support", budget=12, model="tiny-random")
    assert (ch.title, ch.budget, ch.model) == ("Brightwave support bot", 12, "tiny-random")
    probes = starters.probes("support")
    public, held = [p.prompt for p in ch.probes], [p.prompt for p in ch.held_out]
    assert sorted(public + held) == sorted(p.prompt for p in probes) and not set(public) & set(held)
    assert {t for p in ch.probes for t in p.tags} == {t for p in ch.held_out for t in p.tags} == set(ch.topics)
    assert all(p.checks for p in ch.held_out) and ch.settings.epochs == 3 and ch.settings.batch_size == 4
    # a right reply passes its checks, the base model's kind of generic reply does not
    ref = ch.held_out[0]
    assert all(check_reply(ref.conv.response, ref.checks))
    assert not all(check_reply("Please contact your provider for billing questions.", ref.checks))
    assert "held_out" not in json.dumps(ch.public()["settings"]) and ref.prompt not in json.dumps(ch.public())
    with pytest.raises(FileExistsError, match="already holds a challenge"):
        new(tmp_path / "c", "support")


def test_a_hand_written_challenge_gets_every_problem_named(tmp_path):
    folder = tmp_path / "c"
    with pytest.raises(ChallengeError, match="no challenge.json here: make a challenge with `sft-lab class new"):
        load(folder)
    folder.mkdir()
    (folder / "challenge.json").write_text('{"title": "x",')
    with pytest.raises(ChallengeError, match=r"not valid JSON .* at line 1"):
        load(folder)
    (folder / "challenge.json").write_text(json.dumps(
        {"title": "", "task": "t", "budget": 0, "settings": {"lr": 5, "seed": 1}, "colour": "red"}))
    with pytest.raises(ChallengeError) as err:
        load(folder)
    text = str(err.value)
    for part in ("challenge.json", "unknown field 'colour'", "'title' must be a non-empty text",
                 "'budget' must be a whole number of at least 1", "lr is 5, far too high"):
        assert part in text, (part, text)
    row = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
    (folder / "challenge.json").write_text(json.dumps({"title": "t", "task": "t", "budget": 5}))
    (folder / "probes.jsonl").write_text(json.dumps(row) + "\n")
    (folder / "held_out.jsonl").write_text(
        json.dumps({**row, "checks": [{"regex": "(unclosed"}]}) + "\n" + "not json\n"
        + json.dumps({"messages": [{"role": "user", "content": "only a question"}]}) + "\n"
        + json.dumps({**row, "checks": [{"phrase": "a", "regex": "b"}]}) + "\n")
    with pytest.raises(ChallengeError) as err:
        load(folder)
    text = str(err.value)
    for part in ("held_out.jsonl line 1: check 1's regex '(unclosed' does not compile",
                 "held_out.jsonl line 2: not valid JSON", "held_out.jsonl line 3: needs a prompt and a reference answer",
                 "held_out.jsonl line 4: check 1 must be {\"phrase\": \"text\"} or {\"regex\": \"pattern\"}"):
        assert part in text, (part, text)
    (folder / "held_out.jsonl").write_text(json.dumps({**row, "checks": [{"phrase": "hello"}]}) + "\n")
    ch = load(folder)
    assert ch.model == "default" and ch.reply_tokens == 64 and ch.settings.seed == 0 and len(ch.held_out) == 1


def test_names_are_sanitised_and_the_budget_is_enforced(tmp_path):
    assert store.sanitise(f"  Ann {HOSTILE} ") == "Ann_script_alert_1_script_img_src_x_oner"  # 40 characters at most
    assert store.sanitise("../../x") == "x" and store.sanitise("Zoë") == "Zoe"
    with pytest.raises(store.BadName, match="type your name"):
        store.sanitise("<>/")
    from lab.classroom.submit import OverBudget, check_data

    ch = new(tmp_path / "c", "support", budget=3, model="tiny-random")
    with pytest.raises(OverBudget, match="your dataset has 5 examples and this challenge allows at most 3: remove 2"):
        check_data(ch, starters.load("support")[:5])
    assert len(check_data(ch, starters.load("support")[:3])) == 3


# ---------------------------------------------------------------------------- submitting

@pytest.mark.slow  # two training runs and replies to ten probes: about 10 s here
def test_submit_trains_scores_and_files_one_folder(tmp_path):
    from lab.classroom.submit import submit

    ch = quick(tmp_path / "c")
    data = starters.load("support")[:6]
    row = submit(ch, data, "Ann Lee")
    folder = ch.submissions / "Ann_Lee"
    assert row["path"] == str(folder) and row["rank"] == 1 and row["of"] == 1
    names = {p.name for p in folder.iterdir()}
    assert {"submission.json", "scores.json", "run.json", "dataset.jsonl", "config.json", "replies.json"} <= names
    assert "model" not in names and not any(n.startswith(".") for n in names)  # no weights unless asked
    card = json.loads((folder / "submission.json").read_text())
    scores = json.loads((folder / "scores.json").read_text())
    assert card["participant"] == "Ann Lee" and card["scores"]["checks_total"] == 10
    assert card["scores"]["held_out_nll"] == pytest.approx(scores["held_out_nll"]) and len(scores["per_example"]) == 5
    assert card["dataset"]["examples"] == 6 and card["dataset"]["tokens"] > 6 * 40
    assert json.loads((folder / "config.json").read_text())["max_steps"] == 1  # the challenge's settings
    assert len(card["public_replies"]) == 5
    replies = json.loads((folder / "replies.json").read_text())
    assert set(replies) == {p.prompt for p in ch.probes + ch.held_out}
    assert not (ch.submissions / store.INCOMING).exists() or not any((ch.submissions / store.INCOMING).iterdir())
    # a second submission of the same person is filed beside it; the leaderboard ranks the latest
    again = submit(ch, data[:2], "Ann Lee", keep_weights=True)
    assert again["folder"] == "Ann_Lee--2" and (ch.submissions / "Ann_Lee--2" / "model" / "config.json").is_file()
    board = gallery.leaderboard(ch)
    assert [(r["folder"], r["attempts"]) for r in board["rows"]] == [("Ann_Lee--2", 2)]


# ---------------------------------------------------------------------------- many at once

WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from lab.classroom import store
    subs, name, start, nll = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    staging = store.incoming(subs, name)
    staging.mkdir(parents=True)
    (staging / "dataset.jsonl").write_text('{"messages": []}\\n' * 1000)  # something to lose
    while time.time() < start:  # every process publishes at the same moment
        time.sleep(0.001)
    store.write(staging, {"name": name, "participant": name, "submitted_ts": time.time(),
                          "scores": {"held_out_nll": nll, "checks_passed": 1, "checks_total": 2},
                          "dataset": {"examples": 3}}, {"held_out_nll": nll})
    print(store.publish(staging, subs, name).name)
""")


def test_twenty_processes_publishing_at_once_lose_nothing(tmp_path):
    subs = tmp_path / "submissions"
    subs.mkdir()
    start = time.time() + 2.0
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(subs), f"p{i % 10}", str(start), str(1 + i / 100)],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(20)]
    landed = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        landed.append(out.strip())
    assert sorted(landed) == sorted([f"p{i}" for i in range(10)] + [f"p{i}--2" for i in range(10)]), landed
    rows = store.list_all(subs)
    assert len(rows) == 20 and all(r["status"] == "ok" for r in rows)
    assert sorted(r["scores"]["held_out_nll"] for r in rows) == pytest.approx([1 + i / 100 for i in range(20)])
    assert all((subs / n / "dataset.jsonl").read_text().count("\n") == 1000 for n in landed)
    assert not any((subs / store.INCOMING).iterdir())


def test_broken_and_half_written_submissions_are_listed_never_in_the_way(tmp_path):
    ch = new(tmp_path / "c", "support", model="tiny-random")
    subs = ch.submissions

    def ok(name, nll, examples, text="a reply", **extra):
        d = subs / name
        d.mkdir()
        (d / "dataset.jsonl").write_text(json.dumps(
            {"messages": [{"role": "user", "content": f"{HOSTILE} q"}, {"role": "assistant", "content": text}]}) + "\n")
        store.write(d, {"name": name, "participant": f"{name} {HOSTILE}", "submitted_ts": time.time(),
                        "submitted_at": "now", **extra,
                        "scores": {"held_out_nll": nll, "checks_passed": 1, "checks_total": 10},
                        "public_replies": [{"prompt": ch.probes[0].prompt, "reply": text}],
                        "dataset": {"examples": examples, "tokens": examples * 50, "duplicates": 0,
                                    "diversity": 0.8, "response_words": examples, "covered": ["billing"] * (examples > 10),
                                    "topics": ch.topics}}, {})

    ok("best", 1.0, 20, text=f"Thanks {HOSTILE}")
    ok("mid", 2.0, 12)
    ok("low", 3.0, 4)
    (subs / "torn").mkdir()
    (subs / "torn" / "submission.json").write_text('{"name": "torn", "scores": {')
    (subs / "nocard").mkdir()
    (subs / "nocard" / "run.json").write_text("{}")
    (subs / store.INCOMING / f"gone.{2 ** 22 + 12345}.abcd").mkdir(parents=True)  # its process is gone
    (subs / store.INCOMING / f"busy.{os.getpid()}.abcd").mkdir()  # this process: still writing
    board = gallery.leaderboard(ch)
    assert [r["name"] for r in board["rows"]] == ["best", "mid", "low"]
    problems = {r["folder"]: (r["status"], r["problem"]) for r in board["broken"]}
    assert problems["torn"][0] == "broken" and "damaged" in problems["torn"][1]
    assert problems["nocard"][0] == "broken" and "half-written" in problems["nocard"][1]
    assert problems[f"gone.{2 ** 22 + 12345}.abcd"][0] == "broken"
    assert problems[f"busy.{os.getpid()}.abcd"][0] == "in progress"
    text = gallery.table_text(board)
    assert text.splitlines()[1].split()[:2] == ["1", "best"] and "torn: broken" in text
    sep = {s["key"]: s for s in gallery.separates(board["rows"])}
    assert sep["examples"]["top"] == 20 and sep["examples"]["rest"] == 8 and sep["covered"]["top"] == 1
    page = gallery.export_html(ch, tmp_path / "class.html").read_text()
    assert "<script>alert" not in page and "<img src=x" not in page and "&lt;script&gt;alert(1)" in page
    assert "torn" in page and "What separates the top third" in page
    assert ch.held_out[0].prompt not in page and ch.held_out[0].conv.response not in page


# ---------------------------------------------------------------------------- what datasets are like

def test_topic_coverage_finds_the_starters_own_topics():
    ch_probes = [chmod.Probe(conv=p, id=p.id, tags=p.tags) for p in starters.probes("support")]
    vocab = stats.topic_words(ch_probes)
    data = starters.load("support")
    right = sum(stats.topic_of(c, vocab) == c.tags[0] for c in data)
    assert right >= 0.8 * len(data), f"{right} of {len(data)} examples given their own topic"
    billing = [c for c in data if c.tags[0] == "billing"]
    assert stats.coverage(billing, ch_probes)["covered"] == ["billing"]
    assert stats.coverage(data, ch_probes)["covered"] == ["billing", "outage", "router", "moving", "cancellation"]
    same = [Conversation.single("When is my bill due?", "By the 15th.")] * 3
    assert stats.shape(same)["duplicates"] == 2 and stats.shape(same)["diversity"] == 0.0
    assert stats.shape(data)["diversity"] > 0.8
