"""What a training run will cost, before it starts: tokens, steps, seconds and memory.

Time: a training step costs about 6 FLOPs per parameter per token (2 forward, 4 backward).
Dividing by the machine's measured fp32 matmul rate, times the share of it the lab's trainer
reaches (`EFFICIENCY`: about half in fp32; in bf16, on hardware that has it, about 1.2 times the
fp32 rate, measured with `bench.train_vs_trl`), gives seconds; once a run has measured its own
speed, that speed is the better guide. Memory, as `lab.engine.precision` and `lab.train` hold it:
weights, gradients and AdamW's two moments (16 bytes per parameter in fp32, 14 in bf16), the
untouched base copy the session keeps (4 bytes per parameter), the activations of one
micro-batch kept for the backward pass, the gradient of its trained tokens' logits with one
fp32 slice of logits, and the runtime.

>>> from types import SimpleNamespace as NS
>>> shape = NS(config=NS(num_hidden_layers=2, hidden_size=64, vocab_size=1000))
>>> seconds_for(tokens=1000, params=1_000_000, gflops=100.0, efficiency=0.5)
0.12
>>> round(memory_gb(params=1_000_000, model=shape, batch_size=8, seq_len=128, trained_per_row=64), 3)
0.323
"""
from __future__ import annotations

import functools
import time

import torch

from ..engine.device import autocast_dtype
from ..masks import encode
from ..objective import CHUNK
from ..records import Record
from ..config import TrainConfig, micro_batch_tokens, steps_for
from ..train import select, split_eval
from .timeline import AUTO, TimelineConfig

EFFICIENCY = {False: 0.5, True: 1.2}  # training speed / fp32 matmul rate, in fp32 and in bf16
OVERHEAD_GB = 0.3       # Python, torch and tokenizer runtime
_ACT_BYTES = 24         # bf16 bytes kept per token per layer per hidden unit (measured, SmolLM2)


@functools.lru_cache(maxsize=1)
def matmul_gflops(n: int = 1024, trials: int = 3, seconds: float = 0.05) -> float:
    """This machine's fp32 matrix-multiply rate in GFLOP/s (measured once per process).

    Matrices the size of a training step's (small ones mostly measure thread start-up), and
    the best of a few short trials, so a moment of contention does not stick in the cache.
    """
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm up threads and caches
    best = 0.0
    for _ in range(trials):
        count, t0 = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - t0) < seconds:
            a @ b
            count += 1
        best = max(best, 2 * n ** 3 * count / elapsed / 1e9)
    return best


def duration(seconds: float) -> str:
    """A time span for a person.

    >>> duration(8.2), duration(65), duration(4000)
    ('8 s', '1 min 05 s', '1 h 06 min')
    """
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def describe(est: dict) -> str:
    """One line for the train panel: what the run will cost.

    >>> describe({"tokens": 7148, "steps": 10, "seconds": 62.0, "memory_gb": 4.3, "examples": 40, "held_out": 4})
    '40 trained on, 4 held out · 7,148 tokens · 10 steps · about 1 min 02 s · about 4.3 GB memory'
    >>> describe({"tokens": 7148, "steps": 10, "seconds": 62.0, "timeline_seconds": 12.4, "memory_gb": 4.3,
    ...           "examples": 40, "held_out": 0})
    '40 trained on · 7,148 tokens · 10 steps · about 1 min 02 s (timeline 12 s of it) · about 4.3 GB memory'
    """
    if not est.get("examples"):
        return "no trainable examples"
    held = f", {est['held_out']} held out" if est.get("held_out") else ""
    tl = f" (timeline {duration(est['timeline_seconds'])} of it)" if est.get("timeline_seconds") else ""
    return (f"{est['examples']} trained on{held} · {est['tokens']:,} tokens · {est['steps']} steps · "
            f"about {duration(est['seconds'])}{tl} · about {est['memory_gb']:.1f} GB memory")


