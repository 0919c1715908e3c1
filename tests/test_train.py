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


def test_loss_falls_and_parameters_change(tiny):
    model, tok = tiny
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    rec = Recorder()
    result = train(model, tok, DATA, TrainConfig(max_steps=30, lr=3e-3, batch_size=8, warmup_ratio=0),
                   callbacks=[rec])
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
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]


def test_stop_event_leaves_a_usable_saved_model(tiny, tmp_path):
    model, tok = tiny
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


def test_run_folder(tiny, tmp_path):
    model, tok = tiny
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
    cfg = TrainConfig(lr=1.0, schedule=schedule, warmup_ratio=0.25)
    got = [round(lr_at(s, 5, cfg), 4) for s in range(4)]
    assert got == expect


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="exp")


def test_eval_split_never_takes_the_only_example():
    one = DATA[:1]
    assert split_eval(one, 0.5, seed=0) == (one, [])
    train_part, held = split_eval(DATA[:2], 0.9, seed=0)
    assert len(train_part) == 1 and len(held) == 1
