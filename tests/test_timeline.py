"""Watching SFT change the model: the timeline file, the forgetting meter and what was learned,
on the tiny random model and on literal data whose right answer is known by construction.
Where replies are compared, the base is `taught` (conftest.py): greedy tiny-random's replies
are all empty, and "" == "" proves nothing."""
import json
import shutil
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from lab.analysis import forgetting, timeline
from lab import runs
from lab.config import TrainConfig
from lab.generate import GenConfig, generate
from lab.analysis.learned import learned, summarize
from lab.records import Conversation
from lab.analysis.timeline import Timeline, TimelineConfig, point_steps
from lab.train import Callback, train

DATA = [Conversation.single(f"Question {i}?", f"Arr! Answer {i}, matey. Yo-ho!") for i in range(16)]
PROBES = [Conversation.single("Question 3?", "Arr! Answer 3, matey. Yo-ho!"),
          Conversation.single("Say something new.")]  # no reference: replies only
CFG = TrainConfig(max_steps=6, batch_size=4, lr=5e-3, eval_split=0)


def test_point_steps_cover_the_run():
    assert point_steps(10, 6) == [0, 2, 4, 6, 8, 10]
    assert point_steps(7, 3) == [0, 4, 7] and point_steps(1, 6) == [0, 1]
    assert point_steps(5, 1) == [5] and point_steps(5, 0) == []


def test_timeline_file_one_line_per_point(taught, tmp_path):
    from lab.models import load_model

    model, tok = load_model(str(taught.path))
    gen = GenConfig(max_new_tokens=5)
    base_replies = generate(model, tok, PROBES, gen)
    assert all(base_replies), base_replies
    tl = Timeline(model, tok, PROBES, TimelineConfig(points=4, max_new_tokens=5, retention=True))
    tl.out_dir = tmp_path / "run"
    # a gentler rate than CFG's, which leaves the taught model with empty replies at step 6
    train(model, tok, DATA, replace(CFG, lr=1e-3), callbacks=[tl], out_dir=tmp_path / "run")
    rows = timeline.load(tmp_path / "run")
    assert [r["step"] for r in rows] == [0, 2, 4, 6] and rows == tl.points
    assert all(r["prompts"] == [p.prompt for p in PROBES] and len(r["replies"]) == 2 for r in rows)
    assert rows[0]["replies"] == base_replies                        # step 0: the base model
    assert rows[-1]["replies"] == generate(model, tok, PROBES, gen)  # last: the tuned model
    assert rows[-1]["replies"] != rows[0]["replies"] and all(rows[-1]["replies"])
    nll = [r["probe_nll"][0] for r in rows]
    assert all(r["probe_nll"][1] is None for r in rows) and nll[-1] < nll[0]
    assert rows[-1]["mean_probe_nll"] == nll[-1]
    assert all(set(r["retention"]) == {"qa", "text"} for r in rows)
    report = rows[-1]["forgetting"]
    assert report["questions"] == 30 and 0 <= report["tuned_accuracy"] <= 1
    assert tl.forgetting == report and "forgetting" not in rows[0]
    # the timeline is complete before the run card, which comes last
    assert (tmp_path / "run" / "timeline.jsonl").stat().st_mtime_ns <= (tmp_path / "run" / "run.json").stat().st_mtime_ns


def test_a_stop_during_a_point_keeps_the_points_written(tiny, tmp_path):
    model, tok = tiny
    stop = threading.Event()
    tl = Timeline(model, tok, PROBES, TimelineConfig(points=4, max_new_tokens=3, retention=False),
                  out_dir=tmp_path / "run", on_point=lambda row: row["step"] == 2 and stop.set())
    result = train(model, tok, DATA, CFG, callbacks=[tl], stop=stop, out_dir=tmp_path / "run")
    assert result.stopped and result.steps == 2
    assert [r["step"] for r in timeline.load(tmp_path / "run")] == [0, 2]


