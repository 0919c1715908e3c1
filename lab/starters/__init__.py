"""Starter datasets written for the workshop, shipped inside the package.

>>> sorted(names())
['contracts', 'factual_qa', 'flawed_support', 'persona', 'support']
>>> len(load("support")) >= 30
True
"""
from __future__ import annotations

from pathlib import Path

from ..dataio import read_dataset
from ..records import Conversation

HERE = Path(__file__).parent


def names() -> list[str]:
    """Starter sets: folders with a train.jsonl."""
    return sorted(p.name for p in HERE.iterdir() if (p / "train.jsonl").is_file())


def _folder(name: str) -> Path:
    if name not in names():
        raise ValueError(f"no starter dataset named {name!r}; choose one of {', '.join(names())}")
    return HERE / name


def load(name: str) -> list[Conversation]:
    """The training examples of a starter set."""
    return read_dataset(_folder(name) / "train.jsonl")


def probes(name: str) -> list[Conversation]:
    """Held-out examples with reference answers (empty when the set has none)."""
    path = _folder(name) / "probes.jsonl"
    return read_dataset(path) if path.is_file() else []


def describe(name: str) -> str:
    """The set's README text: what it teaches and what to look for."""
    path = _folder(name) / "README.md"
    return path.read_text() if path.is_file() else ""


def general_text() -> list[Conversation]:
    """Neutral general-knowledge pairs, to measure forgetting before and after tuning."""
    return read_dataset(HERE / "general_text.jsonl")
