"""Batches with little padding: shuffle, then group examples of similar length.

Padding is wasted compute. Sorting a shuffled pool by length and cutting it into batches keeps
each batch's examples close in length; shuffling the batch order keeps training stochastic.

>>> from lab.masks import Encoded
>>> data = [Encoded([0] * n, [0] * n) for n in (3, 9, 4, 8)]
>>> [[len(data[i].input_ids) for i in b] for b in length_grouped_batches(data, 2, seed=0)]
[[3, 4], [8, 9]]
"""
from __future__ import annotations

import random

from .masks import Encoded


def length_grouped_batches(data: list[Encoded], batch_size: int, seed: int,
                           pool_batches: int = 64) -> list[list[int]]:
    """One epoch of index batches: shuffled, pooled by `pool_batches` batches, sorted in a pool."""
    rng = random.Random(seed)
    order = list(range(len(data)))
    rng.shuffle(order)
    pool = batch_size * pool_batches
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda i: len(data[i].input_ids))
        batches += [chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def padding_fraction(data: list[Encoded], batches: list[list[int]]) -> float:
    """Share of the batched tensor that is padding (0 = none)."""
    real = sum(len(data[i].input_ids) for b in batches for i in b)
    total = sum(len(b) * max(len(data[i].input_ids) for i in b) for b in batches)
    return 1 - real / total if total else 0.0


def split_by_tokens(batch: list[Encoded], budget: int, shared: int = 0) -> list[list[Encoded]]:
    """Split a batch into chunks whose padded size (rows x longest) stays within `budget` tokens;
    `shared` leading tokens that every row has and that run once per chunk count once.

    >>> [[len(e.input_ids) for e in c] for c in split_by_tokens(
    ...     [Encoded([0] * n, [0] * n) for n in (2, 3, 5, 6)], budget=10)]
    [[2, 3], [5], [6]]
    >>> [len(c) for c in split_by_tokens([Encoded([0] * 6, [0] * 6)] * 3, budget=10, shared=4)]
    [3]
    """
    chunks: list[list[Encoded]] = []
    for e in sorted(batch, key=lambda e: len(e.input_ids)):
        chunk = chunks[-1] if chunks else None
        if chunk and shared + (len(chunk) + 1) * (len(e.input_ids) - shared) <= budget:
            chunk.append(e)
        else:
            chunks.append([e])
    return chunks
