"""What the notebooks read, so CI can run every notebook fast and a teacher in full, and the
check behind every sentence that predicts an outcome.

`SFT_LAB_FAST=1` (CI, tests): the tiny random model and a handful of steps.
`SFT_LAB_MODEL=NAME` picks another model in either mode (e.g. a hub id you have cached).
`SFT_LAB_SEED=N` changes the seed of every run a notebook makes (`make notebooks-full` runs
them over several seeds: a claim must hold for each).

`expect(condition, claim)` sits beside a sentence that says what the reader will see. In full
mode (the default model) a claim that does not hold raises `ClaimFailed`, so
`make notebooks-full` fails; in fast mode (a random model, whose results mean nothing) it
only says that the claim was not checked.

>>> import os; os.environ["SFT_LAB_FAST"] = "1"; settings().model
'tiny-random'
>>> expect(False, "the tuned replies open with 'Arr!'")
not checked (fast mode): the tuned replies open with 'Arr!'
>>> del os.environ["SFT_LAB_FAST"]
>>> expect(2 > 1, "two is more than one", measured="2 vs 1")
checked: two is more than one (2 vs 1)

A sentence's strength has one meaning in numbers, whatever notebook it is in: the helpers below
(`far_below`, `clearly_below`, `about_as`, `nearly_all`, `most`, `on_every_pair`, ...) are the
workshop's vocabulary for outcomes, and a claim that uses one of their words calls its helper.
"""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    fast: bool        # True in CI: tiny model, few steps
    model: str        # model name for load_model / Session
    max_steps: int | None  # cap on optimiser steps per run (None = use epochs)
    max_new_tokens: int    # reply length in comparisons
    seed: int              # seed of the notebook's runs


def settings() -> Settings:
    fast = os.environ.get("SFT_LAB_FAST", "") not in ("", "0", "false", "no")
    model = os.environ.get("SFT_LAB_MODEL") or ("tiny-random" if fast else "default")
    return Settings(fast=fast, model=model, max_steps=3 if fast else None,
                    max_new_tokens=8 if fast else 96, seed=int(os.environ.get("SFT_LAB_SEED") or 0))


class ClaimFailed(AssertionError):
    """A sentence of a notebook said what the reader would see, and the run showed otherwise."""


def expect(condition: bool, claim: str, *, measured: str | None = None) -> None:
    """Check `claim` (the notebook's words) against `condition` (the numbers): in full mode
    print that it holds or raise `ClaimFailed` with what was measured; in fast mode print
    that it was not checked."""
    detail = f" ({measured})" if measured else ""
    if settings().fast:
        print(f"not checked (fast mode): {claim}")
    elif condition:
        print(f"checked: {claim}{detail}")
    else:
        raise ClaimFailed(f"the notebook says: {claim}; this run shows otherwise{detail}. "
                          "Rewrite the sentence (or its run) so that it holds across seeds.")


# The words a notebook may use for an outcome, each with one measured meaning. A sentence that
# says "far", "clearly", "about as", "nearly every", "most" or "on every seed" has its check
# call the matching helper here, so the word means the same in every notebook (the table is in
# INSTRUCTOR.md, "Words for outcomes", and tests/test_workshop.py holds the notebooks to it).
ABOUT = 0.10   # "about as", "barely moves", "close to": within 10% of the larger value
FAR = 1.5      # "far", "much", "a lot": a ratio of at least 1.5 between the two values


def about_as(a: float, b: float) -> bool:
    """'a is about as large as b' (also 'barely moves from b to a'): within 10% of the larger.

    >>> about_as(1.05, 1.0), about_as(1.2, 1.0)
    (True, False)
    """
    return abs(a - b) <= ABOUT * max(abs(a), abs(b))


def about_as_many(k: int, m: int, n: int) -> bool:
    """'about as many' of `n` (counts): apart by at most one item or 10% of n, whichever is more.

    >>> about_as_many(16, 14, 30), about_as_many(16, 10, 30)
    (True, False)
    """
    return abs(k - m) <= max(1, ABOUT * n)


def clearly_below(a: float, b: float) -> bool:
    """'a is clearly lower than b': lower, and not about as large (more than 10% apart).

    >>> clearly_below(0.85, 1.0), clearly_below(0.95, 1.0)
    (True, False)
    """
    return a < b and not about_as(a, b)


def clearly_above(a: float, b: float) -> bool:
    """'a is clearly higher than b'."""
    return clearly_below(b, a)


def far_below(a: float, b: float) -> bool:
    """'a is far (much) lower than b': b is at least 1.5 times a (both positive).

    >>> far_below(0.6, 1.0), far_below(0.7, 1.0)
    (True, False)
    """
    return 0 <= a and FAR * a <= b


def far_above(a: float, b: float) -> bool:
    """'a is far (much) higher than b': a is at least 1.5 times b."""
    return far_below(b, a)


def most(k: int, n: int) -> bool:
    """'most' of n: more than half.

    >>> most(4, 6), most(3, 6)
    (True, False)
    """
    return 2 * k > n


def nearly_all(k: int, n: int) -> bool:
    """'nearly every' / 'nearly all' of n: at most one missing, or 10% of n where n is over 10.

    >>> nearly_all(5, 6), nearly_all(4, 6), nearly_all(27, 30)
    (True, False, True)
    """
    return n - k <= max(1, n // 10)


def on_every_pair(lower: list[float], higher: list[float]) -> bool:
    """'on every seed' (paired runs): `lower[i] < higher[i]` for every pair of runs that share
    a seed, the data drawn and the batch order, and differ in one thing.

    >>> on_every_pair([0.3, 0.27, 0.23], [0.45, 0.39, 0.26]), on_every_pair([0.3, 0.3], [0.4, 0.2])
    (True, False)
    """
    return len(lower) == len(higher) > 0 and all(a < b for a, b in zip(lower, higher))


# claim wording -> the helpers a check of that wording must call (any one of them)
WORDS = {
    r"\b(far|a lot)\b|(?<!as )\bmuch\b": ("far_below", "far_above"),
    r"\bclearly\b": ("clearly_below", "clearly_above", "far_below", "far_above"),
    r"\b(about as|barely|close to)\b": ("about_as", "about_as_many"),
    r"\bnearly (all|every|always)\b": ("nearly_all",),
    r"(?<!at )\bmost\b(?! likely)": ("most", "nearly_all"),
    r"\b(every|each) seed\b": ("on_every_pair",),
}
