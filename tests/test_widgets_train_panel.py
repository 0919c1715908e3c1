"""TrainPanel state tests without a kernel: press the buttons the way the browser does
(click counters), let the background thread train the tiny random model, and check the
progress, the loss chart, the messages and errors in the panel."""
import time

import pytest
import torch

from lab.records import Conversation
from lab.config import TrainConfig
from lab.session import Session
from widgets import TrainPanel

DATA = [Conversation.single(f"Question {i}?", f"Arr! Answer {i}, matey. Yo-ho!") for i in range(12)]


@pytest.fixture()
def session(tmp_path):
    return Session("tiny-random", runs_dir=tmp_path / "runs")


def panel_for(session, data=DATA, **kw):
    kw = {"max_steps": 3, "batch_size": 4, "max_length": 64, **kw}
    return TrainPanel(session, data, probes=["Question 1?", "Question 2?"], **kw)


def wait_until(check, seconds=30.0):
    end = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def _eval_tokens(p) -> float:
    """A third of the held-out tokens: the eval's share of the estimated work."""
    from lab.masks import encode
    from lab.train import split_eval

    _, held = split_eval(DATA, p.eval_split, 0)
    return sum(len(encode(c, p.session.tokenizer, p.max_length).input_ids) for c in held) / 3


def test_estimate_follows_the_settings(session):
    p = panel_for(session, max_steps=0, epochs=2)
    assert (p.loaded_model, p.n_examples) == ("tiny-random", 12) and "parameters on cpu" in p.model_info
    est = p.estimate
    assert est["examples"] == 11 and est["held_out"] == 1 and est["steps"] == 6  # 11 / 4 -> 3 steps x 2
    assert est["tokens"] > 0 and est["seconds"] > 0 and est["memory_gb"] > 0.3
    assert est["text"].startswith("11 trained on, 1 held out") and "6 steps" in est["text"]
    p.epochs = 4  # as typed in the browser
    assert p.estimate["steps"] == 12 and p.estimate["tokens"] == 2 * est["tokens"]
    p.set_examples(DATA[:4])
    assert p.n_examples == 4 and p.estimate["examples"] == 3
    assert TrainPanel().estimate == {"text": "Load the model to see an estimate."}


def test_start_trains_in_the_background(session, tmp_path):
    p = panel_for(session, sample_replies=True)
    p.start_clicks += 1  # the Start button
    assert p.error == ""
    run = p.wait(60)
    assert p.state == "done" and run is p.run and run is session.runs[-1]
    assert p.progress["step"] == p.progress["total"] == 3 and p.progress["tokens_per_second"] > 0
    assert list(p.chart.data[0].x) == [1, 2, 3] and len(p.chart.data[0].y) == 3
    assert p.chart.layout.xaxis.range == (0.5, 3.5)
    assert list(p.chart.data[1].x) == [1, 2, 3]  # eval loss: eval_every 1 for 3 steps, and at the end
    assert [s["step"] for s in p.samples] == [1, 1, 2, 2, 3, 3]
    assert [s["prompt"] for s in p.samples[:2]] == ["Question 1?", "Question 2?"]
    assert "finished: 3 steps" in p.message and "eval loss" in p.message and str(tmp_path) in p.message
    training = (p.estimate["tokens"] + _eval_tokens(p)) / run.result.tokens_per_second
    # the next estimate uses the measured speed, and adds the timeline's budget (a quarter)
    assert p.estimate["seconds"] == pytest.approx(1.25 * training, rel=0.01)
    assert p.estimate["timeline_seconds"] == pytest.approx(0.25 * training, rel=0.01)
    assert "(timeline" in p.estimate["text"]
    p.timeline = False
    assert p.estimate["seconds"] == pytest.approx(training, rel=0.01) and "(timeline" not in p.estimate["text"]
    assert not any(torch.equal(a, b) for a, b in zip(session.tuned.parameters(), session.base.parameters()))
    # Reset to base: the tuned weights are the base weights again
    p.reset_clicks += 1
    assert p.error == "" and p.state == "idle" and "Reset" in p.message
    assert all(torch.equal(a, b) for a, b in zip(session.tuned.parameters(), session.base.parameters()))


def test_stop_ends_the_run_early(session):
    p = panel_for(session, max_steps=5000, batch_size=1)
    p.start()
    wait_until(lambda: p.progress.get("step", 0) >= 1)
    p.stop_clicks += 1  # the Stop button
    run = p.wait(60)
    assert p.state == "stopped" and run.result.stopped and run.result.steps < 5000
    assert f"Stopped at step {run.result.steps} of 5000" in p.message


