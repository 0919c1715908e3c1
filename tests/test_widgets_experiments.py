"""ExperimentsView state tests (no kernel): set traits as the browser would, press the buttons
(`*_clicks += 1`), wait for the queue, and read the table rows, the overlay figure and the
comparison. Plus unit tests of the pure pieces: lab.experiments.plots, lab.experiments.specs."""
import time

import pytest

from lab.experiments.plots import group_rows, nll_table_rows, overlay_losses, run_name
from lab.generate import GenConfig
from lab.records import Conversation
from lab.train import StepInfo, TrainConfig
from lab.experiments.specs import KINDS, make_variants, split_values
from widgets.experiments_view import ALL, ExperimentsView, failure_message

DATA = [Conversation.single(f"q{i}", f"answer number {i} is here", tags=("odd" if i % 2 else "even",))
        for i in range(6)]
FAST = TrainConfig(max_steps=2, batch_size=4)
GEN = GenConfig(max_new_tokens=4)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    from lab.session import Session

    return Session("tiny-random", runs_dir=tmp_path_factory.mktemp("session-runs"))


def view(session, runs_dir, data=DATA, **kw):
    kw = {"eval_data": DATA[:2], "probes": ["q1", "q2"], "config": FAST, "gen": GEN, **kw}
    return ExperimentsView(session, data, runs_dir=runs_dir, **kw)


def add(v, kind, values, experiment=""):
    """Fill the form the way the front end does, then press "Add to queue"."""
    v.kind = kind
    v.params = values
    v.experiment = experiment
    v.add_clicks += 1


# -- pure pieces ----------------------------------------------------------------------------
def test_overlay_losses_draws_one_line_per_run():
    fig = overlay_losses({"a/x": [{"step": 1, "loss": 3.0}, {"step": 2, "eval_loss": 9.0},
                                  {"step": 2, "loss": 2.0}],
                          "a/y": [], "b/z": [{"step": 1, "loss": 5.0}]}, dashed=["b/z"])
    assert [t.name for t in fig.data] == ["a/x", "a/y", "b/z"]
    assert list(fig.data[0].x) == [1, 2] and list(fig.data[0].y) == [3.0, 2.0]  # eval rows skipped
    assert [t.line.dash for t in fig.data] == ["solid", "solid", "dash"]
    assert len({t.line.color for t in fig.data}) == 3
    assert "no runs yet" in overlay_losses({}).layout.title.text and not overlay_losses({}).data


def test_nll_table_rows_marks_the_best_and_keeps_failures():
    cards = [{"experiment": "e", "variant": {"name": "a"}, "status": "done", "eval_nll": 2.0,
              "config": {"completion_only": False}, "probes": [{"prompt": "p", "reply": "r"}]},
             {"experiment": "e", "variant": {"name": "b"}, "status": "done", "eval_nll": 1.5},
             {"experiment": "e", "variant": {"name": "c"}, "status": "failed", "error": "DataError: x"}]
    rows = nll_table_rows(cards)
    assert [(r["run"], r["best"], r["full_sequence_loss"]) for r in rows] == [
        ("e/a", False, True), ("e/b", True, False), ("e/c", False, False)]
    assert rows[2]["eval_nll"] is None and rows[2]["error"] == "DataError: x" and rows[2]["probes"] == []
    assert run_name({}) == "?/?"


def test_make_variants_for_every_kind_and_clear_errors():
    assert set(KINDS) == {"baseline", "subsample", "shuffle_responses", "corrupt_responses", "duplicate",
                          "drop_tag", "loss", "epochs", "lr", "ladder"}
    assert [v.name for v in make_variants("baseline")] == ["baseline"]
    assert [v.config for v in make_variants("loss")] == [{}, {"completion_only": False}]
    assert [(v.transform, v.arg) for v in make_variants("corrupt_responses", "0.5")] == [("corrupt_responses", 0.5)]
    assert [v.name for v in make_variants("duplicate", "0.5, 1")] == ["duplicate=0.5", "duplicate=1"]
    assert [v.config["lr"] for v in make_variants("lr", "1e-4 2e-4 1e-4")] == [1e-4, 2e-4]
    assert split_values("") == []
    for kind, text, match in [("subsample", "", "type example counts"), ("subsample", "ten", "not a number"),
                              ("subsample", "0", ">= 1"), ("lr", "3", "between 0 and 1"),
                              ("loss", "1", "takes no values"), ("drop_tag", "x", "no tags"),
                              ("nope", "", "unknown kind")]:
        with pytest.raises(ValueError, match=match):
            make_variants(kind, text)
    with pytest.raises(ValueError, match="its tags are odd, even"):
        make_variants("drop_tag", "prime", tags=["odd", "even"])


