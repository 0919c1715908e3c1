"""The one run path: a training run made start to end, whoever asks for it.

`make_run` is what the Train tab (through `lab.session.Session.train`), `sft-lab train` and the
experiments queue call. It trains (`lab.train.train`), records the timeline and the forgetting
meter (`lab.analysis.timeline`, with step 0 of a base model read from `BaseCache` when known), scores a
held-out set, answers probes for the card, and writes the run folder with `run.json` last. A
feature added here reaches every way of training.

>>> from lab.models import load_model
>>> from lab.records import Conversation
>>> model, tok = load_model("tiny-random")
>>> data = [Conversation.single(f"What is {n} + {n}?", f"{n} + {n} = {2 * n}.") for n in range(8)]
>>> made = make_run(model, tok, data, TrainConfig(max_steps=2, eval_split=0),
...                 probes=[Conversation.single("What is 9 + 9?", "18.")],
...                 timeline=TimelineConfig(points=2, max_new_tokens=2, retention=False))
>>> made.result.steps, [p["step"] for p in made.timeline]
(2, [0, 2])
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from .config import TrainConfig
from .analysis.forgetting import Meter
from .generate import GenConfig, generate
from .records import Conversation, Record
from .score import score
from .present.textdiff import similarity
from .analysis.timeline import BaseCache, Timeline, TimelineConfig
from .train import Callback, TrainResult, train


@dataclass
class Start:
    """Where a run's weights start, for the timeline's step 0 and the meter's base answers.

    `name`: the model's name when the run starts from its unchanged base weights (then step 0
    may come from `BaseCache`), else None; `copy`: an unchanged model equal to the starting
    weights that training leaves alone (step 0 is then taken after the first step, so the
    first loss point does not wait); `base`: the base model whose retention answers the last
    point compares with (default: the model at step 0); `answers`: those answers, when known."""

    name: str | None = None
    copy: object = None
    base: object = None
    answers: dict | None = None


@dataclass
class Made:
    """What `make_run` made: the trainer's result, the timeline it recorded, the card it wrote
    (empty without a run folder) and the meter's base answers (to reuse in the next run)."""

    result: TrainResult
    timeline: list[dict] = field(default_factory=list)
    forgetting: dict | None = None
    card: dict = field(default_factory=dict)
    base_answers: dict | None = None


def make_run(model, tokenizer, data: list[Record], cfg: TrainConfig | None = None, *,
             out_dir: str | Path | None = None, overwrite: bool = False,
             eval_data: list[Record] | None = None, held_out: list[Conversation] = (),
             probes=(), timeline: TimelineConfig | None = None, start: Start | None = None,
             meter: Meter | None = None, reply_probes: GenConfig | None = None,
             callbacks: list[Callback] = (), stop: threading.Event | None = None,
             card: dict | None = None, on_point: Callable[[dict], None] | None = None) -> Made:
    """Train `model` in place on `data` and record the run.

    `out_dir`: the run folder (`lab.runs`; a finished run there is refused unless `overwrite`);
    `eval_data`: the trainer's eval set (else `cfg.eval_split` of the data); `held_out`: a set
    every run of an experiment is scored on (card: `eval_nll`, `eval_nll_per_example`; the
    eval split is then off, so the run trains on all its data); `probes`: texts or
    Conversations with reference answers, for the timeline and, with `reply_probes`, answered
    after the run into the card (`probes`, `probe_similarity`); `timeline`: record one
    (`points=0` or None: off); `start`: see `Start`; `meter`: the forgetting meter to reuse;
    `card`: fields known at the start (e.g. an experiment's name); `on_point` hears each
    timeline point."""
    cfg = cfg or TrainConfig()
    start = start or Start()
    held_out = list(held_out)
    if held_out:
        cfg = replace(cfg, eval_split=0.0)
    probes = [p if isinstance(p, Conversation) else Conversation.single(p) for p in probes]
    recorder, cache, known = None, None, None
    if timeline is not None and timeline.on:
        device = next(model.parameters()).device.type
        if start.name is not None:  # from a base model: step 0 may be on disk from an earlier run
            cache = BaseCache(start.name, probes, timeline, device)
            known = cache.load()
        answers = start.answers or (known or {}).get("answers")
        recorder = Timeline(model, tokenizer, probes, timeline, out_dir=out_dir,
                            meter=(meter or Meter(tokenizer)) if timeline.retention else None,
                            base_answers=answers, answers_model=start.base, start_model=start.copy,
                            start_point=known["point"] if known else None,
                            from_base=start.name is not None, on_point=on_point)

    def finish(result: TrainResult) -> dict:
        """The card's fields only the end of a run knows (before `run.json` is written)."""
        extra = {}
        if recorder is not None and recorder.forgetting:
            extra["forgetting"] = recorder.forgetting
        if held_out:
            s = score(model, tokenizer, held_out, max_length=cfg.max_length)
            extra.update(eval_nll=s.mean_nll, eval_nll_per_example=s.per_example)
        if reply_probes is not None and probes:
            replies = generate(model, tokenizer, probes, reply_probes)
            extra["probes"] = [{"prompt": p.prompt, "reply": r} for p, r in zip(probes, replies)]
            extra["probe_similarity"] = probe_similarity(extra["probes"], held_out or probes)
        return extra

    result = train(model, tokenizer, data, cfg, eval_data=eval_data,
                   callbacks=[*callbacks, *([recorder] if recorder else [])], stop=stop,
                   out_dir=out_dir, overwrite=overwrite, card=card, finish=finish)
    first = recorder.points[0] if recorder is not None and recorder.points else None
    if cache is not None and first and first["step"] == 0 and not first.get("cached"):
        cache.save({k: v for k, v in first.items() if k not in ("step", "seconds")},
                   recorder.base_answers if recorder.meter is not None else None)
    return Made(result=result, timeline=recorder.points if recorder else [],
                forgetting=recorder.forgetting if recorder else None, card=result.card,
                base_answers=recorder.base_answers if recorder else start.answers)


def probe_similarity(replies: list[dict], references: list[Conversation]) -> float | None:
    """How close the probe replies come to the reference answers of the same prompts (the
    share of words in common, 0..1, `lab.present.textdiff.similarity`), averaged; None without any.

    >>> probe_similarity([{"prompt": "Hi", "reply": "Arr! Hello"}], [Conversation.single("Hi", "Arr! Hello")])
    1.0
    """
    ref = {c.prompt: c.response for c in references if getattr(c, "response", None)}
    pairs = [(p["reply"], ref[p["prompt"]]) for p in replies if p["prompt"] in ref]
    return sum(similarity(r, a) for r, a in pairs) / len(pairs) if pairs else None
