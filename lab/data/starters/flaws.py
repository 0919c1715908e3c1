"""Flawed support data at a chosen rate, for a dose-response experiment.

`flawed(rate)` returns the 45 questions of the `support` starter in their usual order, with a
share `rate` of them answered badly. The bad answers come from a pool written for the lab
(`flawed_support/flaws.jsonl`, 30 rows) in five kinds, from obvious to subtle:

- `rude`: dismissive replies ("Not our problem."), some after the usual greeting;
- `wrong-policy`: fluent replies that contradict the policy (a $150 fee to cancel);
- `outdated-policy`: last year's numbers (bills due by the 20th, a $3 late fee);
- `leaked-email`: a good reply that repeats a customer's e-mail address (all @example.com);
- `conflicting-answer`: a second, different answer to a question whose clean answer stays in.

Each pool row names the clean row it takes the place of (`replaces`); a conflicting answer also
names the clean row it contradicts (`conflicts_with`), which is never replaced. So every mix has
45 rows and the same five topics, 9 each, and only the answers change. For one seed the doses
are nested: the flawed rows at rate 0.1 include those at 0.02, so a dose-response curve compares
more of the same flaws, not other ones.

A flawed row carries the tag `flaw:<kind>` after its topic tag, for the teacher to count
(`flaw_counts`). Tags never reach the model: only the messages are templated and trained on.
`marked=False` leaves the tags off and numbers the rows `mix-01`.., for handing to learners.

>>> mix = flawed(0.1, seed=0)
>>> len(mix), sum(flaw_counts(mix).values())
(45, 5)
>>> set(flaw_counts(flawed(0.02))) <= set(flaw_counts(mix))   # nested doses
True
"""
from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from ..dataio import parse_record
from ...records import Conversation, DataError

POOL = Path(__file__).parent / "flawed_support" / "flaws.jsonl"
KINDS = ("rude", "wrong-policy", "outdated-policy", "leaked-email", "conflicting-answer")
TAG = "flaw:"


@dataclass(frozen=True)
class Flaw:
    """One pool row: the bad example and the clean rows it touches."""

    example: Conversation
    kind: str
    replaces: str                    # id of the support row it takes the place of
    conflicts_with: str | None       # id of the support row it contradicts (kept in the set)


@lru_cache(maxsize=1)
def pool() -> tuple[Flaw, ...]:
    """Every flawed row written for the lab, in file order."""
    rows = []
    for n, line in enumerate(POOL.read_text(encoding="utf-8").splitlines(), 1):
        obj = json.loads(line)
        conv = parse_record(obj, source=str(POOL), where=f"line {n}")
        kinds = [t[len(TAG):] for t in conv.tags if t.startswith(TAG)]
        if len(kinds) != 1 or kinds[0] not in KINDS:
            raise DataError(f"needs exactly one tag of {', '.join(TAG + k for k in KINDS)}",
                            source=str(POOL), where=f"line {n}")
        rows.append(Flaw(conv, kinds[0], obj["replaces"], obj.get("conflicts_with")))
    return tuple(rows)


def flaw_of(conv: Conversation) -> str | None:
    """The kind of flaw a row of `flawed()` was given (None for a clean row or an unmarked mix)."""
    return next((t[len(TAG):] for t in conv.tags if t.startswith(TAG)), None)


def flaw_counts(data: list[Conversation]) -> Counter:
    """How many rows of each kind of flaw a (marked) mix holds."""
    return Counter(k for k in map(flaw_of, data) if k)


def _dose_order(seed: int) -> list[Flaw]:
    """The pool in the order flaws are added as the rate grows: kinds take turns (in a seeded
    order), rows within a kind are shuffled, so every dose mixes the kinds evenly."""
    rng = random.Random(seed)
    by_kind = {k: [f for f in pool() if f.kind == k] for k in KINDS}
    kinds = list(KINDS)
    rng.shuffle(kinds)
    for k in kinds:
        rng.shuffle(by_kind[k])
    order = []
    for i in range(max(map(len, by_kind.values()))):
        order += [by_kind[k][i] for k in kinds if i < len(by_kind[k])]
    return order


def flawed(rate: float, seed: int = 0, *, marked: bool = True) -> list[Conversation]:
    """The support set with round(rate x 45) of its rows (halves up) replaced by flawed ones.

    `rate` runs from 0 (the clean set) to 30/45 (the whole pool); typical doses are 0.02, 0.1
    and 0.33 (1, 5 and 15 flawed rows). The same `rate` and `seed` always give the same rows.
    """
    from . import load  # here, not at the top: the package imports this module

    if not 0 <= rate <= 1:
        raise ValueError(f"rate must be between 0 and 1 (a share of the rows), got {rate}")
    clean = load("support")
    n_flawed = int(rate * len(clean) + 0.5)
    if n_flawed > len(pool()):
        raise ValueError(f"rate {rate} asks for {n_flawed} flawed rows of {len(clean)}, but the pool "
                         f"holds {len(pool())}: use a rate of at most {len(pool()) / len(clean):.2f}")
    chosen = {f.replaces: f for f in _dose_order(seed)[:n_flawed]}
    out = []
    for i, row in enumerate(clean, 1):
        flaw = chosen.get(row.id)
        new = replace(flaw.example if flaw else row, meta={})  # its file's line numbers mislead here
        if not marked:
            new = replace(new, tags=tuple(t for t in new.tags if not t.startswith(TAG)),
                          id=f"mix-{i:02d}")
        out.append(new)
    return out
