"""The forgetting meter: what fine-tuning cost the model in general knowledge and language.

A fixed retention set written for the lab (`lab/data/starters/retention/`, its README says what a
rise does and does not mean): 30 general questions with short answers, scored as the NLL of
the reference answers and as exact-answer accuracy, and 10 plain paragraphs, scored as the
NLL of every token (the pre-training objective). `Meter.nll` is cheap (one forward pass over
the set); a timeline scores a fixed third of it (`few=True`) at every point and the whole set
at its first and last; `Meter.answers` decodes, and runs before and after.

>>> correct("It has 8 legs.", ["8", "eight"]), correct("About 80.", ["8", "eight"])
(True, False)
>>> flips([True, False, True], [True, True, False])
{'right_to_wrong': [2], 'wrong_to_right': [1]}
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..generate import GenConfig, generate
from ..masks import Encoded, encode
from ..records import Conversation
from ..score import score_encoded

RETENTION = Path(__file__).parents[1] / "data" / "starters" / "retention"
ANSWER_TOKENS = 24  # reply length when checking the answers: the answers are one short sentence


@dataclass(frozen=True)
class Question:
    conv: Conversation      # the question and its reference answer
    accept: tuple[str, ...]  # words or numbers that make a reply right


def questions() -> list[Question]:
    """The retention set's questions."""
    rows = [json.loads(line) for line in (RETENTION / "qa.jsonl").read_text().splitlines() if line.strip()]
    return [Question(Conversation.single(r["prompt"], r["completion"], id=r["id"]), tuple(r["accept"]))
            for r in rows]


def texts() -> list[str]:
    """The retention set's plain paragraphs."""
    return [json.loads(line)["text"] for line in (RETENTION / "text.jsonl").read_text().splitlines()
            if line.strip()]


def correct(reply: str, accept) -> bool:
    """True when `reply` holds one of the `accept` forms as a whole word or number."""
    return any(re.search(rf"(?<![\w.]){re.escape(a)}(?![\w]|\.\d)", reply, re.IGNORECASE) for a in accept)


def flips(before: list[bool], after: list[bool]) -> dict[str, list[int]]:
    """Indices of the questions answered right before and wrong after, and the other way."""
    return {"right_to_wrong": [i for i, (a, b) in enumerate(zip(before, after)) if a and not b],
            "wrong_to_right": [i for i, (a, b) in enumerate(zip(before, after)) if b and not a]}


def encode_text(text: str, tokenizer, max_length: int) -> Encoded:
    """A paragraph as pre-training sees it: every token after the first is trained, then EOS."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][: max_length - 1] + [tokenizer.eos_token_id]
    return Encoded(ids, list(ids))


class Meter:
    """The retention set encoded once for a tokenizer; measure any model with it."""

    def __init__(self, tokenizer, max_length: int = 256):
        self.tokenizer = tokenizer
        self.questions = questions()
        self._qa = [encode(q.conv, tokenizer, max_length) for q in self.questions]
        self._text = [encode_text(t, tokenizer, max_length) for t in texts()]

    def nll(self, model, parts: tuple[str, ...] = ("qa", "text"), few: bool = False) -> dict[str, float]:
        """Mean NLL per token of the reference answers ("qa") and of the paragraphs ("text"),
        or of the `parts` named; `few`: of every third question and paragraph only (the same
        ones every time: a line across a run's points at a third of the cost)."""
        sets = {"qa": self._qa, "text": self._text}
        return {k: score_encoded(model, sets[k][::3] if few else sets[k], self.tokenizer.pad_token_id).mean_nll
                for k in parts}

    def answers(self, model, max_new_tokens: int = ANSWER_TOKENS) -> dict:
        """Greedy replies to the questions, and which are right: {"replies", "correct", "accuracy"}."""
        replies = generate(model, self.tokenizer, [q.conv.prompt_only() for q in self.questions],
                           GenConfig(max_new_tokens=max_new_tokens, batch_size=len(self.questions)))
        right = [correct(r, q.accept) for r, q in zip(replies, self.questions)]
        return {"replies": replies, "correct": right, "accuracy": sum(right) / len(right)}

    def report(self, base: dict, tuned: dict) -> dict:
        """Accuracy before and after, and the questions that flipped (with both replies)."""
        changed = flips(base["correct"], tuned["correct"])

        def rows(idx):
            return [{"question": self.questions[i].conv.prompt, "answer": self.questions[i].conv.response,
                     "base": base["replies"][i], "tuned": tuned["replies"][i]} for i in idx]

        return {"base_accuracy": base["accuracy"], "tuned_accuracy": tuned["accuracy"],
                "questions": len(self.questions),
                "right_to_wrong": rows(changed["right_to_wrong"]),
                "wrong_to_right": rows(changed["wrong_to_right"])}