def timeline_seconds(train_seconds: float, steps: int, timeline: TimelineConfig | None,
                     point_seconds: float | None = None) -> float:
    """What a run's timeline adds to its `train_seconds`: with points by budget, its budget
    (the points stop where it is spent); with K points, K - 2 points between (the first and
    last answer what the Compare tab would) at `point_seconds` each, else a training step's time.

    >>> timeline_seconds(80.0, 10, TimelineConfig()), timeline_seconds(80.0, 10, None)
    (20.0, 0.0)
    >>> timeline_seconds(80.0, 10, TimelineConfig(points=6)), timeline_seconds(80.0, 10, TimelineConfig(points=6), 3.0)
    (32.0, 12.0)
    """
    if timeline is None or not timeline.on or not steps:
        return 0.0
    if timeline.points == AUTO:
        return timeline.budget * train_seconds
    return max(0, timeline.points - 2) * (point_seconds if point_seconds else train_seconds / steps)


def seconds_for(tokens: int, params: int, gflops: float, efficiency: float = EFFICIENCY[False]) -> float:
    """Wall time of training on `tokens` tokens: 6 FLOPs per parameter per token."""
    return 6 * params * tokens / (gflops * 1e9 * efficiency)


def memory_gb(params: int, model, batch_size: int, seq_len: int, trained_per_row: int,
              bf16: bool = False, micro_tokens: int | None = None) -> float:
    """Peak memory of a training run in GB (rough, within about 20% for small Llama models)."""
    cfg = model.config
    states = (14 if bf16 else 16) * params + 4 * params  # + the session's base copy (fp32)
    micro = micro_batch_tokens(micro_tokens, bf16)     # as `lab.train` splits a batch
    rows = max(1, min(batch_size, micro // max(1, seq_len)))
    act_bytes = _ACT_BYTES if bf16 else 2 * _ACT_BYTES
    activations = cfg.num_hidden_layers * rows * seq_len * cfg.hidden_size * act_bytes
    trained = rows * trained_per_row                   # d loss / d logits, kept, + an fp32 slice
    logits = (trained * (2 if bf16 else 4) + min(trained, CHUNK) * 4) * cfg.vocab_size
    return (states + activations + logits) / 1e9 + OVERHEAD_GB


def estimate(convs: list[Record], tokenizer, cfg: TrainConfig, model, *,
             gflops: float | None = None, efficiency: float | None = None,
             tokens_per_second: float | None = None, timeline: TimelineConfig | None = None,
             point_seconds: float | None = None) -> dict:
    """Tokens, optimiser steps, seconds and memory (GB) a `train(model, tokenizer, convs, cfg)`
    call will take on this machine. Counts follow the trainer: eval split, truncation, epochs.

    `tokens_per_second`, the speed a previous run of this model measured, replaces the FLOP
    estimate of the time when given: it already knows this machine and this model. With a
    `timeline`, the seconds include its share (`timeline_seconds`, also given apart).
    """
    data, _ = select(convs, cfg)
    if data and cfg.eval_split > 0:
        data, held = split_eval(data, cfg.eval_split, cfg.seed)
    else:
        held = []
    encoded = [e for e in (encode(c, tokenizer, cfg.max_length, cfg.completion_only) for c in data)
               if e.n_trained]
    if not encoded:
        return {"tokens": 0, "steps": 0, "seconds": 0.0, "memory_gb": 0.0, "examples": 0, "held_out": 0}
    steps_per_epoch, steps = steps_for(len(encoded), cfg)
    per_epoch = sum(len(e.input_ids) for e in encoded)
    tokens = round(per_epoch * steps / steps_per_epoch)
    eval_tokens = sum(len(encode(c, tokenizer, cfg.max_length).input_ids) for c in held)
    params = sum(p.numel() for p in model.parameters())
    bf16 = autocast_dtype(next(model.parameters(), torch.empty(0)).device) is not None
    work = tokens + eval_tokens / 3  # eval is a forward pass only: a third of a step's work per token
    if tokens_per_second:
        seconds = work / tokens_per_second
    else:
        seconds = seconds_for(work, params, gflops or matmul_gflops(), efficiency or EFFICIENCY[bf16])
    rows = min(cfg.batch_size, len(encoded))
    longest = max(len(e.input_ids) for e in encoded)
    trained = max(e.n_trained for e in encoded)
    extra = timeline_seconds(seconds, steps, timeline, point_seconds)
    return {"tokens": tokens, "steps": steps, "seconds": seconds + extra, "timeline_seconds": extra,
            "examples": len(encoded),
            "held_out": len(held),
            "memory_gb": memory_gb(params, model, rows, longest, trained, bf16, cfg.micro_tokens)}
