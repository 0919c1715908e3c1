"""The training loop: full-parameter SFT of a causal LM on instruction/response pairs.

One readable loop, minGPT-style: it reports through callbacks (`on_step`, `on_eval`, ...)
and never knows the UI. A `threading.Event` stops it at the next step; the model is then
as good as its last update and is saved like a finished run (a run stopped before its first
step changed nothing and leaves no run folder). The run folder's layout is `lab.runs`'s.

>>> from lab.models import load_model
>>> from lab.records import Conversation
>>> model, tok = load_model("tiny-random")
>>> data = [Conversation.single(f"What is {n} + {n}?", f"{n} + {n} = {2 * n}.") for n in range(8)]
>>> result = train(model, tok, data, TrainConfig(max_steps=3, eval_split=0))  # out_dir= for a run folder
>>> result.steps, result.stopped, result.final_loss > 0
(3, False, True)
"""
from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from . import runs
from .batching import length_grouped_batches, split_by_tokens
from .config import TrainConfig, micro_batch_tokens, steps_for
from .engine.device import autocast_dtype, release_free_memory, set_threads
from .engine.precision import MasterWeights
from .masks import IGNORE, Encoded, collate, encode_dataset, shared_prefix
from .objective import token_nll
from .records import DataError, Record
from .score import score_encoded

@dataclass
class StepInfo:
    step: int               # optimiser steps done
    total_steps: int
    epoch: float            # epochs done, fractional
    loss: float             # mean NLL per trained token in this step
    lr: float
    tokens: int             # tokens (prompt + response, no padding) processed so far
    tokens_per_second: float
    elapsed: float          # seconds since the loop started
    eta: float              # seconds left, estimated


@dataclass
class TrainResult:
    steps: int
    total_steps: int
    stopped: bool                 # True when the stop event ended the run early
    train_tokens: int
    trained_tokens: int           # response tokens that carried loss
    seconds: float                # the loop's wall time
    tokens_per_second: float
    final_loss: float | None      # mean loss of the last few steps (None: no step was made)
    eval_loss: float | None
    left_out: dict = field(default_factory=dict)  # records not trained, by reason: {"undesirable": 2}
    history: list[dict] = field(default_factory=list)
    out: str | None = None
    card: dict = field(default_factory=dict)      # the run card written (empty without a folder)

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("history"), d.pop("card")
        return d


