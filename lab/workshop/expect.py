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
