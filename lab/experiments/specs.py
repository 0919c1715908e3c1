"""What-if variants from a kind and typed values: "subsample" + "10, 20, 40" -> three Variants.

The experiments widget (and anything else with a text box) describes a sweep as a kind and
a line of values; this module turns that into `lab.experiments.Variant`s and says clearly
what is wrong with bad input, before any training starts.

>>> [v.name for v in make_variants("subsample", "10, 20 40")]
['n=10', 'n=20', 'n=40']
>>> [(v.name, v.config) for v in make_variants("epochs", "1, 2")]
[('epochs=1', {'epochs': 1.0, 'max_steps': None}), ('epochs=2', {'epochs': 2.0, 'max_steps': None})]
>>> [v.name for v in make_variants("drop_tag", "math", tags=["math", "code"])]
['drop=math']
>>> make_variants("shuffle_responses", "0.5, 2")
Traceback (most recent call last):
...
ValueError: shuffled responses: 2 is not a fraction between 0 and 1
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .queue import (Variant, epoch_sweep, loss_ablation, lr_sweep, noise_sweep, size_ladder, size_sweep,
                    with_seeds)


@dataclass(frozen=True)
class Kind:
    label: str    # shown in the dropdown
    hint: str     # what to type in the parameters box
    example: str  # values to start from ("" when the kind takes none)
    values: bool = True  # False: the kind takes no values (one fixed set of runs)


KINDS: dict[str, Kind] = {
    "baseline": Kind("Data as it is (baseline)", "no values: one run on the data as it is", "", False),
    "ladder": Kind("How many examples do I need (4, 8, 16, ..., all)",
                   "no values: subsamples of 4, 8, 16, ... examples and all of them", "", False),
    "subsample": Kind("Subsample N examples", "example counts, e.g. 10, 20, 40", "10, 20, 40"),
    "shuffle_responses": Kind("Shuffled responses (fraction)",
                              "fractions 0-1 of examples given another example's response",
                              "0.25, 0.5"),
    "corrupt_responses": Kind("Corrupted responses (fraction)",
                              "fractions 0-1 of responses cut in half and word-shuffled", "0.25, 0.5"),
    "duplicate": Kind("Duplicated examples (fraction)",
                      "fractions 0-1 of examples repeated once", "0.5, 1"),
    "drop_tag": Kind("Drop a tag", "tags to drop, one run each", ""),
    "loss": Kind("Completion-only vs full-sequence loss",
                 "no values: two runs, loss on responses only vs on every token", "", False),
    "epochs": Kind("Epoch sweep", "epoch counts, e.g. 1, 2, 4", "1, 2, 4"),
    "lr": Kind("Learning-rate sweep", "peak learning rates, e.g. 1e-5, 5e-5, 2e-4", "1e-5, 5e-5, 2e-4"),
}
_FRACTIONS = ("shuffle_responses", "corrupt_responses", "duplicate")


def split_values(text: str) -> list[str]:
    """The values typed in a box, split on commas, semicolons or spaces; repeats dropped.

    >>> split_values(" 1e-5, 5e-5;5e-5  2e-4 ")
    ['1e-5', '5e-5', '2e-4']
    """
    return list(dict.fromkeys(v for v in re.split(r"[,;\s]+", text.strip()) if v))


def _numbers(kind: str, text: str, cast, ok, need: str) -> list:
    what = KINDS[kind].label.split(" (")[0].lower()
    values = split_values(text)
    if not values:
        raise ValueError(f"{what}: type {KINDS[kind].hint}")
    out = []
    for v in values:
        try:
            x = cast(v)
        except ValueError:
            raise ValueError(f"{what}: {v!r} is not a number; type {KINDS[kind].hint}") from None
        if not ok(x):
            raise ValueError(f"{what}: {v} is not {need}")
        out.append(x)
    return list(dict.fromkeys(out))


def make_variants(kind: str, text: str = "", *, tags: list[str] = (), n_examples: int = 0,
                  seeds: int = 1) -> list[Variant]:
    """The variants for one experiment; `tags` are the categories the data has (for drop_tag),
    `n_examples` how many examples it has (for the ladder); each repeated over `seeds` seeds."""
    if seeds < 1:
        raise ValueError(f"seeds: {seeds} is not a number of runs per variant (1 or more)")
    return with_seeds(_variants(kind, text, tags, n_examples), seeds)


def _variants(kind: str, text: str, tags, n_examples: int) -> list[Variant]:
    if kind not in KINDS:
        raise ValueError(f"unknown kind of variant {kind!r}; choose from {', '.join(KINDS)}")
    if not KINDS[kind].values:
        if split_values(text):
            raise ValueError(f"{KINDS[kind].label} takes no values; clear the box")
        if kind == "ladder":
            if n_examples < 5:
                raise ValueError(f"how many examples: the data has {n_examples}; a ladder needs more than 4")
            return size_ladder(n_examples)
        return [Variant("baseline")] if kind == "baseline" else loss_ablation()
    if kind == "subsample":
        return size_sweep(_numbers(kind, text, int, lambda n: n >= 1, "a whole number of examples >= 1"))
    if kind in _FRACTIONS:
        return noise_sweep(_numbers(kind, text, float, lambda f: 0 <= f <= 1,
                                    "a fraction between 0 and 1"), kind)
    if kind == "epochs":
        # max_steps would override epochs, so every epoch run clears it
        return [Variant(v.name, config={**v.config, "max_steps": None})
                for v in epoch_sweep(_numbers(kind, text, float, lambda e: e > 0, "a positive number of epochs"))]
    if kind == "lr":
        return lr_sweep(_numbers(kind, text, float, lambda lr: 0 < lr < 1, "a learning rate between 0 and 1"))
    # drop_tag
    names = split_values(text)
    if not tags:
        raise ValueError("drop a tag: the data has no tags (give examples `tags` to make categories)")
    if not names:
        raise ValueError(f"drop a tag: type one or more of the data's tags: {', '.join(tags)}")
    unknown = [n for n in names if n not in tags]
    if unknown:
        raise ValueError(f"drop a tag: the data has no tag {unknown[0]!r}; its tags are {', '.join(tags)}")
    return [Variant(f"drop={n}", "drop_tag", n) for n in names]
