"""Starter datasets written for the workshop, shipped inside the package.

Each set is a folder: `train.jsonl`, held-out `probes.jsonl`, `README.md` (learner notes: what
the set teaches and what to look for; shown in the Dataset tab) and `TEACHER.md` (teacher notes:
answers to the exercises, the flawed rows; never shown by the lab). Every probe is labelled
`paraphrase` (it re-asks what a training example answers; `paraphrase_of` names it) or `new`.

>>> sorted(names())
['contracts', 'factual_qa', 'flawed_support', 'persona', 'support']
>>> len(load("support")) >= 30
True
>>> probe_labels("persona")["persona-p04"]
ProbeLabel(kind='paraphrase', paraphrase_of='persona-012')
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..dataio import read_dataset
from ...records import Conversation, DataError

HERE = Path(__file__).parent
PROBE_KINDS = ("paraphrase", "new")


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


@dataclass(frozen=True)
class ProbeLabel:
    kind: str                   # "paraphrase" (re-asks a training example) or "new"
    paraphrase_of: str | None   # id of the training example a paraphrase re-asks


def probe_labels(name: str) -> dict[str, ProbeLabel]:
    """Probe id -> its label, from the `kind` and `paraphrase_of` fields of probes.jsonl.

    A paraphrase measures whether tuning carried over to other wording of a trained question
    (its reference answer may even be the training answer word for word); only a `new` probe
    measures whether the behaviour carries over to questions the set never answered.
    """
    path = _folder(name) / "probes.jsonl"
    labels = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines() if path.is_file() else [], 1):
        row = json.loads(line)
        if row.get("kind") not in PROBE_KINDS:
            raise DataError(f"'kind' must be one of {', '.join(PROBE_KINDS)}, got {row.get('kind')!r}",
                            source=str(path), where=f"line {n}")
        labels[row["id"]] = ProbeLabel(row["kind"], row.get("paraphrase_of"))
    return labels


def describe(name: str) -> str:
    """The set's learner notes (README.md): what it teaches and what to look for, no answers."""
    path = _folder(name) / "README.md"
    return path.read_text() if path.is_file() else ""


def general_text() -> list[Conversation]:
    """Neutral general-knowledge pairs, to measure forgetting before and after tuning."""
    return read_dataset(HERE / "general_text.jsonl")


from .flaws import flaw_counts, flaw_of, flawed  # noqa: E402  (flaws.py calls load())
