"""Shared fixtures: the tiny random model (built in a second) and the real tokenizer."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub

REPO = Path(__file__).resolve().parents[1]
# the 175 Self-Instruct seed tasks (Apache-2.0, see tests/data/README.md), in every clone
SEED_TASKS = Path(os.environ.get("SFT_LAB_SEED_TASKS") or Path(__file__).parent / "data" / "self_instruct_seed_tasks.jsonl")


@pytest.fixture(scope="session")
def seed_tasks_path() -> Path:
    """The Self-Instruct seed tasks: tests/data's copy, or `$SFT_LAB_SEED_TASKS`."""
    assert SEED_TASKS.is_file(), f"{SEED_TASKS} is missing (set SFT_LAB_SEED_TASKS to a copy)"
    return SEED_TASKS


@pytest.fixture(scope="session")
def tok():
    from lab.models import load_tokenizer

    return load_tokenizer("tiny-random")


@pytest.fixture()
def tiny():
    """A fresh tiny random model and its tokenizer (fresh: tests train it)."""
    from lab.models import load_model

    return load_model("tiny-random")


@pytest.fixture(params=["lab", "transformers"])
def tiny_both(request):
    """`tiny` on each backend in turn: the same weights in the lab's class and in transformers'
    (for the tests that must hold whichever computes)."""
    from lab.models import load_model

    return load_model("tiny-random", backend=request.param)
