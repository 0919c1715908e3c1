"""What was learned: the tokens and short phrases the tuning made more, or less, likely.

For each example (a prompt with a reference answer, or with the tuned model's own reply when
there is none), both models score every response token; the change in log-probability, tuned
minus base, says what the tuning promoted (positive) or suppressed (negative). Aggregated over
all examples by token text and by phrase (2-3 consecutive tokens), with how often each occurs
and its mean change, in nats: +1 means the tuned model finds it e (2.7) times as likely.

>>> ex = [[{"token": "Arr", "change": 3.0}, {"token": "!", "change": 2.0}, {"token": " Hi", "change": -0.5}],
...       [{"token": "Arr", "change": 2.0}, {"token": "!", "change": 1.0}, {"token": " Hi", "change": -1.5}]]
>>> s = summarize(ex, top=2)
>>> [(t["text"], t["count"], t["mean_change"]) for t in s["tokens"]["promoted"]]
[('Arr', 2, 2.5), ('!', 2, 1.5)]
>>> s["tokens"]["suppressed"]
[{'text': 'Hi', 'count': 2, 'mean_change': -1.0}]
>>> [(t["text"], t["count"], t["mean_change"]) for t in s["phrases"]["promoted"]]
[('Arr!', 2, 2.0), ('Arr! Hi', 2, 1.0)]
"""
from __future__ import annotations

from collections import defaultdict

from ..generate import GenConfig, generate
from ..records import Conversation
from ..score import token_logprobs

MAX_N = 3  # longest phrase, in tokens


def token_changes(base, tuned, tokenizer, convs: list[Conversation], *, max_length: int = 512,
                  gen: GenConfig | None = None) -> tuple[list[Conversation], list[list[dict]]]:
    """The examples scored, and per example per response token {"token", "base", "tuned",
    "change"} (log-probabilities in nats). Prompts without a reference answer get the tuned
    model's greedy reply (`gen`) as their response."""
    missing = [c for c in convs if not c.response]
    replies = iter(generate(tuned, tokenizer, missing, gen or GenConfig(max_new_tokens=64)) if missing else [])
    scored = [c if c.response else c.with_response(next(replies)) for c in convs]
    before = token_logprobs(base, tokenizer, scored, max_length)
    after = token_logprobs(tuned, tokenizer, scored, max_length)
    changes = [[{"token": tokenizer.decode([t]), "base": b, "tuned": a, "change": a - b}
                for (t, b), (_, a) in zip(bs, as_)] for bs, as_ in zip(before, after)]
    return scored, changes


def _label(text: str) -> str:
    """A token's text as a person reads it in a list: trimmed, whitespace made visible."""
    stripped = text.strip()
    if stripped:
        return stripped
    return text.replace("\n", "↵").replace(" ", "␣") or "(empty)"


def _ranked(groups: dict[str, list[float]], top: int, min_count: int) -> dict[str, list[dict]]:
    rows = [{"text": k, "count": len(v), "mean_change": round(sum(v) / len(v), 4)} for k, v in groups.items()]
    common = [r for r in rows if r["count"] >= min_count] or rows  # one-offs only if nothing repeats
    up = sorted((r for r in common if r["mean_change"] > 0), key=lambda r: (-r["mean_change"], -r["count"]))
    down = sorted((r for r in common if r["mean_change"] < 0), key=lambda r: (r["mean_change"], -r["count"]))
    return {"promoted": up[:top], "suppressed": down[:top]}


def summarize(changes: list[list[dict]], top: int = 10, min_count: int = 2) -> dict:
    """The most promoted and suppressed tokens and phrases over all examples.

    Items seen fewer than `min_count` times are left out when others repeat (a one-off is
    often noise); each item: {"text", "count", "mean_change"}."""
    tokens: dict[str, list[float]] = defaultdict(list)
    phrases: dict[str, list[float]] = defaultdict(list)
    for example in changes:
        for i, tok in enumerate(example):
            tokens[_label(tok["token"])].append(tok["change"])
            for n in range(2, MAX_N + 1):
                window = example[i:i + n]
                text = "".join(t["token"] for t in window).strip()
                if len(window) == n and text and "\n" not in text:
                    phrases[text].append(sum(t["change"] for t in window) / n)
    all_changes = [t["change"] for ex in changes for t in ex]
    return {"examples": len(changes), "tokens_scored": len(all_changes),
            "mean_change": round(sum(all_changes) / len(all_changes), 4) if all_changes else None,
            "tokens": _ranked(tokens, top, min_count), "phrases": _ranked(phrases, top, min_count)}


def learned(base, tuned, tokenizer, convs: list[Conversation], *, top: int = 10,
            max_length: int = 512, gen: GenConfig | None = None) -> dict:
    """`summarize` of `token_changes`: what the tuning promoted and suppressed on `convs`."""
    _, changes = token_changes(base, tuned, tokenizer, convs, max_length=max_length, gen=gen)
    return summarize(changes, top)