class Callback:
    """Subscribe to the loop by overriding any of these; each gets plain data."""

    def on_start(self, total_steps: int, n_examples: int) -> None: ...
    def on_step(self, info: StepInfo) -> None: ...
    def on_eval(self, step: int, eval_loss: float) -> None: ...
    def on_end(self, result: TrainResult) -> None: ...


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Learning rate for optimiser step `step` (0-based): linear warmup, then the schedule."""
    warmup = int(cfg.warmup_ratio * total)
    if step < warmup:
        return cfg.lr * (step + 1) / (warmup + 1)
    progress = (step - warmup) / max(1, total - warmup)
    if cfg.schedule == "linear":
        return cfg.lr * (1 - progress)
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))
    return cfg.lr


def split_eval(convs: list[Record], share: float, seed: int):
    """Hold out `share` of the examples (at least one, never all) for eval, reproducibly.

    With fewer than two examples nothing is held out: training needs at least one.
    """
    if len(convs) < 2:
        return list(convs), []
    idx = list(range(len(convs)))
    random.Random(seed).shuffle(idx)
    n = min(len(convs) - 1, max(1, round(share * len(convs))))
    held = set(idx[:n])
    return [c for i, c in enumerate(convs) if i not in held], [convs[i] for i in sorted(held)]




def select(data: list[Record], cfg: TrainConfig) -> tuple[list[Record], dict[str, int]]:
    """The records a run can train on, and how many others were left out, by reason:
    "incomplete" (no reply to learn) and "undesirable" (marked `"label": false`, unless
    `cfg.include_undesirable`). `prepare_data` adds "no_trained_token" (nothing left within
    `max_length`, or an empty text).

    >>> from dataclasses import replace
    >>> from lab.records import Conversation
    >>> bad = replace(Conversation.single("q", "bad"), undesirable=True)
    >>> data = [Conversation.single("q", "a"), Conversation.single("q"), bad]
    >>> kept, left_out = select(data, TrainConfig())
    >>> len(kept), left_out
    (1, {'incomplete': 1, 'undesirable': 1})
    """
    left_out = {"incomplete": sum(not r.is_trainable for r in data),
                "undesirable": 0 if cfg.include_undesirable else sum(r.undesirable for r in data)}
    kept = [r for r in data if r.is_trainable and (cfg.include_undesirable or not r.undesirable)]
    return kept, {k: n for k, n in left_out.items() if n}


def prepare_data(data: list[Record], eval_data: list[Record] | None, tokenizer, cfg: TrainConfig
                 ) -> tuple[list[Record], list[Encoded], list[Encoded], dict[str, int]]:
    """(examples trained on, their encodings, encoded eval set, records left out by reason):
    the eval set is `eval_data`, else `cfg.eval_split` of `data` held out; records `select`
    leaves out are in neither. Raises DataError when nothing is trainable."""
    data, left_out = select(data, cfg)
    if not data and left_out.get("undesirable"):
        raise DataError(f"no example left to train on: all {left_out['undesirable']} with a reply are "
                        "marked undesirable (\"label\": false); to train on them anyway, include "
                        "undesirable examples (--include-undesirable)")
    if eval_data is None and cfg.eval_split > 0:
        data, eval_data = split_eval(data, cfg.eval_split, cfg.seed)
    elif eval_data:
        eval_data = select(eval_data, cfg)[0]
    train_set, _ = encode_dataset(data, tokenizer, cfg.max_length, cfg.completion_only)
    eval_set, _ = encode_dataset(eval_data, tokenizer, cfg.max_length) if eval_data else ([], [])
    if len(train_set) < len(data):  # no trained token within max_length, or an empty text
        left_out["no_trained_token"] = len(data) - len(train_set)
    if not train_set:
        raise DataError("no trainable example left (each needs an assistant reply within max_length)")
    return data, train_set, eval_set, left_out


def batch_stream(train_set: list[Encoded], cfg: TrainConfig, pad_id: int, micro_tokens: int):
    """Endless optimiser steps, each `grad_accum` length-grouped batches (one reshuffled epoch
    after another) as padded micro-batches of at most `micro_tokens` tokens: (B, T) tensors, and
    `prefix`, the leading tokens all rows share and predict nothing from (run once per batch)."""
    def batches():
        epoch = 0
        while True:
            for b in length_grouped_batches(train_set, cfg.batch_size, seed=cfg.seed + epoch):
                yield [train_set[i] for i in b]
            epoch += 1

    def micro_batches(batch: list[Encoded]):
        shared = shared_prefix(batch)  # every chunk starts with it; it counts once, as it runs
        return [{**collate(chunk, pad_id), "prefix": shared}
                for chunk in split_by_tokens(batch, micro_tokens, shared)]

    source = batches()
    while True:
        yield [m for _ in range(cfg.grad_accum) for m in micro_batches(next(source))]


class _Log:
    """What a run reports: the history, the callbacks and (with a run folder) metrics.jsonl."""

    def __init__(self, callbacks, out_dir: Path | None):
        self.callbacks, self.history = list(callbacks), []
        self.metrics = runs.Log(out_dir / runs.METRICS) if out_dir is not None else None

    def add(self, row: dict) -> None:
        self.history.append(row)
        if self.metrics is not None:
            self.metrics.write(row)

    def step(self, info: StepInfo) -> None:
        self.add(asdict(info))
        for cb in self.callbacks:
            cb.on_step(info)

    def eval(self, step: int, value: float) -> None:
        self.add({"step": step, "eval_loss": value})
        for cb in self.callbacks:
            cb.on_eval(step, value)

    def __enter__(self) -> "_Log":
        return self

    def __exit__(self, *exc) -> None:
        if self.metrics is not None:
            self.metrics.close()


def train(model, tokenizer, data: list[Record], cfg: TrainConfig | None = None, *,
          eval_data: list[Record] | None = None, callbacks: list[Callback] = (),
          stop: threading.Event | None = None, out_dir: str | Path | None = None,
          overwrite: bool = False, card: dict | None = None,
          finish: Callable[[TrainResult], dict] | None = None) -> TrainResult:
    """Fine-tune `model` in place on `data`; with `out_dir`, write a run folder there
    (`lab.runs`; a finished run there is refused unless `overwrite`; `card`: more fields for
    its run card, known at the start; `finish(result)`: more fields known at the end, computed
    after the callbacks' `on_end` and before `run.json`, whose writing ends the run).
    `lab.runner.make_run` is the run path that widgets, CLI and experiments call."""
    cfg = cfg or TrainConfig()
    data, train_set, eval_set, left_out = prepare_data(data, eval_data, tokenizer, cfg)
    out = runs.prepare(out_dir, overwrite=overwrite) if out_dir is not None else None
    try:
        if out is not None:
            runs.start(out, cfg.to_json(), model.config.name_or_path, data, card)
        with _Log(callbacks, out) as log:
            result = _loop(model, tokenizer, train_set, eval_set, cfg, stop, log, out)
            result.left_out = left_out
        for cb in callbacks:
            cb.on_end(result)  # before the card: what callbacks write is in the folder with it
        extra = finish(result) if finish is not None and result.steps else {}
    except BaseException:
        if out is not None:
            runs.release(out)  # no longer running: listed as interrupted
        raise
    if result.steps:
        result.card = {**(card or {}), **run_card(result, cfg, model.config.name_or_path, data), **extra}
    if out is not None:
        if result.steps:
            runs.save_model(model, tokenizer, out / runs.MODEL)
            result.card = runs.finish(out, result.card)
        else:
            runs.abandon(out)  # stopped before the first step: nothing to keep
    return result


def _loop(model, tokenizer, train_set: list[Encoded], eval_set: list[Encoded], cfg: TrainConfig,
          stop: threading.Event | None, log: _Log, out: Path | None) -> TrainResult:
    """The loop itself: steps of forward, backward and update, reported as they go."""
    steps_per_epoch, total = steps_for(len(train_set), cfg)
    for cb in log.callbacks:
        cb.on_start(total, len(train_set))
    set_threads()
    torch.manual_seed(cfg.seed)
    device = next(model.parameters()).device

    def evaluate(step: int) -> float | None:
        if not eval_set:
            return None
        value = score_encoded(model, eval_set, tokenizer.pad_token_id, cfg.batch_size).mean_nll
        log.eval(step, value)
        return value

    weights = MasterWeights(model, autocast_dtype(device), cfg.lr, cfg.weight_decay, cfg.max_grad_norm)
    stream = batch_stream(train_set, cfg, tokenizer.pad_token_id,
                          micro_batch_tokens(cfg.micro_tokens, weights.split))
    step = tokens = trained = 0
    eval_loss, stopped = None, False
    model.train()
    t0 = time.perf_counter()
    with weights:  # bf16 weights inside, where the hardware has bf16; fp32 again after
        while step < total:
            if stop is not None and stop.is_set():
                stopped = True
                break
            lr = lr_at(step, total, cfg)
            micro = [{k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in m.items()}
                     for m in next(stream)]
            n_step = sum(int((m["labels"][:, 1:] != IGNORE).sum()) for m in micro)  # trained tokens
            loss = 0.0
            for m in micro:
                # forward: NLL of each response token given everything before it
                nll, _ = token_nll(model, **m, accumulate=True)  # (N,) one value per trained token
                part = nll.sum() / n_step                        # mean over the whole step's tokens
                # backward
                part.backward()
                if not weights.split:  # fp32: heap trimmed per micro-batch too, to stay under 3 GB
                    release_free_memory()
                loss += part.item()
                tokens += int(m["attention_mask"].sum())
            # update
            weights.step(lr)                                     # clip, AdamW, zero the grads
            release_free_memory()                                # once a step: see its docstring
            step += 1
            trained += n_step
            elapsed = time.perf_counter() - t0
            log.step(StepInfo(step=step, total_steps=total, epoch=step / steps_per_epoch, loss=loss,
                              lr=lr, tokens=tokens, tokens_per_second=tokens / elapsed,
                              elapsed=elapsed, eta=elapsed / step * (total - step)))
            if cfg.eval_every and step % cfg.eval_every == 0 and step < total:
                eval_loss = evaluate(step)
    seconds = time.perf_counter() - t0
    del weights                                                  # the optimiser's moments
    release_free_memory()
    if step and eval_set:
        eval_loss = evaluate(step)
    model.eval()
    losses = [h["loss"] for h in log.history if "loss" in h][-5:]
    return TrainResult(
        steps=step, total_steps=total, stopped=stopped, train_tokens=tokens, trained_tokens=trained,
        seconds=seconds, tokens_per_second=tokens / seconds if seconds else 0.0,
        final_loss=sum(losses) / len(losses) if losses else None,
        eval_loss=eval_loss, history=log.history, out=str(out) if out is not None and step else None)


def run_card(result: TrainResult, cfg: TrainConfig, model_name: str, data: list[Record]) -> dict:
    """The run card of a training run (`lab.runs` describes its fields)."""
    return {**result.summary(), "status": "stopped" if result.stopped else "done",
            "model": model_name, "config": cfg.to_json(), "n_examples": len(data),
            "dataset_sha256": runs.dataset_sha256(data)}
