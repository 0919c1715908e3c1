"""The training loop: full-parameter SFT of a causal LM on instruction/response pairs.

One readable loop, minGPT-style: it reports through callbacks (`on_step`, `on_eval`, ...)
and never knows the UI. A `threading.Event` stops it at the next step; the model is then
as good as its last update and is saved like a finished run.

>>> # cfg = TrainConfig(epochs=2); result = train(model, tok, data, cfg, out_dir="runs/x")
"""
from __future__ import annotations

import math
import platform
import random
import shutil
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from . import __version__
from .atomic import write_json, write_jsonl
from .batching import length_grouped_batches, split_by_tokens
from .device import autocast_dtype, release_free_memory, set_threads
from .masks import IGNORE, collate, encode_dataset
from .objective import token_nll
from .precision import MasterWeights
from .records import Conversation, DataError
from .score import score_encoded


@dataclass
class TrainConfig:
    epochs: float = 3.0           # passes over the training set (unused when max_steps is set)
    max_steps: int | None = None  # optimiser steps; overrides epochs
    lr: float = 5e-5              # peak learning rate (AdamW)
    schedule: str = "cosine"      # constant | linear | cosine, after warmup
    warmup_ratio: float = 0.1     # share of steps spent ramping the lr up from 0
    batch_size: int = 8           # examples per forward pass
    grad_accum: int = 1           # batches per optimiser step
    micro_tokens: int | None = None  # max padded tokens per forward pass; bigger batches are
                                  # split (same gradient). None: 512 in bf16, 256 in fp32, the
                                  # same activation memory (SmolLM2-135M's run stays under 3 GB)
    max_length: int = 256         # tokens per example; longer ones are cut (with a warning)
    weight_decay: float = 0.0     # AdamW weight decay
    max_grad_norm: float = 1.0    # gradient clipping (0 = off)
    seed: int = 0                 # data order and any randomness
    completion_only: bool = True  # loss on response tokens only; False = on every token
    eval_split: float = 0.0       # share of the data held out for eval when no eval set is given
    eval_every: int = 0           # eval every N steps (0 = only at the end)

    def __post_init__(self):
        if self.schedule not in ("constant", "linear", "cosine"):
            raise ValueError(f"schedule must be constant, linear or cosine, not {self.schedule!r}")
        if self.batch_size < 1 or self.grad_accum < 1 or self.max_length < 2:
            raise ValueError("batch_size and grad_accum must be >= 1 and max_length >= 2")
        if not (0 <= self.eval_split < 1):
            raise ValueError("eval_split must be in [0, 1)")


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
    final_loss: float             # mean loss of the last few steps
    eval_loss: float | None
    history: list[dict] = field(default_factory=list)
    out: str | None = None

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("history")
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


def micro_batch_tokens(setting: int | None, bf16: bool) -> int:
    """Padded tokens per forward pass: `TrainConfig.micro_tokens`, else 512 in bf16 and 256 in
    fp32 (the same activation memory)."""
    return setting or (512 if bf16 else 256)


def split_eval(convs: list[Conversation], share: float, seed: int):
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


