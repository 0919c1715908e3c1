"""CompareView and Lab state tests without a kernel: type prompts and press Compare the way the
browser does, let the background thread generate with the tiny random model, and check the
table: base and tuned columns, word diffs, earlier runs, reference scores, export. Then the
Lab: one session, the builder feeding the train panel and the compare view."""
import csv
import json

import pytest

from lab.records import Conversation
from lab.session import Session
from lab.train import TrainConfig
from widgets import CompareView, DatasetBuilder, Lab, TrainPanel

DATA = [Conversation.single(f"Question {i}?", f"Arr! Answer {i}, matey. Yo-ho!") for i in range(8)]
PROBES = [Conversation.single("Question 1?", "Arr! Answer 1, matey. Yo-ho!", system="Be a pirate."),
          Conversation.single("Question 9?", "Arr! Answer 9, matey. Yo-ho!")]


@pytest.fixture()
def session(tmp_path):
    return Session("tiny-random", runs_dir=tmp_path / "runs")


def sampled(view):
    """Greedy replies of a random model are often empty; seeded sampling gives words."""
    view.decoding, view.temperature, view.max_new_tokens = "sampled", 1.0, 6
    return view


def test_typed_prompts_side_by_side_before_and_after_training(session):
    v = sampled(CompareView(session))
    assert v.source == "typed" and v.probe_list == []
    v.prompts = "Question 1?\n\nSay it on\\ntwo lines"  # as typed: blank lines skipped, \n escapes
    v.compare_clicks += 1
    rows = v.wait(60)
    assert v.error == "" and v.state == "done" and v.progress["done"] == v.progress["total"]
    assert [r["prompt"] for r in rows] == ["Question 1?", "Say it on\ntwo lines"]
    assert [[c["name"] for c in r["columns"]] for r in rows] == [["base", "tuned"]] * 2
    assert all(r["columns"][0]["reply"] == r["columns"][1]["reply"] for r in rows)  # untrained: same model
    assert "The tuned model is the base model" in v.message
    session.train(DATA, TrainConfig(max_steps=4, batch_size=4, lr=5e-3), save=False)
    v.compare_clicks += 1
    rows = v.wait(60)
    base, tuned = rows[0]["columns"]
    assert base["reply"] and tuned["reply"] and base["diff"] is None
    assert "".join(t for op, t in tuned["diff"] if op != "delete") == tuned["reply"]
    assert 0 <= tuned["similarity"] <= 1 and v.message == "Compared 2 prompts."
    assert session.runs[-1].replies["Question 1?"] == tuned["reply"]  # recorded with the run


def test_earlier_runs_appear_as_columns(session):
    v = sampled(CompareView(session))
    session.train(DATA, TrainConfig(max_steps=2, batch_size=4, lr=5e-3), save=False, name="first")
    v.compare(["Question 1?"])
    first = v.wait(60)[0]["columns"][1]["reply"]
    session.train(DATA, TrainConfig(max_steps=2, batch_size=4, lr=5e-3), save=False, name="second")
    v.compare(["Question 1?", "Never asked before"])
    rows = v.wait(60)
    assert [c["name"] for c in rows[0]["columns"]] == ["base", "tuned", "first"]
    assert rows[0]["columns"][2]["reply"] == first and rows[1]["columns"][2]["reply"] is None
    session.reset_to_base()  # the last run is history now, too
    v.compare(["Question 1?"])
    assert [c["name"] for c in v.wait(60)[0]["columns"]] == ["base", "tuned", "first", "second"]


def test_probes_with_reference_mode(session):
    v = CompareView(session, PROBES, max_new_tokens=4)
    assert v.source == "probes" and [p["system"] for p in v.probe_list] == ["Be a pirate.", None]
    v.reference_mode = True
    v.compare_clicks += 1
    rows = v.wait(60)
    assert [r["reference"] for r in rows] == [p.response for p in PROBES]
    assert rows[0]["system"] == "Be a pirate."
    for row, probe in zip(rows, PROBES):
        nll = session.score([probe], tuned=False).per_example[0]
        base, tuned = row["columns"]
        assert base["nll"] == pytest.approx(nll) and tuned["nll"] == pytest.approx(nll)
        assert "".join(tok for tok, _ in base["probs"]).startswith(probe.response)
        assert all(0 < p <= 1 for _, p in base["probs"])