def test_a_killed_run_keeps_its_points(tiny, tmp_path):
    model, tok = tiny

    class Crash(Callback):
        def on_step(self, info):
            if info.step == 3:
                raise KeyboardInterrupt  # as good as a kill for the files on disk

    tl = Timeline(model, tok, PROBES, TimelineConfig(points=4, max_new_tokens=3, retention=False),
                  out_dir=tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        train(model, tok, DATA, CFG, callbacks=[tl, Crash()], out_dir=tmp_path / "run")
    assert [r["step"] for r in timeline.load(tmp_path / "run")] == [0, 2]
    assert runs.read_card(tmp_path / "run")["status"] == "interrupted"


def test_replies_at_a_point_with_the_point_before():
    pts = [{"step": 0, "prompts": ["a", "b"], "replies": ["x", "y"]},
           {"step": 4, "prompts": ["a", "b"], "replies": ["x!", "y"]}]
    assert timeline.replies_at(pts, 0)[0] == {"prompt": "a", "reply": "x", "before": None, "step": 0,
                                              "before_step": None}
    assert [(r["reply"], r["before"]) for r in timeline.replies_at(pts, 1)] == [("x!", "x"), ("y", "y")]


# -- the forgetting meter -------------------------------------------------------------------
@pytest.mark.parametrize("reply,accept,right", [
    ("It has 8 legs.", ["8", "eight"], True), ("Eight legs!", ["8", "eight"], True),
    ("About 80 of them.", ["8", "eight"], False), ("3.5 sides", ["3"], False),
    ("The capital of France is Paris.", ["Paris"], True), ("Parisian food", ["Paris"], False),
    ("Plants use CO2.", ["carbon dioxide", "CO2"], True), ("no idea", ["Tokyo"], False)])
def test_answers_match_whole_words_and_numbers(reply, accept, right):
    assert forgetting.correct(reply, accept) is right


def test_flips_by_construction(tok):
    meter = forgetting.Meter(tok)
    n = len(meter.questions)
    base = {"replies": [q.conv.response for q in meter.questions], "correct": [True] * n, "accuracy": 1.0}
    tuned_right = [i != 4 for i in range(n)]
    tuned = {"replies": ["Arr!"] * n, "correct": tuned_right, "accuracy": sum(tuned_right) / n}
    base["correct"][7] = False
    report = meter.report(base, tuned)
    assert [r["question"] for r in report["right_to_wrong"]] == [meter.questions[4].conv.prompt]
    assert [r["question"] for r in report["wrong_to_right"]] == [meter.questions[7].conv.prompt]
    assert report["right_to_wrong"][0]["tuned"] == "Arr!" and report["base_accuracy"] == 1.0
    # every reference answer holds one of its accepted forms, so the key itself scores 30/30
    assert all(forgetting.correct(q.conv.response, q.accept) for q in meter.questions)
    assert len(forgetting.texts()) == 10


@pytest.mark.slow  # 10 steps on the retention paragraphs and the meter twice: 3.5 s
def test_meter_measures_its_own_texts(tiny):
    """By construction: trained on the retention paragraphs, the model finds them likelier;
    the meter's text NLL falls, and far more than its Q&A NLL."""
    model, tok = tiny
    meter = forgetting.Meter(tok)
    before = meter.nll(model)
    paragraphs = [Conversation.single("Tell me something.", t) for t in forgetting.texts()]
    train(model, tok, paragraphs, TrainConfig(max_steps=10, lr=2e-2, eval_split=0, batch_size=10))
    after = meter.nll(model)
    assert before["text"] - after["text"] > 2 and before["text"] - after["text"] > before["qa"] - after["qa"]


# -- what was learned ------------------------------------------------------------------------
def test_summarize_ranks_by_mean_change_and_counts():
    ex = [[{"token": " Arr", "change": 2.0}, {"token": "!", "change": 1.0}, {"token": " sir", "change": -2.0}],
          [{"token": "Arr", "change": 4.0}, {"token": "!", "change": 1.0}, {"token": " sir", "change": -1.0}],
          [{"token": "\n", "change": 9.0}]]  # seen once: left out while others repeat
    s = summarize(ex)
    assert s["examples"] == 3 and s["tokens_scored"] == 7
    assert s["tokens"]["promoted"] == [{"text": "Arr", "count": 2, "mean_change": 3.0},
                                       {"text": "!", "count": 2, "mean_change": 1.0}]
    assert s["tokens"]["suppressed"] == [{"text": "sir", "count": 2, "mean_change": -1.5}]
    assert s["phrases"]["promoted"] == [{"text": "Arr!", "count": 2, "mean_change": 2.0},
                                        {"text": "Arr! sir", "count": 2, "mean_change": 0.8333}]
    assert s["phrases"]["suppressed"] == [{"text": "! sir", "count": 2, "mean_change": -0.25}]
    only_once = summarize([[{"token": "\n", "change": 9.0}]])
    assert only_once["tokens"]["promoted"] == [{"text": "↵", "count": 1, "mean_change": 9.0}]


def test_learned_finds_the_taught_catchphrase(tiny):
    """Tuned to end every reply with 'Yo-ho!', the model promotes exactly that."""
    from lab.models import load_model

    base, tok = load_model("tiny-random")
    tuned, _ = tiny
    train(tuned, tok, DATA, TrainConfig(max_steps=20, batch_size=8, lr=1e-2, eval_split=0))
    probes = [Conversation.single(f"Question {i}?", f"Arr! Answer {i}, matey. Yo-ho!") for i in range(20, 26)]
    s = learned(base, tuned, tok, probes, top=5)
    top = [t["text"] for t in s["tokens"]["promoted"]]
    assert {"Arr", "Yo", "mate"} & set(top), top
    assert s["mean_change"] > 0 and all(t["mean_change"] > 0 for t in s["tokens"]["promoted"])
    replies = learned(base, tuned, tok, [Conversation.single("Question 30?")], top=5)  # no reference
    assert replies["examples"] == 1 and replies["tokens_scored"] > 0


@pytest.mark.slow  # a child process and two runs: 4 s; the same parts run in this process above
def test_cli_learned_and_timeline(tiny, tmp_path, capsys):
    from lab.cli import main
    from lab.runs import save_model

    model, tok = tiny
    save_model(model, tok, tmp_path / "base")
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(c.to_json()) + "\n" for c in DATA))
    probes = tmp_path / "probes.jsonl"
    probes.write_text(json.dumps({"prompt": "Question 3?", "completion": "Arr! Answer 3, matey. Yo-ho!"}) + "\n")
    run = subprocess.run([sys.executable, "-m", "lab", "train", str(data), "--model", str(tmp_path / "base"),
                          "--out", str(tmp_path / "run"), "--max-steps", "4", "--timeline", "3",
                          "--probes", str(probes), "--eval-split", "0"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert [r["step"] for r in timeline.load(tmp_path / "run")] == [0, 2, 4]
    # the other commands in this process (the same main(), no second torch import)
    assert main(["learned", "--base", str(tmp_path / "base"), "--tuned", str(tmp_path / "run" / "model"),
                 "--data", str(probes), "--top", "3"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["examples"] == 1 and set(result) >= {"tokens", "phrases", "mean_change"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"prompt": 5}\n')
    assert main(["train", str(data), "--model", "no-such-model", "--out", str(tmp_path / "r2"),
                 "--timeline", "3", "--probes", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.jsonl, line 2" in err and not (tmp_path / "r2").exists()


def test_step_0_waits_for_the_first_step_when_the_start_is_kept(taught, tmp_path):
    """From the session's base model, the first loss point comes before step 0 is recorded
    (taken from the untouched base copy, so it is the same point)."""
    from lab.session import Session

    s = Session(str(taught.path), runs_dir=tmp_path)
    events = []

    class Steps(Callback):
        def on_step(self, info):
            events.append(("step", info.step))

    base_replies = generate(s.base, s.tokenizer, PROBES, GenConfig(max_new_tokens=3))
    assert all(base_replies), base_replies
    run = s.train(DATA, CFG, callbacks=[Steps()], probes=PROBES,
                  timeline=TimelineConfig(points=3, max_new_tokens=3, retention=True),
                  on_point=lambda row: events.append(("point", row["step"])))
    assert events[:3] == [("step", 1), ("point", 0), ("step", 2)]
    assert [e for e in events if e[0] == "point"] == [("point", 0), ("point", 3), ("point", 6)]
    assert run.timeline[0]["replies"] == base_replies
    assert s._base_answers is not None and run.forgetting["questions"] == 30
    second = s.train(DATA, CFG, probes=PROBES, timeline=TimelineConfig(points=2, max_new_tokens=3))
    assert second.timeline[0]["step"] == 0  # continuing from the tuned model: step 0 taken at once


@pytest.mark.slow  # three runs with timelines and the meter: 4 s
def test_step_0_and_the_base_answers_are_kept_on_disk_per_model(taught, tmp_path, monkeypatch):
    from lab.session import Session

    folder = tmp_path / "base-model"
    shutil.copytree(taught.path, folder)
    monkeypatch.setenv("SFT_LAB_CACHE", str(tmp_path / "cache"))
    tl_cfg = TimelineConfig(points=3, max_new_tokens=3, retention=True)
    first = Session(str(folder), runs_dir=tmp_path / "runs").train(DATA, CFG, probes=PROBES, timeline=tl_cfg)
    assert "cached" not in first.timeline[0] and all(first.timeline[0]["replies"])
    assert len(list((tmp_path / "cache" / "timeline").glob("*.json"))) == 1

    events = []

    class Steps(Callback):
        def on_step(self, info):
            events.append(("step", info.step))

    again = Session(str(folder), runs_dir=tmp_path / "runs")  # a new session, e.g. after a restart
    second = again.train(DATA, CFG, callbacks=[Steps()], probes=PROBES, timeline=tl_cfg,
                         on_point=lambda row: events.append(("point", row["step"])))
    assert events[0] == ("point", 0)  # known before the first step
    assert second.timeline[0]["cached"] is True
    for key in ("replies", "probe_nll", "retention"):
        assert second.timeline[0][key] == first.timeline[0][key]
    assert second.forgetting["base_accuracy"] == first.forgetting["base_accuracy"]
    written = (Path(second.out) / runs.TIMELINE).read_text().splitlines()
    assert json.loads(written[0])["cached"] is True and len(written) == 3

    other = Session(str(folder), runs_dir=tmp_path / "runs").train(  # other probes: another entry
        DATA, CFG, probes=PROBES[:1], timeline=tl_cfg)
    assert "cached" not in other.timeline[0]
    assert len(list((tmp_path / "cache" / "timeline").glob("*.json"))) == 2


class _Slow(Callback):
    """Training steps that take `seconds` each (the tiny model trains in milliseconds)."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def on_step(self, info):
        import time
        time.sleep(self.seconds)


def _auto_run(taught, tmp_path, monkeypatch, point_cost: float, steps: int = 20, step_seconds: float = 0.2):
    """A run of `steps` steps of at least `step_seconds` with points by budget, each point's probe scoring made
    to take `point_cost` seconds more; returns the timeline and the training seconds."""
    from lab.models import load_model
    from lab import score as score_mod

    slow_score = score_mod.score_encoded

    def score_encoded(*args, **kwargs):
        import time
        time.sleep(point_cost)
        return slow_score(*args, **kwargs)

    monkeypatch.setattr(timeline, "score_encoded", score_encoded)
    model, tok = load_model(str(taught.path))
    tl = Timeline(model, tok, PROBES, TimelineConfig(max_new_tokens=3, reply_tokens=6, retention=False))
    result = train(model, tok, DATA, replace(CFG, max_steps=steps, lr=1e-3), callbacks=[_Slow(step_seconds), tl])
    own = sum(p["seconds"] for p in tl.points)
    return tl, result.seconds - own


def test_points_by_budget_stay_within_a_quarter_of_the_training_time(taught, tmp_path, monkeypatch):
    """Points costing about a training step: step 0, the last, and as many between as a
    quarter of the training time holds once the last point's share is set aside."""
    # steps mostly asleep, so a busy machine moves their time little
    tl, train_seconds = _auto_run(taught, tmp_path, monkeypatch, point_cost=0.3, steps=12, step_seconds=0.6)
    steps, spent = [p["step"] for p in tl.points], sum(p["counted"] for p in tl.points)
    between = [p["counted"] for p in tl.points[1:-1]]
    assert steps[0] == 0 and steps[-1] == 12 and between, steps
    assert spent <= 0.25 * train_seconds, (spent, train_seconds, steps)
    # as many as fit: the budget left over would not have held three more (points cost what
    # the machine gives them: 0.4-0.7 s here on a busy 2-core machine)
    assert 0.25 * train_seconds - spent < 3 * max(between), (spent, train_seconds, steps)
    # the first and last points answer with the Compare tab's length, the slider's replies are their start
    assert all(p.get("full", {}).get("max_new_tokens") == 6 for p in (tl.points[0], tl.points[-1]))
    assert not any("full" in p for p in tl.points[1:-1])


@pytest.mark.slow  # 20 paced steps: 10 s
def test_cheap_points_by_budget_are_spread_and_capped(taught, tmp_path, monkeypatch):
    tl, _ = _auto_run(taught, tmp_path, monkeypatch, point_cost=0.0, step_seconds=0.5)
    steps = [p["step"] for p in tl.points]
    assert len(steps) == TimelineConfig.most and steps[0] == 0 and steps[-1] == 20, steps
    assert max(b - a for a, b in zip(steps, steps[1:])) <= 4, steps  # spread over the run, not bunched


def test_short_replies_are_the_start_of_the_full_ones(taught):
    from lab.models import load_model

    model, tok = load_model(str(taught.path))
    tl = Timeline(model, tok, PROBES, TimelineConfig(points=2, max_new_tokens=3, reply_tokens=8, retention=False))
    tl.steps = [0, 1]
    row = tl.record(0, end=True)
    full = [r["reply"] for r in row["full"]["rows"]]
    assert all(row["replies"]) and full == generate(model, tok, PROBES, GenConfig(max_new_tokens=8))
    assert row["replies"] == generate(model, tok, PROBES, GenConfig(max_new_tokens=3))


def test_compare_reuses_the_first_and_last_points(taught, tmp_path, monkeypatch):
    """After a run whose timeline reached its end, the base and tuned replies to its probes
    with the timeline's decoding are the points' replies (nothing decoded again); other
    prompts, another length or sampling are decoded."""
    from lab import session as session_mod
    from lab.session import Session

    s = Session(str(taught.path), runs_dir=tmp_path)
    cfg = GenConfig(max_new_tokens=8)
    base_now = generate(s.base, s.tokenizer, PROBES, cfg)
    run = s.train(DATA, replace(CFG, lr=1e-3), probes=PROBES,
                  timeline=TimelineConfig(points=3, max_new_tokens=3, reply_tokens=8, retention=False))
    tuned_now = generate(s.tuned, s.tokenizer, PROBES, cfg)
    assert tuned_now != base_now and all(tuned_now)
    decoded = []
    real = session_mod.generate
    monkeypatch.setattr(session_mod, "generate",
                        lambda model, tok, prompts, cfg=None, on_token=None:
                        decoded.append(len(prompts)) or real(model, tok, prompts, cfg, on_token=on_token))
    rows = s.compare(PROBES, cfg)
    assert decoded == [] and [r["base"] for r in rows] == base_now and [r["tuned"] for r in rows] == tuned_now
    assert run.timeline[0]["base"] is True
    s.compare([*PROBES, "A new prompt?"], cfg)
    assert decoded == [1, 1]          # only the new prompt, for each model
    s.compare(PROBES, GenConfig(max_new_tokens=5))
    assert decoded == [1, 1, 2, 2]    # another length: decoded
    s.reset_to_base()
    assert s.reply(PROBES, cfg=cfg) == base_now and decoded == [1, 1, 2, 2]  # the base weights' step 0


def test_prepare_fills_the_cache_that_a_first_run_reads(taught, tmp_path, monkeypatch):
    """Set-up computes step 0 per probe set once; the first run of a new session finds it."""
    from lab.session import Session

    folder = tmp_path / "base-model"
    shutil.copytree(taught.path, folder)
    monkeypatch.setenv("SFT_LAB_CACHE", str(tmp_path / "cache"))
    cfg = TimelineConfig(points=3, max_new_tokens=3, reply_tokens=6)
    assert timeline.prepare(str(folder), [PROBES, PROBES[:1]], cfg) == 2
    assert timeline.prepare(str(folder), [PROBES], cfg) == 0  # already there
    run = Session(str(folder), runs_dir=tmp_path / "runs").train(DATA, CFG, probes=PROBES, timeline=cfg)
    first = run.timeline[0]
    assert first["cached"] is True and first["base"] is True and all(first["replies"])
    assert run.forgetting["questions"] == 30


@pytest.mark.slow  # 12 paced steps: 8 s
def test_a_step_0_kept_from_a_busy_set_up_is_rescaled_to_the_machine_now(taught):
    """Step 0's parts timed at set-up on a machine twenty times busier than now would leave no
    room for any point between; the timeline times the probes' NLL once more and scales them."""
    from lab.models import load_model

    model, tok = load_model(str(taught.path))
    cfg = TimelineConfig(max_new_tokens=3, reply_tokens=6, retention=False)
    kept = Timeline(model, tok, PROBES, cfg).record(0, end=True)
    kept = {**kept, "parts": {k: 20 * v for k, v in kept["parts"].items()}}
    tl = Timeline(model, tok, PROBES, cfg, start_point=kept)
    train(model, tok, DATA, replace(CFG, max_steps=12, lr=1e-3), callbacks=[_Slow(0.6), tl])
    # scale x 20 is the probes' NLL time now against its real time at set-up: near 1 (0.2-6 leaves
    # room for a busy moment either way); a kept step 0 left unscaled would give 20.
    assert tl.points[0]["cached"] and 0.2 < tl._scale * 20 < 6, tl._scale
    assert len(tl.points) > 2, [p["step"] for p in tl.points]
