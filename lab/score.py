"""Score a model on reference answers: mean NLL per trained token, per example and overall.

Lower is better: it is the training objective measured on data, e.g. held-out examples
(generalisation) or general text (forgetting). exp(mean_nll) is the perplexity.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .engine.device import autocast_dtype
from .masks import IGNORE, Encoded, collate, encode
from .objective import token_nll
from .records import Conversation


@dataclass
class Scores:
    mean_nll: float            # over all trained tokens of all examples
    per_example: list[float]   # mean NLL per trained token of each example
    tokens: list[int]          # trained tokens per example

    def to_json(self) -> dict:
        return {"mean_nll": self.mean_nll, "examples": self.per_example, "tokens": self.tokens}


@torch.no_grad()
def score_encoded(model, data: list[Encoded], pad_id: int, batch_size: int = 8) -> Scores:
    """Score pre-encoded examples (each must have at least one trained token)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    dtype = autocast_dtype(device)
    order = sorted(range(len(data)), key=lambda i: len(data[i].input_ids))  # little padding
    sums = [0.0] * len(data)
    counts = [0] * len(data)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        batch = {k: v.to(device) for k, v in collate([data[i] for i in idx], pad_id).items()}
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            nll, rows = token_nll(model, **batch)
        per_row_sum = torch.zeros(len(idx), device=device).index_add_(0, rows, nll.float())
        per_row_n = torch.bincount(rows, minlength=len(idx))
        for r, i in enumerate(idx):
            sums[i], counts[i] = float(per_row_sum[r]), int(per_row_n[r])
    model.train(was_training)
    total = sum(counts)
    return Scores(mean_nll=sum(sums) / total if total else float("nan"),
                  per_example=[s / c if c else float("nan") for s, c in zip(sums, counts)],
                  tokens=counts)


def score(model, tokenizer, convs: list[Conversation], max_length: int = 512,
          batch_size: int = 8) -> Scores:
    """Mean NLL of each conversation's assistant turns given its prompt."""
    data = [encode(c, tokenizer, max_length) for c in convs]
    return score_encoded(model, data, tokenizer.pad_token_id, batch_size)


@torch.no_grad()
def token_probabilities(model, tokenizer, conv: Conversation, max_length: int = 512
                        ) -> list[tuple[str, float]]:
    """Each response token with the probability the model gave it (for heat maps)."""
    enc = encode(conv, tokenizer, max_length)
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in collate([enc], tokenizer.pad_token_id).items()}
    model.eval()
    nll, _ = token_nll(model, **batch)
    trained = [t for t, label in zip(enc.input_ids[1:], enc.labels[1:]) if label != IGNORE]
    return [(tokenizer.decode([t]), float(p)) for t, p in zip(trained, torch.exp(-nll).tolist())]