def test_export_the_table(session, tmp_path):
    v = sampled(CompareView(session))
    v.export_clicks += 1
    assert "nothing to export yet" in v.error
    v.prompts, v.references = "Question 1?\nQuestion 2?", "Arr! Answer 1"
    v.reference_mode = True
    v.compare()
    v.wait(60)
    v.export_path = str(tmp_path / "table.csv")
    v.export_clicks += 1
    assert v.error == "" and "Exported 2 rows" in v.message
    table = list(csv.DictReader(open(tmp_path / "table.csv")))
    assert [r["prompt"] for r in table] == ["Question 1?", "Question 2?"]
    assert table[0]["reference"] == "Arr! Answer 1" and float(table[0]["tuned nll"]) > 0
    v.export_path = str(tmp_path / "table.jsonl")
    v.export_clicks += 1
    assert json.loads(open(tmp_path / "table.jsonl").readline())["prompt"] == "Question 1?"


def test_errors_show_in_the_view(session):
    v = CompareView(session)
    v.compare_clicks += 1
    assert "no prompts" in v.error and v.state == "idle"
    v.prompts, v.decoding, v.temperature = "Hi", "sampled", 0.0
    v.compare_clicks += 1
    assert "temperature above 0" in v.error
    nothing = CompareView()
    nothing.prompts = "Hi"
    nothing.compare_clicks += 1
    assert "no model loaded yet" in nothing.error


def test_lab_binds_the_four_views_to_one_session(session, tmp_path):
    from widgets import ExperimentsView

    app = Lab(session=session, path=tmp_path / "ds.jsonl", starter="persona", runs_dir=tmp_path / "runs")
    assert isinstance(app.builder, DatasetBuilder) and isinstance(app.trainer, TrainPanel)
    assert isinstance(app.compare, CompareView) and "sftlab-app" in app._dom_classes
    assert isinstance(app.experiments, ExperimentsView)
    assert app.titles == ("1 · Dataset", "2 · Train", "3 · Compare", "4 · Experiments")
    assert app.trainer.session is app.compare.session is app.experiments.session is session
    # the experiments train what the builder holds, from the Train tab's settings
    app.trainer.epochs, app.trainer.lr = 3.0, 1e-4
    assert app.experiments.data() == app.builder.examples
    cfg = app.experiments._train_config()
    assert (cfg.epochs, cfg.lr) == (3.0, 1e-4)
    assert app.builder.tokenizer is session.tokenizer
    assert app.trainer.n_examples == 44 and app.compare.source == "probes" and len(app.compare.probe_list) == 12
    # the builder's edits reach the train panel; its probes reach the compare view
    app.builder.rows = app.builder.rows[:10]
    assert app.trainer.n_examples == 10
    app.builder.load_starter("support")
    assert app.trainer.n_examples == 45 and app.compare.probe_list[0]["system"]
    app.builder.max_length = 100
    assert app.trainer.max_length == 100
    app.trainer.completion_only = False
    assert app.builder.completion_only is False
    # a model loaded in the train panel becomes everyone's
    app.trainer.load_model("tiny-random")
    app.trainer.wait(60)
    assert app.session is app.trainer.session is app.compare.session is not session
    assert app.experiments.session is app.session and app.builder.tokenizer is app.session.tokenizer


def test_earlier_runs_come_back_after_a_restart(session):
    v = sampled(CompareView(session))
    session.train(DATA, TrainConfig(max_steps=2, batch_size=4, lr=5e-3), name="first")
    v.compare(["Question 1?"])
    first = v.wait(60)[0]["columns"][1]["reply"]
    assert v.message == "Compared 1 prompt." and v.tuned_run == "first"
    fresh = Session("tiny-random", runs_dir=session.runs_dir)  # a restarted kernel
    w = sampled(CompareView(fresh))
    w.compare(["Question 1?"])
    row = w.wait(60)[0]
    assert [c["name"] for c in row["columns"]] == ["base", "tuned", "first"]
    assert row["columns"][2]["reply"] == first and "tuned model is the base model" in w.message
    fresh.load_run("first")  # one click in the Train tab: the run is the tuned column again
    w.compare(["Question 1?"])
    row = w.wait(60)[0]
    assert [c["name"] for c in row["columns"]] == ["base", "tuned"] and w.tuned_run == "first"
    assert row["columns"][1]["reply"] == first


