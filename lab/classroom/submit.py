"""Submitting a dataset to a challenge: train it the challenge's way, score it, file it.

`submit` is what the Dataset tab's Submit button (through the lab's session) and
`sft-lab class submit` call. It checks the budget before any model loads, trains a fresh copy
of the challenge's model with the challenge's settings through the one run path
(`lab.runner.make_run`: the held-out NLL, the replies to every probe), runs the held-out
checks on the replies, measures the dataset (`lab.classroom.stats`) and publishes one
submission folder (`lab.classroom.store`): the run folder (config, dataset, metrics, card;
the weights only with `keep_weights`), `scores.json`, `replies.json` and `submission.json`.
"""
from __future__ import annotations

import copy
import shutil
import threading
import time
from pathlib import Path

from .. import runs
from ..generate import GenConfig
from ..masks import encode
from ..records import Conversation, DataError
from ..runner import make_run
from . import store
from .challenge import Challenge, check_reply, load
from .stats import coverage, shape


class OverBudget(ValueError):
    """A dataset with more examples than the challenge allows."""


def check_data(ch: Challenge, data) -> list[Conversation]:
    """The dataset as the challenge takes it: conversations with replies, within the budget.
    Raises `OverBudget` or `DataError` with what to change."""
    from ..data.dataio import parse_record

    convs = [c if isinstance(c, Conversation) else parse_record(c, where=f"example {i}")
             for i, c in enumerate(data, 1)]
    if len(convs) > ch.budget:
        raise OverBudget(f"your dataset has {len(convs)} examples and this challenge allows at most "
                         f"{ch.budget}: remove {len(convs) - ch.budget} (keep the ones that teach the most) "
                         "and submit again")
    if not any(getattr(c, "is_trainable", False) for c in convs):
        raise DataError("no example has a response to train on: write an instruction and its response "
                        "for each example", source="your dataset")
    return convs


def submit(challenge: Challenge | str | Path, data, name: str, *, model=None, tokenizer=None,
           keep_weights: bool = False, callbacks=(), stop: threading.Event | None = None,
           on_stage=None) -> dict:
    """Train, score and file `data` as `name`'s submission; return its row with `rank` and
    `of` (submissions ranked). `model`, `tokenizer`: the challenge's model, already loaded
    (it is copied, never trained in place); `on_stage(text)` hears what is happening."""
    ch = challenge if isinstance(challenge, Challenge) else load(challenge)
    convs = check_data(ch, data)
    folder_name = store.sanitise(name)
    say = on_stage or (lambda text: None)
    if model is None or tokenizer is None:
        from ..models import load_model

        say(f"loading {ch.model}")
        model, tokenizer = load_model(ch.model)
    else:
        model = copy.deepcopy(model)  # every submission starts from the base weights
    ch.submissions.mkdir(parents=True, exist_ok=True)
    staging = store.incoming(ch.submissions, folder_name)
    probes = ch.probes + ch.held_out
    try:
        say(f"training on {len(convs)} examples with the challenge's settings")
        made = make_run(model, tokenizer, convs, ch.settings, out_dir=staging,
                        held_out=[p.conv for p in ch.held_out], probes=[p.conv for p in probes],
                        reply_probes=GenConfig(max_new_tokens=ch.reply_tokens),
                        callbacks=list(callbacks), stop=stop,
                        card={"challenge": ch.title, "participant": name})
        if not made.result.steps or made.result.stopped:
            raise RuntimeError("the submission was stopped before training ended; nothing was submitted")
        say("scoring the held-out set")
        card = made.card
        replies = {p["prompt"]: p["reply"] for p in card.get("probes", [])}
        checks = []
        for p in ch.held_out:
            passed = check_reply(replies.get(p.prompt, ""), p.checks)
            checks.append({"id": p.id, "tags": list(p.tags), "passed": sum(passed), "total": len(passed)})
        public = {p.prompt: replies.get(p.prompt, "") for p in ch.probes}
        tokens = [len(encode(c, tokenizer).input_ids) for c in convs]
        scores = {"held_out_nll": card.get("eval_nll"), "per_example": card.get("eval_nll_per_example"),
                  "checks_passed": sum(c["passed"] for c in checks), "checks_total": sum(c["total"] for c in checks),
                  "per_probe": checks}
        submission = {
            "name": folder_name, "participant": name, "challenge": ch.title,
            "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "submitted_ts": time.time(),
            "scores": {k: scores[k] for k in ("held_out_nll", "checks_passed", "checks_total")},
            "dataset": {**shape(convs, tokens), **coverage(convs, probes)},
            "public_replies": [{"prompt": p, "reply": r} for p, r in public.items()],
            "run": {k: card.get(k) for k in ("steps", "final_loss", "seconds", "dataset_sha256", "model")},
            "weights": keep_weights}
        runs.record_replies(staging, replies)
        if not keep_weights:
            shutil.rmtree(staging / runs.MODEL, ignore_errors=True)
        store.write(staging, submission, scores)
        where = store.publish(staging, ch.submissions, folder_name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # nothing half-made stays behind
        raise
    from .gallery import leaderboard

    board = leaderboard(ch)
    mine = next((r for r in board["rows"] if r["path"] == str(where)), None)
    return {**store.read(where), "rank": mine["rank"] if mine else None, "of": len(board["rows"])}
