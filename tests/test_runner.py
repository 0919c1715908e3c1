"""The one run path: the Train tab's session, `sft-lab train` and the experiments queue make
the same run folder from the same job (`lab.runner.make_run`)."""
from __future__ import annotations

import json
from pathlib import Path

from lab import runs
from lab.cli import main
from lab.config import TrainConfig
from lab.data.dataio import write_jsonl
from lab.experiments import Queue, Variant
from lab.records import Conversation
from lab.session import Session
from lab.analysis.timeline import TimelineConfig

DATA = [Conversation.single(f"What is {n} + {n}?", f"{n} + {n} = {2 * n}.") for n in range(6)]
PROBES = [Conversation.single("What is 7 + 7?", "7 + 7 = 14.")]
CFG = TrainConfig(max_steps=3, batch_size=4, lr=5e-3, eval_split=0)
TIMELINE = TimelineConfig(points=3, max_new_tokens=3, retention=False, max_probes=1)


def _folder(path: Path) -> dict:
    """What a run folder holds: its files, its card's keys, its timeline's steps, its losses."""
    card = json.loads((path / runs.CARD).read_text())
    return {"files": sorted(p.name for p in path.iterdir() if not p.name.startswith(".")),
            "card": card,
            "timeline": [row["step"] for row in runs.read_jsonl(path / runs.TIMELINE)],
            "losses": [round(r["loss"], 5) for r in runs.load_curve(path) if "loss" in r]}


def test_three_entry_points_make_the_same_run(tmp_path):
    # the Train tab's way: the session
    session = Session("tiny-random", runs_dir=tmp_path / "session")
    run = session.train(DATA, CFG, probes=PROBES, timeline=TIMELINE, name="job")
    by_session = _folder(Path(run.out))

    # the command line
    write_jsonl(tmp_path / "data.jsonl", DATA)
    write_jsonl(tmp_path / "probes.jsonl", PROBES)
    code = main(["train", str(tmp_path / "data.jsonl"), "--model", "tiny-random", "--out", str(tmp_path / "cli"),
                 "--max-steps", "3", "--batch-size", "4", "--lr", "5e-3", "--eval-split", "0",
                 "--timeline", "3", "--probes", str(tmp_path / "probes.jsonl"), "--no-retention"])
    assert code == 0
    by_cli = _folder(tmp_path / "cli")

    # the experiments queue (on the same session's base model)
    queue = Queue(session, runs_dir=tmp_path / "queue", config=CFG, probes=[p.prompt for p in PROBES],
                  timeline=TIMELINE)
    queue.submit("exp", DATA, [Variant("as is")])
    queue.start()
    queue.wait()
    assert queue.jobs[0].status == "done", queue.jobs[0].card
    by_queue = _folder(Path(queue.jobs[0].out_dir))

    for other in (by_cli, by_queue):
        assert other["files"] == by_session["files"]
        assert other["timeline"] == by_session["timeline"] == [0, 2, 3]
        assert other["losses"] == by_session["losses"]  # the same training, whoever asked
    assert set(by_cli["card"]) == set(by_session["card"])
    extra = set(by_queue["card"]) - set(by_session["card"])
    assert set(by_session["card"]) <= set(by_queue["card"])
    assert extra == {"experiment", "variant", "probes", "probe_similarity"}, extra
    assert {"timeline.jsonl", "run.json", "model", "metrics.jsonl", "dataset.jsonl", "config.json"} <= set(
        by_session["files"])
