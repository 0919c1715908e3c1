"""What a submitted dataset is like: size, length, duplicates, diversity, topic coverage.

The gallery ranks datasets by how the model they trained does; these numbers say what the
datasets were, so a class can see what separates the best from the rest. No model needed
(token counts come from the caller's tokenizer when there is one).

>>> from lab.records import Conversation as C
>>> s = shape([C.single("When is my bill due?", "By the 15th."), C.single("when is my  bill due?", "The 15th.")])
>>> s["examples"], s["duplicates"], round(s["diversity"], 2)
(2, 1, 0.0)
"""
from __future__ import annotations

import re
from collections import Counter
from itertools import combinations

_WORD = re.compile(r"[a-z0-9']+")
STOP = frozenset("""a an and are as at be but by can could do does for from get had has have how i if in
into is it its it's me my no not of on or our out so than that the their them then there these they this
to up us was we were what when where which who why will with would you your yours i'm i've don't can't
am been being did just more most some any all also very too here about""".split())
MIN_SHARED = 2  # distinctive words an example shares with a topic's probes to count as covering it


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _prompt_key(c) -> str:
    return " ".join(words(c.prompt))


def shape(data, tokens: list[int] | None = None) -> dict:
    """Examples, tokens (when counted), mean prompt and response words, duplicates (examples
    whose prompt, case and punctuation aside, an earlier one already asks) and diversity
    (1 - the mean word overlap, Jaccard, between two examples: 0 all alike, 1 nothing shared)."""
    keys = [_prompt_key(c) for c in data]
    seen: Counter = Counter()
    duplicates = 0
    for k in keys:
        duplicates += seen[k] > 0
        seen[k] += 1
    bags = [set(words(c.prompt + " " + (c.response or ""))) - STOP for c in data]
    pairs = [(a, b) for a, b in combinations(bags, 2) if a or b]
    overlap = sum(len(a & b) / len(a | b) for a, b in pairs) / len(pairs) if pairs else 0.0
    n = len(data) or 1
    return {"examples": len(data), "tokens": sum(tokens) if tokens is not None else None,
            "prompt_words": sum(len(words(c.prompt)) for c in data) / n,
            "response_words": sum(len(words(c.response or "")) for c in data) / n,
            "duplicates": duplicates, "diversity": 1.0 - overlap if pairs else 0.0}


def topic_words(probes) -> dict[str, set[str]]:
    """Per topic tag, the words of its probes (prompts and reference answers) that no other
    topic's probes use: what an example about that topic is likely to say."""
    bags: dict[str, Counter] = {}
    for p in probes:
        for tag in p.tags[:1]:
            bags.setdefault(tag, Counter()).update(set(words(p.prompt + " " + p.conv.response)) - STOP)
    return {t: {w for w in bag if len(w) > 2 and not any(w in other for o, other in bags.items() if o != t)}
            for t, bag in bags.items()}


def topic_of(conv, vocab: dict[str, set[str]]) -> str | None:
    """The topic an example is about: the one whose distinctive words it shares most of
    (at least `MIN_SHARED`; a word of the prompt counts twice, as the question says what the
    example is about), else None."""
    asked, answered = set(words(conv.prompt)), set(words(conv.response or ""))

    def shared(t):
        return 2 * len(asked & vocab[t]) + len(answered & vocab[t])
    best = max(vocab, key=lambda t: (shared(t), t), default=None)
    return best if best is not None and len((asked | answered) & vocab[best]) >= MIN_SHARED else None


def coverage(data, probes) -> dict:
    """Which of the probes' topics the dataset has examples about, and how many each."""
    vocab = topic_words(probes)
    counts = Counter(topic_of(c, vocab) for c in data)
    return {"topics": list(vocab), "covered": [t for t in vocab if counts[t]],
            "per_topic": {t: counts[t] for t in vocab}, "off_topic": counts[None]}