def test_failure_message_reads_as_a_message():
    assert failure_message("DataError: no trainable example: all empty\nTraceback (most recent call last):") == (
        "no trainable example: all empty")
    assert failure_message("ValueError: lr must be above 0") == "lr must be above 0"
    assert failure_message("ZeroDivisionError: division by zero") == "ZeroDivisionError: division by zero"
    assert failure_message("") == "failed"


# -- the widget -----------------------------------------------------------------------------
def test_queue_run_overlay_table_reload_and_compare(session, tmp_path):
    v = view(session, tmp_path)
    assert v.kinds[0]["key"] == "baseline" and {k["key"] for k in v.kinds} == set(KINDS)
    assert v.kind == "subsample" and v.params == KINDS["subsample"].example and v.state == "idle"
    assert "Max steps 2" in v.train_settings and "Batch size 4" in v.train_settings
    assert "held-out set: 2 examples" in v.train_settings
    add(v, "subsample", "2, 4", "sizes")
    add(v, "loss", "")
    assert v.error == "" and "Press Run queue" in v.message
    assert [(r["run"], r["status"]) for r in v.status_rows] == [
        ("sizes/n=2", "queued"), ("sizes/n=4", "queued"),
        ("loss/completion-only", "queued"), ("loss/full-sequence", "queued")]
    v.run_clicks += 1
    assert v.state == "running" and v.running
    v.wait(120)
    assert [r["status"] for r in v.status_rows] == ["done"] * 4
    assert all(r["step"] == r["total"] == 2 for r in v.status_rows)
    assert v.state == "done" and not v.running and "4 done" in v.message
    assert session.tuned is None, "the session's tuned model is never touched"
    assert (v.run_a, v.run_b) == ("loss/completion-only", "loss/full-sequence")  # newest two
    # overlay: one line per run, full-sequence loss dashed
    assert [t.name for t in v.figure.data] == [r["run"] for r in v.status_rows]
    assert [len(t.y) for t in v.figure.data] == [2] * 4
    assert v.figure.data[3].line.dash == "dash"
    # held-out NLL and probe replies per run, as rows of data
    rows = nll_table_rows(v.cards)
    assert all(isinstance(r["eval_nll"], float) for r in rows) and sum(r["best"] for r in rows) >= 1
    assert [p["prompt"] for p in rows[0]["probes"]] == ["q1", "q2"]
    assert [r["run"] for r in v.nll_rows] == [r["run"] for r in rows]
    assert [p["prompt"] for p in v.nll_rows[1]["probes"]] == ["q1", "q2"] and v.variant_rows == []
    assert v.show_options == ["all experiments", "sizes", "loss"]
    v.show = "sizes"  # as the filter does
    assert [t.name for t in v.figure.data] == ["sizes/n=2", "sizes/n=4"]
    assert [r["run"] for r in v.nll_rows] == [r["run"] for r in v.status_rows] == ["sizes/n=2", "sizes/n=4"]

    # a new view (as after a kernel restart) rebuilds everything from the runs folder
    again = view(session, tmp_path)
    assert [(r["run"], r["status"], r["step"]) for r in again.status_rows] == [
        ("sizes/n=2", "done", 2), ("sizes/n=4", "done", 2), ("loss/completion-only", "done", 2),
        ("loss/full-sequence", "done", 2)]
    assert len(again.figure.data) == 4 and len(again.nll_rows) == 4
    assert again.run_options == [r["run"] for r in again.status_rows]
    assert (again.run_a, again.run_b) == ("loss/completion-only", "loss/full-sequence")

    # pick two runs and compare them side by side
    again.run_a, again.run_b = "sizes/n=2", "sizes/n=4"
    again.compare_clicks += 1
    again.wait(60)
    assert again.error == "" and again.state == "done" and "Compared runs sizes/n=2 and sizes/n=4" in again.message
    rows = again.comparison_rows
    assert [r["prompt"] for r in rows] == ["q1", "q2"]
    assert [c["name"] for c in rows[0]["columns"]] == ["sizes/n=2", "sizes/n=4"]
    assert rows[0]["columns"][0]["diff"] is None and rows[0]["columns"][1]["diff"] is not None
    assert set(again.comparison_info) == {"sizes/n=2", "sizes/n=4"}
    assert "held-out NLL" in again.comparison_info["sizes/n=2"] and "2 examples" in again.comparison_info["sizes/n=2"]
    # the Python API blocks, returns the rows, and the pickers show the two runs it compared
    rows = again.compare("loss/full-sequence", "sizes/n=2")
    assert rows == again.comparison_rows and [c["name"] for c in rows[0]["columns"]] == [
        "loss/full-sequence", "sizes/n=2"]
    assert (again.run_a, again.run_b) == ("loss/full-sequence", "sizes/n=2")
    # the same experiment name again gets a fresh folder instead of overwriting
    add(again, "subsample", "2", "sizes")
    assert again.status_rows[-1]["run"] == "sizes-2/n=2" and "renamed" in again.message
    # another model (the Train panel loaded one): queued runs move to a queue on its base
    from lab.session import Session

    other = Session("tiny-random", runs_dir=session.runs_dir)
    old = again.queue
    again.set_session(other)
    assert again.queue is not old and again.queue.session is other
    assert [j.variant.name for j in again.queue.jobs] == ["n=2"] and again.status_rows[-1]["status"] == "queued"