def test_timeline_slider_and_what_changed(session):
    from lab.analysis.timeline import TimelineConfig

    v = CompareView(session, PROBES, max_new_tokens=4)
    assert v.timeline == [] and v.timeline_run == ""
    run = session.train(DATA, TrainConfig(max_steps=4, batch_size=4, lr=5e-3), probes=PROBES,
                        timeline=TimelineConfig(points=3, max_new_tokens=4, retention=False))
    assert v.timeline_run == run.name and [p["step"] for p in v.timeline] == [0, 2, 4]
    first, second = v.timeline[0], v.timeline[1]
    assert [r["prompt"] for r in second["rows"]] == [p.prompt for p in PROBES]
    assert first["rows"][0]["diff"] is None and first["before_step"] is None
    assert second["before_step"] == 0
    for before, after in zip(first["rows"], second["rows"]):  # each point diffed against the one before
        assert "".join(t for op, t in after["diff"] if op != "insert") == before["reply"]
        assert "".join(t for op, t in after["diff"] if op != "delete") == after["reply"]
    # What changed? on the probes' reference answers
    v.learned_clicks += 1
    assert "press Compare first" in v.error
    v.reference_mode = True
    v.compare()
    rows = v.wait(60)
    tuned = rows[0]["columns"][1]
    assert all(len(cell) == 3 and 0 < cell[2] <= 1 for cell in tuned["probs"]), "base p beside tuned p"
    v.learned_clicks += 1
    v.wait(60)
    assert v.error == "" and v.learned["source"] == "reference answers" and v.learned["examples"] == 2
    assert v.learned["tokens"]["promoted"] and "What changed: scored" in v.message
    session.reset_to_base()
    v.learned_clicks += 1
    assert "tuned model is the base model" in v.error and v.timeline == []


def test_which_examples_under_a_tuned_reply(session):
    """The front end sets the row and presses its button; the answer lands under that row."""
    from pathlib import Path

    from lab.analysis import influence
    from lab import runs
    from lab.data.dataio import read_dataset

    v = sampled(CompareView(session))
    v.compare(["Question 1?", "Question 2?"])
    v.wait(60)
    v.influence_row, v.influence_clicks = 1, v.influence_clicks + 1
    assert "shows the base model" in v.error and v.influence == {}
    run = session.train(DATA, TrainConfig(max_steps=2, batch_size=4, lr=5e-3), name="taught")
    v.compare()
    rows = v.wait(60)
    with session.job("training a run in the Train tab"):  # another tab's job holds the session
        v.influence_clicks += 1
    assert v.error.startswith("Busy: training a run") and "\n" not in v.error and v.state == "done"
    v.influence_clicks += 1
    v.wait(60)
    assert v.error == "" and v.state == "done" and v.influence["row"] == 1
    assert v.influence["reply"] == rows[1]["columns"][1]["reply"] and v.influence["note"] == influence.NOTE
    trained = read_dataset(Path(run.out) / runs.DATASET)
    assert v.influence["examples"] == len(trained) == 7  # one of the 8 held out for eval
    entries = v.influence["supporting"] + v.influence["opposing"]
    assert entries and len(v.influence["supporting"]) <= 5 and len(v.influence["opposing"]) <= 5
    for e in entries:  # indices into the run's dataset.jsonl, with its texts
        assert (e["prompt"], e["response"]) == (trained[e["index"]].prompt, trained[e["index"]].response)
    assert all(e["score"] > 0 for e in v.influence["supporting"]) and all(e["score"] < 0 for e in v.influence["opposing"])
    assert v.message == f"Which examples: ranked the {len(trained)} training examples of run taught for the tuned reply in row 2."
    assert runs.read_jsonl(Path(run.out) / runs.INFLUENCE)[-1]["reply"] == v.influence["reply"]
    v.compare()  # a new table: the answer belonged to the old one
    v.wait(60)
    assert v.influence == {}


def test_references_stay_with_their_prompts(session):
    """After a comparison of probes with references, typed prompts never carry another
    prompt's reference; a kept prompt keeps its own, wherever its line moves."""
    v = CompareView(session)
    v.compare(PROBES)  # sets the prompts and their references, as the quickstart does
    v.wait(60)
    assert [c.response for c in v.items()] == [p.response for p in PROBES]
    v.prompts = "A question of my own\nQuestion 9?"  # typed over the probes, one kept on another line
    items = v.items()
    assert [c.prompt for c in items] == ["A question of my own", "Question 9?"]
    assert [c.response for c in items] == [None, PROBES[1].response]
    v.prompts = "Only new words here"
    assert [c.response for c in v.items()] == [None]
