"""Word-level differences between two replies, for the side-by-side comparison.

Words and the whitespace between them are compared as units (difflib), so a diff reads like
an editor's track changes: what the tuned model kept, dropped and added.

>>> word_diff("the cat sat", "the dog sat")
[('equal', 'the '), ('delete', 'cat'), ('insert', 'dog'), ('equal', ' sat')]
>>> word_diff("", "Arr!")
[('insert', 'Arr!')]
"""
from __future__ import annotations

import difflib
import re

_UNITS = re.compile(r"\s+|\S+")  # a run of whitespace, or a word with its punctuation


def word_diff(a: str, b: str) -> list[tuple[str, str]]:
    """How to turn `a` into `b`: ("equal" | "delete" | "insert", text) pieces, in reading order.

    Joining the "equal" and "delete" texts gives back `a`; "equal" and "insert" give `b`.
    Adjacent pieces with the same op are merged.
    """
    wa, wb = _UNITS.findall(a), _UNITS.findall(b)
    out: list[tuple[str, str]] = []

    def emit(op: str, units: list[str]) -> None:
        text = "".join(units)
        if not text:
            return
        if out and out[-1][0] == op:
            out[-1] = (op, out[-1][1] + text)
        else:
            out.append((op, text))

    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, wa, wb, autojunk=False).get_opcodes():
        if tag == "equal":
            emit("equal", wa[i1:i2])
        else:  # "replace" is a delete followed by an insert
            emit("delete", wa[i1:i2])
            emit("insert", wb[j1:j2])
    return out


def similarity(a: str, b: str) -> float:
    """Share of words the two texts have in common, 0..1 (1 = identical).

    >>> similarity("a b c", "a b c"), similarity("a", "b")
    (1.0, 0.0)
    """
    return difflib.SequenceMatcher(None, a.split(), b.split(), autojunk=False).ratio() if (a or b) else 1.0