def test_bad_input_and_failed_runs_show_as_messages(session, tmp_path):
    v = view(session, tmp_path)
    add(v, "shuffle_responses", "0.5, 1.5")
    assert "1.5 is not a fraction" in v.error and "\n" not in v.error
    assert v.status_rows == []
    v.run_clicks += 1
    assert "nothing is queued" in v.error and v.state == "idle"
    v.compare_clicks += 1
    assert "pick two finished runs" in v.error
    v.seeds = 11
    add(v, "baseline", "")
    assert "at most 10" in v.error and v.status_rows == []
    # a run that fails in training (no example has a response) is marked, and the queue goes on;
    # its note is the message, without the exception's name or a traceback
    prompts_only = [Conversation.single("q")]
    bad = view(session, tmp_path / "bad", data=prompts_only, eval_data=())
    add(bad, "baseline", "")
    bad.run_clicks += 1
    bad.wait(60)
    row = bad.status_rows[0]
    assert row["status"] == "failed" and "no trainable example" in row["note"], row
    assert not row["note"].startswith("DataError") and "Traceback" not in row["note"] and "\n" not in row["note"]
    assert row["detail"].startswith("DataError: ") and "run.json" in row["detail"]
    assert bad.nll_rows[0]["status"] == "failed" and bad.state == "done" and bad.error == ""


def test_stop_ends_the_run_and_cancels_the_rest(session, tmp_path):
    v = view(session, tmp_path, config=TrainConfig(max_steps=500, batch_size=2), probes=(), eval_data=())
    add(v, "lr", "1e-4, 2e-4", "long")
    v.run_clicks += 1
    deadline = time.time() + 60
    while not (v.status_rows[0]["status"] == "running" and v.status_rows[0]["step"] >= 1):
        assert time.time() < deadline, "the first run never started"
        time.sleep(0.05)
    v.stop_clicks += 1
    assert v.state in ("stopping", "done")
    v.wait(60)
    assert [r["status"] for r in v.status_rows] == ["stopped", "cancelled"]
    assert 0 < v.status_rows[0]["step"] < 500 and v.status_rows[0]["total"] == 500
    assert v.run_options == ["long/lr=0.0001"]  # a stopped run keeps its model
    assert v.state == "done" and "1 stopped, 1 cancelled" in v.message


