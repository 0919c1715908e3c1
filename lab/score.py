"""Score a model on reference answers: mean NLL per trained token, per example and overall.

Lower is better: it is the training objective measured on data, e.g. held-out examples
(generalisation) or general text (forgetting). exp(mean_nll) is the perplexity.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .engine.device import autocast
from .masks import IGNORE, Encoded, collate, encode, shared_prefix
from .objective import token_nll
from .records import Conversation


@dataclass
class Scores:
    mean_nll: float            # over all trained tokens of all examples
    per_example: list[float]   # mean NLL per trained token of each example
    tokens: list[int]          # trained tokens per example

    def to_json(self) -> dict:
        return {"mean_nll": self.mean_nll, "examples": self.per_example, "tokens": self.tokens}


def _nll_batches(model, data: list[Encoded], pad_id: int, batch_size: int):
    """(indices, nll, rows) per batch of similar-length examples: the NLL of each trained token
    and the position in `indices` of the example it belongs to. Eval mode, no gradients."""
    device = next(model.parameters()).device
    order = sorted(range(len(data)), key=lambda i: len(data[i].input_ids))  # little padding
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                examples = [data[i] for i in idx]
                batch = {k: v.to(device) for k, v in collate(examples, pad_id).items()}
                with autocast(device):
                    nll, rows = token_nll(model, **batch, prefix=shared_prefix(examples))
                yield idx, nll.float(), rows
    finally:
        model.train(was_training)


def score_encoded(model, data: list[Encoded], pad_id: int, batch_size: int = 8) -> Scores:
    """Score pre-encoded examples (each must have at least one trained token)."""
    sums = [0.0] * len(data)
    counts = [0] * len(data)
    for idx, nll, rows in _nll_batches(model, data, pad_id, batch_size):
        per_row_sum = torch.zeros(len(idx), device=nll.device).index_add_(0, rows, nll)
        per_row_n = torch.bincount(rows, minlength=len(idx))
        for r, i in enumerate(idx):
            sums[i], counts[i] = float(per_row_sum[r]), int(per_row_n[r])
    total = sum(counts)
    return Scores(mean_nll=sum(sums) / total if total else float("nan"),
                  per_example=[s / c if c else float("nan") for s, c in zip(sums, counts)],
                  tokens=counts)


def score(model, tokenizer, convs: list[Conversation], max_length: int = 512,
          batch_size: int = 8) -> Scores:
    """Mean NLL of each conversation's assistant turns given its prompt."""
    data = [encode(c, tokenizer, max_length) for c in convs]
    return score_encoded(model, data, tokenizer.pad_token_id, batch_size)


def token_logprobs(model, tokenizer, convs: list[Conversation], max_length: int = 512,
                   batch_size: int = 8) -> list[list[tuple[int, float]]]:
    """For each conversation, (token id, log-probability the model gives it) of every trained
    (response) token, in order."""
    data = [encode(c, tokenizer, max_length) for c in convs]
    out: list[list[tuple[int, float]]] = [[] for _ in data]
    for idx, nll, rows in _nll_batches(model, data, tokenizer.pad_token_id, batch_size):
        values, rows = (-nll).tolist(), rows.tolist()
        for r, i in enumerate(idx):
            e = data[i]
            ids = [t for t, label in zip(e.input_ids[1:], e.labels[1:]) if label != IGNORE]
            out[i] = list(zip(ids, [v for v, row in zip(values, rows) if row == r]))
    return out


def token_probabilities(model, tokenizer, conv: Conversation, max_length: int = 512
                        ) -> list[tuple[str, float]]:
    """Each response token with the probability the model gave it (for heat maps)."""
    (pairs,) = token_logprobs(model, tokenizer, [conv], max_length)
    return [(tokenizer.decode([t]), math.exp(lp)) for t, lp in pairs]