def train(model, tokenizer, data: list[Conversation], cfg: TrainConfig | None = None, *,
          eval_data: list[Conversation] | None = None, callbacks: list[Callback] = (),
          stop: threading.Event | None = None, out_dir: str | Path | None = None) -> TrainResult:
    """Fine-tune `model` in place on `data`; optionally write a run folder to `out_dir`."""
    cfg = cfg or TrainConfig()
    if eval_data is None and cfg.eval_split > 0:
        data, eval_data = split_eval(data, cfg.eval_split, cfg.seed)
        eval_data = eval_data or None
    train_set, _ = encode_dataset(data, tokenizer, cfg.max_length, cfg.completion_only)
    eval_set, _ = encode_dataset(eval_data or [], tokenizer, cfg.max_length) if eval_data else ([], [])
    if not train_set:
        raise DataError("no trainable example left (each needs an assistant reply within max_length)")
    if out_dir is not None:
        out_dir = Path(out_dir)
        write_json(out_dir / "config.json", {**asdict(cfg), "model": model.config.name_or_path})
        write_jsonl(out_dir / "dataset.jsonl", (c.to_json() for c in data))
    set_threads()
    torch.manual_seed(cfg.seed)
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id
    batches_per_epoch = math.ceil(len(train_set) / cfg.batch_size)
    steps_per_epoch = math.ceil(batches_per_epoch / cfg.grad_accum)
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
    for cb in callbacks:
        cb.on_start(total, len(train_set))

    def batch_stream():
        """Endless batches: one length-grouped, reshuffled epoch after another."""
        epoch = 0
        while True:
            for b in length_grouped_batches(train_set, cfg.batch_size, seed=cfg.seed + epoch):
                yield [train_set[i] for i in b]
            epoch += 1

    def evaluate(step: int) -> float | None:
        if not eval_set:
            return None
        value = score_encoded(model, eval_set, pad_id, cfg.batch_size).mean_nll
        history.append({"step": step, "eval_loss": value})
        for cb in callbacks:
            cb.on_eval(step, value)
        return value

    history: list[dict] = []
    stream = batch_stream()
    tokens = trained = 0
    step, eval_loss, stopped = 0, None, False
    model.train()
    t0 = time.perf_counter()
    weights = MasterWeights(model, autocast_dtype(device), cfg.lr, cfg.weight_decay,
                            cfg.max_grad_norm)
    micro_tokens = micro_batch_tokens(cfg.micro_tokens, weights.split)
    with weights:  # bf16 weights inside, where the hardware has bf16; fp32 again after
        while step < total:
            if stop is not None and stop.is_set():
                stopped = True
                break
            lr = lr_at(step, total, cfg)
            micro = [collate(chunk, pad_id) for _ in range(cfg.grad_accum)
                     for chunk in split_by_tokens(next(stream), micro_tokens)]
            n_step = sum(int((m["labels"][:, 1:] != IGNORE).sum()) for m in micro)  # trained tokens
            loss_sum = 0.0
            for m in micro:
                m = {k: v.to(device, non_blocking=True) for k, v in m.items()}
                # forward: NLL of each response token given everything before it
                nll, _ = token_nll(model, **m, accumulate=True)  # (N,) one value per trained token
                loss = nll.sum() / n_step                        # mean over the whole step's tokens
                # backward
                loss.backward()
                if not weights.split:  # fp32: heap trimmed per micro-batch too, to stay under 3 GB
                    release_free_memory()
                loss_sum += loss.item()
                tokens += int(m["attention_mask"].sum())
            weights.step(lr)                                     # clip, update, zero the grads
            release_free_memory()                                # once a step: see its docstring
            step += 1
            trained += n_step
            elapsed = time.perf_counter() - t0
            info = StepInfo(step=step, total_steps=total, epoch=step / steps_per_epoch, loss=loss_sum,
                            lr=lr, tokens=tokens, tokens_per_second=tokens / elapsed, elapsed=elapsed,
                            eta=elapsed / step * (total - step))
            history.append(asdict(info))
            for cb in callbacks:
                cb.on_step(info)
            if cfg.eval_every and step % cfg.eval_every == 0 and step < total:
                eval_loss = evaluate(step)
    seconds = time.perf_counter() - t0
    del weights                                                  # the optimiser's moments
    release_free_memory()
    if eval_set and (not history or "eval_loss" not in history[-1]):
        eval_loss = evaluate(step)
    model.eval()
    losses = [h["loss"] for h in history if "loss" in h]
    result = TrainResult(
        steps=step, total_steps=total, stopped=stopped, train_tokens=tokens, trained_tokens=trained,
        seconds=seconds, tokens_per_second=tokens / seconds if seconds else 0.0,
        final_loss=sum(losses[-5:]) / len(losses[-5:]) if losses else float("nan"),
        eval_loss=eval_loss, history=history, out=str(out_dir) if out_dir else None)
    if out_dir is not None:
        save_run(out_dir, model, tokenizer, result)
    for cb in callbacks:
        cb.on_end(result)
    return result


def save_model(model, tokenizer, path: Path) -> None:
    """Save an HF folder atomically: build it beside the target, then swap it in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}-"))
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    old = path.with_name(f".{path.name}-old")
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def save_run(out_dir: Path, model, tokenizer, result: TrainResult) -> None:
    """metrics.jsonl, model/ and, last, run.json: a run with run.json is complete."""
    write_jsonl(out_dir / "metrics.jsonl", result.history)
    save_model(model, tokenizer, out_dir / "model")
    versions = {"sft_lab": __version__, "torch": torch.__version__, "python": platform.python_version()}
    try:
        import transformers
        versions["transformers"] = transformers.__version__
    except ImportError:  # pragma: no cover
        pass
    write_json(out_dir / "run.json", {**result.summary(), "versions": versions,
                                      "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")})