def test_live_data_callable_tags_hint_and_throttled_redraws(session, tmp_path):
    current = list(DATA)
    v = view(session, tmp_path, data=lambda: current)
    v.kind = "drop_tag"
    assert v.params == "even" and "tags in the data: even, odd" in v.hint
    v.add_clicks += 1
    current.append(Conversation.single("new", "one", tags=("fresh",)))
    add(v, "drop_tag", "fresh", "tags")
    assert v.error == "" and [j.variant.name for j in v.queue.jobs] == ["drop=even", "drop=fresh"]
    assert len(v.queue.jobs[1].data) == 7  # the data as it was when added
    v.kind = "lr"  # a new kind brings its own example values
    assert v.params == KINDS["lr"].example and v.hint == KINDS["lr"].hint
    v.kind = "loss"  # ...or none (the front end disables the box: the kind says it takes none)
    assert v.params == "" and not next(k for k in v.kinds if k["key"] == "loss")["values"]
    # steps arrive from the training thread far faster than a browser needs them
    redraws = []
    v.observe(lambda ch: redraws.append(ch), "status_rows")
    v.queue.jobs[0].status = "running"
    for i in range(200):
        v._on_step("drop_tag/drop=even", StepInfo(i + 1, 200, 0.1, 2.0, 1e-4, 10, 100.0, 0.1, 1.0))
    assert 1 <= len(redraws) <= 2
    assert v.status_rows[0]["step"] in range(1, 201)


def test_settings_line_follows_the_train_tab(session, tmp_path):
    """The runs use the Train tab's settings: the view says which, beside its Run button."""
    cfg = {"now": TrainConfig(epochs=3, lr=1e-4, batch_size=2)}

    def config():
        if cfg["now"] is None:
            raise ValueError("Learning rate must be above 0, e.g. 2e-4")
        return cfg["now"]

    v = view(session, tmp_path, config=config, eval_data=())
    line = v.train_settings
    assert "the Train tab's settings" in line and "Epochs 3" in line and "Learning rate 0.0001" in line
    assert "Batch size 2" in line and "Max steps" not in line and "Eval split 0.1" in line
    assert "Completion-only loss on" in line
    cfg["now"] = TrainConfig(max_steps=7, completion_only=False)
    v.show_settings()
    assert "Max steps 7" in v.train_settings and "Epochs" not in v.train_settings
    assert "Completion-only loss off" in v.train_settings
    cfg["now"] = None
    v.show_settings()
    assert v.train_settings.startswith("The Train tab's settings are not valid yet: Learning rate")


def test_seed_bands_and_the_size_ladder(session, tmp_path):
    """Repeated over seeds, a variant draws one mean line with a min-max band and a row with
    its spread; the ladder runs 4, 8, ... examples and plots NLL against size."""
    data = [Conversation.single(f"q{i}", f"answer number {i} is here", tags=("odd" if i % 2 else "even",))
            for i in range(10)]
    v = view(session, tmp_path, data=data, config=TrainConfig(max_steps=1, batch_size=4))
    v.seeds = 2
    add(v, "ladder", "", "sizes")
    assert [r["run"] for r in v.status_rows] == ["sizes/n=4 s0", "sizes/n=4 s1", "sizes/n=8 s0", "sizes/n=8 s1",
                                               "sizes/n=10 s0", "sizes/n=10 s1"]
    v.run_clicks += 1
    v.wait(180)
    assert [r["status"] for r in v.status_rows] == ["done"] * 6
    traces = [t.name for t in v.figure.data]
    assert traces.count("sizes/n=4 (min-max)") == 1 and "sizes/n=4 (mean of 2 seeds)" in traces
    rows = group_rows(v.cards)
    assert [(r["variant"], r["runs"], r["examples"]) for r in rows] == [("sizes/n=4", 2, 4), ("sizes/n=8", 2, 8),
                                                                       ("sizes/n=10", 2, 10)]
    assert sum(r["best"] for r in rows) == 1 and all(r["eval_nll"]["n"] == 2 for r in rows)
    assert [r["variant"] for r in v.variant_rows] == [r["variant"] for r in rows]
    assert v.variant_rows[0]["eval_nll"]["n"] == 2 and not v.show_ladder
    v.show = "sizes"  # one experiment that is a ladder: the size plot shows
    assert v.show_ladder and list(v.ladder.data[1].x) == [4, 8, 10]
    assert v.ladder.layout.xaxis.type == "log"
    v.report_clicks += 1  # the report of the experiment shown, beside its runs
    assert v.error == "" and (tmp_path / "sizes" / "report.html").is_file() and "Report written" in v.message
    page = (tmp_path / "sizes" / "report.html").read_text()
    assert "Experiment: sizes" in page and "Variants over their seeds" in page and ("overlaps" in page or "worse" in page)
    v.show = ALL
    assert not v.show_ladder
    with pytest.raises(ValueError, match="seeds"):
        v.add("baseline", "", "x", seeds=0)
