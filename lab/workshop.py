"""Settings the notebooks read, so CI can run every notebook fast and a teacher in full.

`SFT_LAB_FAST=1` (CI, tests): the tiny random model and a handful of steps.
`SFT_LAB_MODEL=NAME` picks another model in either mode (e.g. a hub id you have cached).

>>> import os; os.environ["SFT_LAB_FAST"] = "1"; settings().model
'tiny-random'
>>> del os.environ["SFT_LAB_FAST"]
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


def settings() -> Settings:
    fast = os.environ.get("SFT_LAB_FAST", "") not in ("", "0", "false", "no")
    model = os.environ.get("SFT_LAB_MODEL") or ("tiny-random" if fast else "default")
    return Settings(fast=fast, model=model, max_steps=3 if fast else None,
                    max_new_tokens=8 if fast else 96)
