"""Dataset variants for what-if experiments: pure, seeded transforms of a list of conversations.

Each returns a new list and never changes its input, so one source set feeds many variants.

>>> from lab.records import Conversation
>>> data = [Conversation.single(f"q{i}", f"a{i}", tags=("x" if i % 2 else "y",)) for i in range(4)]
>>> [c.prompt for c in subsample(data, 2, seed=0)]  # one of each category
['q1', 'q2']
>>> [c.response for c in shuffle_responses(data, 1.0, seed=0)]
['a3', 'a0', 'a1', 'a2']
>>> [c.prompt for c in drop_tag(data, "x")]
['q0', 'q2']
>>> len(duplicate(data, 0.5, seed=0))
6
"""
from __future__ import annotations

import random

from ..records import Conversation


def subsample(data: list[Conversation], n: int, seed: int = 0, stratify: bool = True) -> list[Conversation]:
    """A random `n` of the examples (all of them if n >= len), in their original order.

    With `stratify` and categories (each example's first tag), every category keeps its share:
    n is split in proportion to the category sizes (largest remainders first), so 10 of 50
    examples in 5 equal categories are 2 of each, not whatever a plain draw gives.

    >>> mixed = [Conversation.single(f"q{i}", "a", tags=("abcde"[i % 5],)) for i in range(50)]
    >>> sorted(c.tags[0] for c in subsample(mixed, 10, seed=0))
    ['a', 'a', 'b', 'b', 'c', 'c', 'd', 'd', 'e', 'e']
    """
    if n < 1:
        raise ValueError("subsample needs n >= 1")
    rng = random.Random(seed)
    n = min(n, len(data))
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(data):
        groups.setdefault(c.tags[0] if (stratify and c.tags) else "", []).append(i)
    if len(groups) == 1:
        picked = rng.sample(range(len(data)), n)
    else:
        exact = {k: n * len(v) / len(data) for k, v in groups.items()}
        take = {k: int(x) for k, x in exact.items()}
        for k in sorted(exact, key=lambda k: (take[k] - exact[k], rng.random()))[: n - sum(take.values())]:
            take[k] += 1
        picked = [i for k, v in groups.items() for i in rng.sample(v, take[k])]
    return [data[i] for i in sorted(picked)]


def _pick(candidates: list[int], fraction: float, seed: int) -> list[int]:
    """A `fraction` of the `candidates` (indices), drawn with `seed`, in order."""
    if not 0 <= fraction <= 1:
        raise ValueError("fraction must be between 0 and 1")
    k = round(fraction * len(candidates))
    return sorted(random.Random(seed).sample(candidates, k))


def _replies(data: list) -> list[int]:
    """Indices of the conversations with a reply (plain texts have none to change)."""
    return [i for i, c in enumerate(data) if isinstance(c, Conversation) and c.is_trainable]


def shuffle_responses(data: list[Conversation], fraction: float, seed: int = 0) -> list[Conversation]:
    """Noisy labels: a `fraction` of examples get another picked example's response.

    The picked responses are rotated among themselves, so each lands on a wrong prompt.
    """
    idx = _pick(_replies(data), fraction, seed)
    out = list(data)
    if len(idx) < 2:
        return out
    for i, j in zip(idx, idx[-1:] + idx[:-1]):
        out[i] = data[i].with_response(data[j].response or "")
    return out


def corrupt_responses(data: list[Conversation], fraction: float, seed: int = 0) -> list[Conversation]:
    """Noisy text: a `fraction` of responses lose their second half and get their words shuffled."""
    rng = random.Random(seed + 1)
    out = list(data)
    for i in _pick(_replies(data), fraction, seed):
        words = (data[i].response or "").split()
        words = words[: max(1, len(words) // 2)]
        rng.shuffle(words)
        out[i] = data[i].with_response(" ".join(words))
    return out


def duplicate(data: list[Conversation], fraction: float, seed: int = 0) -> list[Conversation]:
    """Repeats: a `fraction` of examples appear twice (what over-represented data does)."""
    return list(data) + [data[i] for i in _pick(list(range(len(data))), fraction, seed)]


def drop_tag(data: list[Conversation], tag: str) -> list[Conversation]:
    """Narrower data: remove every example tagged `tag` (a category)."""
    kept = [c for c in data if tag not in c.tags]
    if not kept:
        raise ValueError(f"dropping tag {tag!r} leaves no examples")
    return kept


def tags(data: list[Conversation]) -> list[str]:
    """The categories present, in first-seen order."""
    seen: dict[str, None] = {}
    for c in data:
        for t in c.tags:
            seen.setdefault(t, None)
    return list(seen)
