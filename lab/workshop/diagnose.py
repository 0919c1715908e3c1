"""Mystery runs for diagnosing a fine-tuning problem (notebook 06): train a healthy run and
five broken ones on the support task, measure their symptoms, hide which is which.

Each broken run changes one thing a practitioner gets wrong: the loss on every token, flawed
data, too narrow a set, too many epochs, too high a learning rate. `train_mysteries` trains
them one after another on fresh copies of the base model, measures what a person would look
at (the loss curve, held-out NLL per category, the NLL of the held-out *prompts*, the
retention set's NLL, replies and their voice), keeps the measurements and drops the models.
The runs are shown as "Run A" ... "Run E" in an order drawn from the seed; `Mysteries.reveal()`
says which cause each one had.
"""
from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field, replace

from ..data import starters
from ..config import TrainConfig
from ..experiments.variants import subsample
from ..analysis.forgetting import Meter
from ..generate import GenConfig, generate
from ..masks import IGNORE, Encoded, encode
from ..records import Conversation
from ..score import score, score_encoded
from ..present.textdiff import similarity
from ..train import train

GREETING = "Thanks for reaching out!"
SEEN = ("billing", "outage")  # the narrow run's categories


@dataclass(frozen=True)
class Cause:
    key: str
    name: str       # what went wrong, for the reveal
    fix: str        # what to do about it
    data: str       # "support", "flawed", "narrow" or "few"
    overrides: dict = field(default_factory=dict)  # TrainConfig changes


CAUSES = (
    Cause("full-loss", "loss on every token (full-sequence loss)",
          "train on the responses only (completion_only=True)", "support", {"completion_only": False}),
    Cause("flawed", "flawed training data (rude replies, wrong policy facts, duplicates)",
          "clean the data: review and fix or remove the bad rows, then retrain", "flawed"),
    Cause("narrow", "too narrow a set (only billing and outage questions)",
          "cover every kind of request users make; add examples for the missing topics", "narrow"),
    Cause("epochs", "too many epochs on too few examples (12 examples seen 8 times)",
          "more varied examples, fewer epochs, or early stopping on a held-out set", "few",
          {"max_steps": 24}),
    Cause("lr", "learning rate far too high (10x)", "lower the learning rate (1e-4 to 3e-4 here)",
          "support", {"lr": 2e-3}),
)


def prompt_side(conv: Conversation, tokenizer) -> Encoded:
    """The conversation with the loss on its prompt side (system and user text) instead of its
    response: how well a model predicts what *users* write."""
    full = encode(conv, tokenizer, completion_only=False)
    response = encode(conv, tokenizer)
    return Encoded(full.input_ids, [IGNORE if r != IGNORE else t for t, r in zip(full.input_ids, response.labels)])


@dataclass
class Symptoms:
    """What a person can see of one run."""

    name: str
    losses: list[float]                 # training loss per step (none for the base model)
    final_loss: float | None
    held_out_nll: float                 # the probes' reference answers
    nll_by_category: dict[str, float]   # the same, per category of probe
    prompt_nll: float                   # the probes' prompts (system + user text)
    retention_text_nll: float           # plain general paragraphs (forgetting)
    greeting: float                     # share of replies that open with the greeting
    reply_words: float                  # mean words per reply
    replies: list[str]
    recital: float                      # highest word overlap of a reply with a training answer

    def row(self) -> dict:
        return {"run": self.name, "final train loss": self.final_loss, "held-out NLL": self.held_out_nll,
                "prompt NLL": self.prompt_nll, "retention text NLL": self.retention_text_nll,
                "greeting": f"{self.greeting:.0%}", "reply words": round(self.reply_words),
                "closest to a training answer": round(self.recital, 2)}


def _data(kind: str, seed: int) -> list[Conversation]:
    support = starters.load("support")
    if kind == "flawed":
        return starters.load("flawed_support")
    if kind == "narrow":
        return [c for c in support if c.tags and c.tags[0] in SEEN]
    if kind == "few":
        return subsample(support, 12, seed=seed)
    return support


def measure(name: str, model, tokenizer, data: list[Conversation], probes: list[Conversation],
            losses: list[float], meter: Meter, gen: GenConfig) -> Symptoms:
    """The symptoms of a tuned `model` (trained on `data`, with these `losses`)."""
    held = score(model, tokenizer, probes)
    by_cat: dict[str, list[float]] = {}
    for p, v in zip(probes, held.per_example):
        by_cat.setdefault(p.tags[0] if p.tags else "", []).append(v)
    prompts = score_encoded(model, [prompt_side(p, tokenizer) for p in probes], tokenizer.pad_token_id)
    replies = generate(model, tokenizer, [p.prompt_only() for p in probes], gen)
    answers = [c.response for c in data if c.response]
    return Symptoms(
        name=name, losses=losses, final_loss=sum(losses[-3:]) / len(losses[-3:]) if losses else None,
        held_out_nll=held.mean_nll, nll_by_category={k: sum(v) / len(v) for k, v in by_cat.items()},
        prompt_nll=prompts.mean_nll, retention_text_nll=meter.nll(model, ("text",))["text"],
        greeting=sum(r.startswith(GREETING) for r in replies) / len(replies),
        reply_words=sum(len(r.split()) for r in replies) / len(replies), replies=replies,
        recital=max(similarity(a, r) for r in replies for a in answers))


@dataclass
class Mysteries:
    healthy: Symptoms
    runs: list[Symptoms]        # "Run A", "Run B", ... in the drawn order
    causes: list[Cause]         # the cause of each run, same order (see `reveal`)
    base: Symptoms

    def reveal(self) -> list[dict]:
        """Which cause each run had, and the fix."""
        return [{"run": s.name, "cause": c.name, "fix": c.fix} for s, c in zip(self.runs, self.causes)]

    def of(self, key: str) -> Symptoms:
        """The symptoms of the run with cause `key` (for checks)."""
        return next(s for s, c in zip(self.runs, self.causes) if c.key == key)


def train_mysteries(base_model, tokenizer, cfg: TrainConfig, *, seed: int = 0,
                    gen: GenConfig | None = None, on_run=None) -> Mysteries:
    """Train the healthy run and the five broken ones, each from a copy of `base_model`;
    `cfg` is the healthy recipe (each cause changes one thing); `on_run(name)` hears progress."""
    gen = gen or GenConfig(max_new_tokens=48)
    probes = starters.probes("support")
    meter = Meter(tokenizer)
    order = list(CAUSES)
    random.Random(seed).shuffle(order)
    base = measure("base model", base_model, tokenizer, starters.load("support"), probes, [], meter, gen)
    results = []
    for name, cause in [("healthy", None)] + [(f"Run {'ABCDE'[i]}", c) for i, c in enumerate(order)]:
        if on_run:
            on_run(name)
        data = _data(cause.data if cause else "support", seed)
        run_cfg = replace(cfg, seed=seed, **(cause.overrides if cause else {}))
        model = copy.deepcopy(base_model)
        result = train(model, tokenizer, data, run_cfg)
        losses = [h["loss"] for h in result.history if "loss" in h]
        results.append(measure(name, model, tokenizer, data, probes, losses, meter, gen))
        del model
    return Mysteries(healthy=results[0], runs=results[1:], causes=order, base=base)
