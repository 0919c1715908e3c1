"""What-if experiments: each transform on literal data, the queue, reload, export to TRL."""
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from lab.experiments import variants as V
from lab.experiments import (
    Queue,
    Variant,
    dataset_sha256,
    load_cards,
    load_curve,
    loss_ablation,
    lr_sweep,
    size_sweep,
)
from lab.export.trl import export_trl
from lab.records import Conversation
from lab.train import TrainConfig

DATA = [Conversation.single(f"q{i}", f"answer number {i} is here", tags=("odd" if i % 2 else "even",))
        for i in range(6)]


def test_subsample_is_seeded_and_bounded():
    assert V.subsample(DATA, 3, seed=1) == V.subsample(DATA, 3, seed=1)
    assert len(V.subsample(DATA, 3)) == 3 and len(V.subsample(DATA, 99)) == 6
    with pytest.raises(ValueError):
        V.subsample(DATA, 0)


def test_shuffle_responses_moves_every_picked_response():
    out = V.shuffle_responses(DATA, 0.5, seed=0)
    changed = [i for i, (a, b) in enumerate(zip(DATA, out)) if a.response != b.response]
    assert len(changed) == 3
    assert sorted(out[i].response for i in changed) == sorted(DATA[i].response for i in changed)
    assert [c.prompt for c in out] == [c.prompt for c in DATA]
    assert DATA[0].response == "answer number 0 is here"  # the input is untouched


def test_corrupt_duplicate_drop_tag():
    out = V.corrupt_responses(DATA, 1.0, seed=0)
    assert all(len(o.response.split()) == 2 and set(o.response.split()) <= set(d.response.split())
               for o, d in zip(out, DATA))
    assert len(V.duplicate(DATA, 0.5)) == 9
    assert [c.prompt for c in V.drop_tag(DATA, "odd")] == ["q0", "q2", "q4"]
    assert V.tags(DATA) == ["even", "odd"]
    with pytest.raises(ValueError, match="leaves no examples"):
        V.drop_tag([DATA[1]], "odd")


def test_variant_validation_and_sweeps():
    with pytest.raises(ValueError, match="unknown transform"):
        Variant("x", "reverse")
    with pytest.raises(ValueError, match="unknown TrainConfig"):
        Variant("x", config={"learning_rate": 1})
    assert [v.name for v in size_sweep([2, 4])] == ["n=2", "n=4"]
    assert lr_sweep([1e-4])[0].train_config(TrainConfig()).lr == 1e-4
    assert loss_ablation()[1].train_config(TrainConfig()).completion_only is False
    assert dataset_sha256(DATA) == dataset_sha256(list(DATA)) != dataset_sha256(DATA[:3])


@pytest.fixture()
def session(tmp_path):
    from lab.session import Session

    return Session("tiny-random", runs_dir=tmp_path)


def test_queue_runs_in_order_survives_a_failure_and_reloads(session, tmp_path):
    model = session.base
    ends = []
    q = Queue(session, config=TrainConfig(max_steps=2, batch_size=4),
              eval_data=DATA[:2], probes=["q1"], on_run_end=lambda name, card: ends.append(name))
    before = {n: p.clone() for n, p in model.named_parameters()}
    q.submit("sizes", DATA, [Variant("n=2", "subsample", 2), Variant("bad", config={"max_length": 1}),
                             Variant("full", config={"completion_only": False})])
    q.start()
    q.wait(120)
    assert [j.status for j in q.jobs] == ["done", "failed", "done"]
    assert ends == ["sizes/n=2", "sizes/bad", "sizes/full"]
    assert all((p == before[n]).all() for n, p in model.named_parameters()), "base stays untouched"
    cards = load_cards(tmp_path)
    assert [c["variant"]["name"] for c in cards] == ["n=2", "bad", "full"]
    good = cards[0]
    assert good["n_examples"] == 2 and good["dataset_sha256"] and good["versions"]["torch"]
    assert good["probes"][0]["prompt"] == "q1" and isinstance(good["eval_nll"], float)
    assert "max_length" in cards[1]["error"] and cards[1]["status"] == "failed"
    assert [r["step"] for r in load_curve(good["path"]) if "loss" in r] == [1, 2]