@pytest.mark.filterwarnings("ignore::lab.masks.DataWarning")  # the prompt-only example, on purpose
def test_errors_show_in_the_panel(session):
    p = panel_for(session, data=[])
    p.start_clicks += 1
    assert "no examples to train on" in p.error and p.state == "idle"
    p.set_examples(DATA)
    p.lr, p.eval_split = 0.0, 1.5  # two bad settings: both named at once, by their labels
    p.start_clicks += 1
    assert "Learning rate must be above 0" in p.error and "Eval split must be a share" in p.error
    assert "grad_accum" not in p.error and p.estimate["text"].startswith("no estimate: Learning rate")
    p.eval_split = 0.1
    assert "Learning rate must be above 0" in p.error  # still wrong: the line stays
    p.lr = 1e-4  # fixing the last bad setting refreshes the estimate, and the red line goes
    assert p.estimate["text"].startswith("11 trained on") and p.error == ""
    # data the trainer refuses: the DataError appears in red, and wait() raises it for scripts
    q = panel_for(session, data=[Conversation.single("a prompt and no reply")], eval_split=0)
    q.start_clicks += 1
    with pytest.raises(RuntimeError, match="no trainable example"):
        q.wait(60)
    assert q.state == "error" and "no trainable example" in q.error


def test_a_model_that_cannot_be_loaded(session, tmp_path):
    p = panel_for(session)
    p.model_name = str(tmp_path / "no-such-model")  # typed in the model box, then Start
    p.start_clicks += 1
    with pytest.raises(RuntimeError, match="no-such-model"):
        p.wait(60)
    assert p.state == "error" and "Could not load model" in p.error
    assert p.session is session  # the loaded model stays usable
    p.model_name = "tiny-random"
    p.load_clicks += 1  # Load model
    p.wait(60)
    assert p.error == "" and p.session is not session and p.loaded_model == "tiny-random"


def test_busy_panel_refuses_a_second_job(session):
    p = panel_for(session, max_steps=5000, batch_size=1)
    p.start()
    wait_until(lambda: p.state == "training")
    thread = p._job.thread
    p.start_clicks += 1  # a double click on Start: the run goes on, no second one, no stale red line
    assert p.error == "" and p.state == "training" and p._job.thread is thread
    with pytest.raises(RuntimeError, match="busy"):
        p.start()  # from code: said at once
    p.reset_clicks += 1
    assert "press Stop first" in p.error
    p.stop()
    p.wait(60)
    assert p.state == "stopped" and "ETA" not in str(p.progress.get("eta"))
    assert p.progress["eta"] is None, "no time left is shown for a run that ended"


def test_a_second_job_from_another_widget_is_refused(session, tmp_path):
    """The experiments queue holds the session: Start in the Train tab, Compare and Reset are
    refused with one line naming the queue; the panels show it as busy meanwhile."""
    from widgets import CompareView, ExperimentsView
    from lab.train import TrainConfig

    started = []
    x = ExperimentsView(session, DATA, runs_dir=tmp_path / "x", config=TrainConfig(max_steps=500, batch_size=1))
    x.queue.on_step = lambda name, info: started.append(info.step)
    p, c = panel_for(session), CompareView(session)
    x.add("baseline", "")
    x.run_clicks += 1
    wait_until(lambda: started)
    assert p.busy.startswith("Busy: the experiments queue") and c.busy.startswith("Busy: the experiments queue")
    assert x.busy == ""  # its own job
    p.start_clicks += 1
    assert p.error.startswith("Busy: the experiments queue") and "\n" not in p.error and p.state == "idle"
    c.prompts = "Hi"
    c.compare_clicks += 1
    assert c.error.startswith("Busy: the experiments queue") and c.state == "idle"
    p.reset_clicks += 1
    assert p.error.startswith("Busy: the experiments queue")
    x.stop_clicks += 1
    x.wait(60)
    assert not session.busy and p.busy == c.busy == ""
    p.start_clicks += 1
    assert p.error == ""
    p.wait(60)
    assert p.state == "done"


def test_stop_before_the_first_step_saves_nothing(session):
    p = panel_for(session, max_steps=5)
    session.stop_event.set()  # a Stop that lands before the first step

    original = session.start_job

    def start_job(what, fn, *args, **kw):  # keep the stop set after the slot clears it
        def fn_stopped(*a):
            session.stop()
            fn(*a)
        return original(what, fn_stopped, *args, **kw)

    session.start_job = start_job
    p.start()
    assert p.wait(60) is None
    assert p.state == "stopped" and "nothing changed" in p.message and "nan" not in p.message
    assert session.runs == [] and not (session.runs_dir.exists() and any(session.runs_dir.iterdir()))


def test_reset_clears_the_discarded_run(session):
    p = panel_for(session, sample_replies=True)
    p.start()
    p.wait(60)
    assert p.progress and p.samples and list(p.chart.data[0].x)
    p.reset_clicks += 1
    assert p.progress == {} and p.samples == [] and list(p.chart.data[0].x) == []
    assert p.tuned_run == "" and "Reset" in p.message


