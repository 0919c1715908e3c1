"""The trainer: the loss falls, parameters change, stop leaves a usable model, runs are saved."""
import json
import threading

import pytest
import torch
from transformers import AutoModelForCausalLM

from lab.generate import GenConfig, generate
from lab.records import Conversation
from lab.train import Callback, TrainConfig, lr_at, split_eval, train

DATA = [Conversation.single(f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}.")
        for a in range(4) for b in range(4)]


class Recorder(Callback):
    def __init__(self):
        self.steps, self.evals, self.started, self.ended = [], [], None, None

    def on_start(self, total_steps, n_examples):
        self.started = (total_steps, n_examples)

    def on_step(self, info):
        self.steps.append(info)

    def on_eval(self, step, eval_loss):
        self.evals.append((step, eval_loss))

    def on_end(self, result):
        self.ended = result


def test_loss_falls_and_parameters_change(tiny_both):
    model, tok = tiny_both
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    rec = Recorder()
    result = train(model, tok, DATA, TrainConfig(max_steps=30, lr=3e-3, batch_size=8, warmup_ratio=0,
                                                 eval_split=0), callbacks=[rec])
    losses = [s.loss for s in rec.steps]
    assert rec.started == (30, 16) and len(losses) == 30 and rec.ended is result
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert len(changed) == len(before)
    assert result.steps == 30 and not result.stopped and result.tokens_per_second > 0
    assert rec.steps[-1].eta == 0 and rec.steps[0].tokens > 0


def test_same_seed_same_run(tiny):
    from lab.models import load_model

    cfg = TrainConfig(max_steps=4, lr=1e-3, seed=7)
    a = train(*load_model("tiny-random"), DATA, cfg)
    b = train(*load_model("tiny-random"), DATA, cfg)
    assert [h["loss"] for h in a.history if "loss" in h] == [h["loss"] for h in b.history if "loss" in h]
    assert a.eval_loss == b.eval_loss is not None  # the default eval split is seeded too


def test_stop_event_leaves_a_usable_saved_model(tiny_both, tmp_path):
    model, tok = tiny_both
    stop = threading.Event()

    class StopAtTwo(Callback):
        def on_step(self, info):
            if info.step == 2:
                stop.set()

    result = train(model, tok, DATA, TrainConfig(max_steps=50), callbacks=[StopAtTwo()], stop=stop,
                   out_dir=tmp_path / "run")
    assert result.stopped and result.steps == 2
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["stopped"] is True and run["steps"] == 2
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "model")
    for (n, p), (_, q) in zip(model.named_parameters(), reloaded.named_parameters()):
        assert torch.equal(p, q), n
    assert isinstance(generate(reloaded, tok, ["hi"], GenConfig(max_new_tokens=3))[0], str)


def test_run_folder(tiny_both, tmp_path):
    model, tok = tiny_both
    out = tmp_path / "r"
    train(model, tok, DATA, TrainConfig(max_steps=3, eval_every=2), eval_data=DATA[:4], out_dir=out)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "dataset.jsonl", "metrics.jsonl",
                                                     "model", "run.json"]
    config = json.loads((out / "config.json").read_text())
    assert config["max_steps"] == 3 and config["model"] == "tiny-random"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3]
    assert [r["step"] for r in rows if "eval_loss" in r] == [2, 3]
    assert len((out / "dataset.jsonl").read_text().splitlines()) == len(DATA)
    assert not list(tmp_path.glob(".*")), "no temporary files left behind"


def test_eval_split_and_callbacks(tiny):
    model, tok = tiny
    rec = Recorder()
    result = train(model, tok, DATA, TrainConfig(max_steps=2, eval_split=0.25), callbacks=[rec])
    assert rec.started[1] == 12 and len(rec.evals) == 1 and result.eval_loss == rec.evals[0][1]
    train_part, held = split_eval(DATA, 0.25, seed=0)
    assert len(held) == 4 and not set(held) & set(train_part)


def test_epochs_and_grad_accum_set_the_step_count(tiny):
    model, tok = tiny
    result = train(model, tok, DATA, TrainConfig(epochs=2, batch_size=4, grad_accum=2))
    assert result.total_steps == 4 and result.steps == 4  # 16 examples / (4 x 2) x 2 epochs


@pytest.mark.parametrize("schedule,expect", [("constant", [0.5, 1.0, 1.0, 1.0]),
                                             ("linear", [0.5, 1.0, 0.75, 0.5]),
                                             ("cosine", [0.5, 1.0, 0.8536, 0.5])])
def test_lr_schedules(schedule, expect):
    cfg = TrainConfig(lr=0.5, schedule=schedule, warmup_ratio=0.25)
    got = [round(2 * lr_at(s, 5, cfg), 4) for s in range(4)]
    assert got == expect


def test_bad_config_is_refused_with_every_problem_at_once():
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="exp")
    with pytest.raises(ValueError, match="lr must be above 0.*batch_size must be at least 1"):
        TrainConfig(lr=0, batch_size=0)


def test_stop_before_the_first_step_leaves_no_run(tiny, tmp_path):
    model, tok = tiny
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    stop = threading.Event()
    stop.set()
    result = train(model, tok, DATA, TrainConfig(max_steps=5), stop=stop, out_dir=tmp_path / "r")
    assert result.steps == 0 and result.stopped and result.final_loss is None
    assert not (tmp_path / "r").exists(), "an empty run is not saved"
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_a_finished_run_is_not_overwritten(tiny, tmp_path):
    from lab.runs import RunExists

    model, tok = tiny
    out = tmp_path / "r"
    train(model, tok, DATA, TrainConfig(max_steps=1), out_dir=out)
    card = (out / "run.json").read_text()
    with pytest.raises(RunExists, match="finished run"):
        train(model, tok, DATA, TrainConfig(max_steps=2), out_dir=out)
    assert (out / "run.json").read_text() == card
    train(model, tok, DATA, TrainConfig(max_steps=2), out_dir=out, overwrite=True)
    assert json.loads((out / "run.json").read_text())["steps"] == 2


def test_killed_run_leftovers_are_removed_and_files_follow_the_umask(tiny, tmp_path):
    import os

    from lab.runs import list_runs

    model, tok = tiny
    out = tmp_path / "r"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"model": "tiny-random"}))
    (out / "metrics.jsonl").write_text('{"step": 1, "loss": 3.0}\n')
    (out / ".model-abc").mkdir()                        # a half-saved model of a killed run
    (out / ".config.json.x.tmp").write_text("half")     # a half-written file
    (out / ".running").write_text("999999999")          # its process is gone
    assert [c["status"] for c in list_runs(tmp_path)] == ["interrupted"]
    old = os.umask(0o022)
    try:
        train(model, tok, DATA, TrainConfig(max_steps=1), out_dir=out)
    finally:
        os.umask(old)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "dataset.jsonl", "metrics.jsonl",
                                                     "model", "run.json"]
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()
            if '"loss"' in line] == [1]
    for p in [out / "run.json", out / "model", out / "model" / "model.safetensors"]:
        assert p.stat().st_mode & 0o777 == (0o755 if p.is_dir() else 0o644), p


def test_eval_split_never_takes_the_only_example():
    one = DATA[:1]
    assert split_eval(one, 0.5, seed=0) == (one, [])
    train_part, held = split_eval(DATA[:2], 0.9, seed=0)
    assert len(train_part) == 1 and len(held) == 1