def test_queue_stop_cancels_the_rest(session, tmp_path):
    started = threading.Event()
    q = Queue(session, config=TrainConfig(max_steps=200, batch_size=2),
              on_step=lambda name, info: started.set())
    q.submit("e", DATA, [Variant("a"), Variant("b")])
    q.start()
    assert started.wait(60)
    q.stop()
    q.wait(60)
    assert [j.status for j in q.jobs] == ["stopped", "cancelled"]
    assert (tmp_path / "e" / "a" / "model" / "model.safetensors").is_file()
    assert not session.busy, "the queue gave the job slot back"


def test_queue_holds_the_job_slot(session, tmp_path):
    """While the queue trains, the session refuses other jobs with a line naming the queue."""
    from lab.jobs import Busy

    started = threading.Event()
    q = Queue(session, config=TrainConfig(max_steps=200, batch_size=2),
              on_step=lambda name, info: started.set())
    q.submit("e", DATA, [Variant("a")])
    q.start()
    assert started.wait(60)
    for job in (lambda: session.train(DATA), lambda: session.reply(["hi"]), session.reset_to_base):
        with pytest.raises(Busy, match="experiments queue"):
            job()
    q.stop()
    q.wait(60)
    assert session.reply(["hi"])  # free again


def test_runs_cli_lists_cards_and_interrupted_runs(tmp_path, capsys):
    """Through the CLI's main() (tests/test_cli.py lists a really killed run from a child process)."""
    from lab.cli import main

    for name in ("x", "killed"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps({"model": "tiny-random"}))
    (tmp_path / "x" / "run.json").write_text(json.dumps({"status": "done", "steps": 3, "final_loss": 1.5,
                                                         "finished_at": "2026-01-01T00:00:00"}))
    (tmp_path / "killed" / "metrics.jsonl").write_text(
        '{"step": 1, "loss": 2.5, "total_steps": 9}\n{"step": 2, "loss": 2.25, "total_steps": 9}\n{"step": 3, "lo')
    assert main(["runs", "--dir", str(tmp_path)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "1.5000" in lines[str(tmp_path / "x")] and " done " in lines[str(tmp_path / "x")]
    killed = lines[str(tmp_path / "killed")].split()
    assert killed[1] == "interrupted" and killed[3] == "2" and killed[4] == "2.2500"


@pytest.mark.slow  # a TRL subprocess: about 15 s
@pytest.mark.skipif(shutil.which("trl", path=str(Path(sys.executable).parent)) is None,
                    reason="trl not installed")
def test_export_trl_config_runs_one_trl_step(tiny, tmp_path):
    from lab.runs import save_model
    from lab.train import train

    model, tok = tiny
    train(model, tok, DATA, TrainConfig(max_steps=1, batch_size=2), out_dir=tmp_path / "run")
    save_model(model, tok, tmp_path / "tiny")
    config = export_trl(tmp_path / "run", tmp_path / "export", model=str(tmp_path / "tiny"))
    text = config.read_text()
    assert "completion_only_loss: true" in text and "max_steps: 1" in text
    rows = [json.loads(line) for line in (tmp_path / "export" / "train.jsonl").read_text().splitlines()]
    assert rows[0] == {"prompt": [{"role": "user", "content": "q0"}],
                       "completion": [{"role": "assistant", "content": "answer number 0 is here"}]}
    assert str(tmp_path / "run") not in text and "data_files: \"train.jsonl\"" in text  # relative paths
    assert "distributed_type: \"MULTI_GPU\"" in (tmp_path / "export" / "accelerate.yaml").read_text()
    assert "trl sft --config config.yaml --accelerate_config accelerate.yaml" in (
        tmp_path / "export" / "README.md").read_text()
    # the folder runs wherever it is copied to
    moved = shutil.copytree(tmp_path / "export", tmp_path / "elsewhere")
    shutil.rmtree(tmp_path / "export")
    trl = str(Path(sys.executable).parent / "trl")
    done = subprocess.run([trl, "sft", "--config", "config.yaml", "--use_cpu", "true"],
                          capture_output=True, text=True, cwd=moved, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (moved / "trl-output" / "model.safetensors").is_file()