def test_a_very_long_run_asks_first(session):
    p = panel_for(session, max_steps=0, epochs=100_000)
    assert p.estimate["seconds"] > 15 * 60
    p.start_clicks += 1
    assert p.state == "idle" and "Press Start again" in p.confirm and not p.running
    p.epochs = 99_999  # a change of settings asks again
    assert p.confirm == ""
    p.start_clicks += 1
    assert "Press Start again" in p.confirm and not p.running
    p.start_clicks += 1  # yes
    assert p.running and p.confirm == ""
    wait_until(lambda: p.state == "training")
    p.stop()
    p.wait(60)


def test_history_after_a_restart(session, tmp_path):
    """A new session on the same runs folder (a restarted kernel) shows the last run's curve
    and summary, lists the stored runs, and loads one back as the tuned model."""
    p = panel_for(session)
    p.start()
    run = p.wait(60)
    tuned = {n: t.clone() for n, t in session.tuned.named_parameters()}
    fresh = Session("tiny-random", runs_dir=session.runs_dir)
    q = panel_for(fresh)
    assert q.state == "idle" and run.name in q.message and "Load as tuned" in q.message
    assert list(q.chart.data[0].x) == [1, 2, 3] and q.progress["step"] == 3
    assert [r["name"] for r in q.stored] == [run.name] and q.stored[0]["loadable"]
    assert q.run_choice == q.stored[0]["path"] and q.tuned_run == ""
    q.load_run_clicks += 1
    assert q.error == "" and q.tuned_run == run.name and fresh.current.name == run.name
    q.report_clicks += 1
    assert q.error == "" and "Report written" in q.message and (session.runs_dir / run.name / "report.html").is_file()
    assert all(torch.equal(t, tuned[n]) for n, t in fresh.tuned.named_parameters())


def test_restart_restores_the_train_tabs_own_last_run(session, tmp_path):
    """An experiment's run, newer than the Train tab's, is not what the tab restores after a
    restart: its own last run and settings are (an experiment trains with eval split 0)."""
    from lab.experiments import Queue, Variant

    p = panel_for(session, eval_split=0.25, seed=3)
    p.start()
    run = p.wait(60)
    queue = Queue(session, config=TrainConfig(max_steps=2, batch_size=4, eval_split=0.0, seed=7),
                  eval_data=DATA[:2])
    queue.submit("shuffle", DATA, [Variant("shuffle=0.5", "shuffle_responses", 0.5)])
    queue.start()
    queue.wait()
    q = panel_for(Session("tiny-random", runs_dir=session.runs_dir), eval_split=0.1, seed=0)
    assert run.name in q.message and "shuffle" not in q.message
    assert (q.eval_split, q.seed) == (0.25, 3)
    assert q.run_choice == q.stored[0]["path"] and q.stored[0]["experiment"] == "shuffle"


def test_start_says_what_the_next_run_continues_from(session):
    p = panel_for(session)
    assert p.starts_from == "The next run starts from the base model."
    p.start()
    run = p.wait(60)
    assert f"continues from run {run.name}" in p.starts_from and "Reset to base" in p.starts_from
    p.reset_clicks += 1
    assert p.starts_from == "The next run starts from the base model."


def test_timeline_and_forgetting_meter_live(session):
    from lab.analysis import timeline

    probes = [Conversation.single("Question 1?", "Arr! Answer 1, matey. Yo-ho!"), "Question 2?"]
    p = TrainPanel(session, DATA, probes=probes, max_steps=3, batch_size=4, max_length=64,
                   timeline_points=3)
    assert p.forgetting_meter and p.timeline_points == 3
    drawn = []
    p.timeline_chart.observe(lambda change: drawn.append(change.new["data"][0].get("x", [])), "figure")
    p.start()
    run = p.wait(120)
    assert [pt["step"] for pt in run.timeline] == [0, 2, 3] == [pt["step"] for pt in timeline.load(run.out)]
    probe_line, qa_line, text_line = p.timeline_chart.data
    assert list(probe_line.x) == list(qa_line.x) == list(text_line.x) == [0, 2, 3]
    assert drawn and len(drawn[0]) < 3 and drawn[-1] == [0, 2, 3], "the chart grew point by point while the run went on"
    assert set(p.forgetting) >= {"base_accuracy", "tuned_accuracy", "right_to_wrong", "wrong_to_right"}
    # after a restart the stored run shows the same timeline and report
    q = panel_for(Session("tiny-random", runs_dir=session.runs_dir))
    assert list(q.timeline_chart.data[1].x) == [0, 2, 3] and q.forgetting == p.forgetting
    p.reset_clicks += 1
    assert list(p.timeline_chart.data[0].x) == [] and p.forgetting == {}
    p.timeline = False  # off: no timeline file
    p.start()
    assert p.wait(60).timeline == [] and not (session.runs_dir / p.run.name / "timeline.jsonl").exists()
