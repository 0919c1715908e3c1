"""The training settings: one dataclass, one set of defaults, one way to count steps.

The CLI, the Train tab, the experiments queue and the notebooks all start from
`TrainConfig()`; its defaults give a useful run of SmolLM2-135M on a starter set in about a
minute on a 2-core laptop. `steps_for` is how the trainer, the estimate and the widgets count
optimiser steps, so the three never disagree.

>>> TrainConfig().epochs, TrainConfig().lr
(2.0, 0.0002)
>>> steps_for(40, TrainConfig(epochs=2, batch_size=8))
(5, 10)
>>> problems({"epochs": 0, "lr": -1}, {"epochs": "Epochs", "lr": "Learning rate"})
['Epochs must be above 0 (or set a number of steps)', 'Learning rate must be above 0, e.g. 2e-4']
"""
from __future__ import annotations

import functools
import inspect
import io
import math
import tokenize
from dataclasses import asdict, dataclass, fields

SCHEDULES = ("constant", "linear", "cosine")


@dataclass
class TrainConfig:
    epochs: float = 2.0           # passes over the training set (unused when max_steps is set)
    max_steps: int | None = None  # optimiser steps; overrides epochs
    lr: float = 2e-4              # peak learning rate (AdamW); 1e-4 to 3e-4 suits a 135M model
    schedule: str = "cosine"      # constant | linear | cosine, after warmup
    warmup_ratio: float = 0.1     # share of steps spent ramping the lr up from 0
    batch_size: int = 8           # examples per optimiser step
    grad_accum: int = 1           # batches per optimiser step
    micro_tokens: int | None = None  # max padded tokens per forward pass; bigger batches are
                                  # split (same gradient). None: 512 in bf16, 256 in fp32, the
                                  # same activation memory (SmolLM2-135M's run stays under 3 GB)
    max_length: int = 256         # tokens per example; longer ones are cut (with a warning)
    weight_decay: float = 0.0     # AdamW weight decay
    max_grad_norm: float = 1.0    # gradient clipping (0 = off)
    seed: int = 0                 # data order, eval split and any randomness
    completion_only: bool = True  # loss on response tokens only; False = on every token
    include_undesirable: bool = False  # also train replies the data marks undesirable ("label": false)
    eval_split: float = 0.1       # share of the data held out for eval when no eval set is given
    eval_every: int = 0           # eval every N steps (0 = only at the end)

    def __post_init__(self):
        found = problems(asdict(self))
        if found:
            raise ValueError("; ".join(found))

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "TrainConfig":
        """A config from `config.json` (unknown keys, such as "model", are left out)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@functools.lru_cache(maxsize=None)
def field_help() -> dict[str, str]:
    """Each setting's one-line comment in `TrainConfig`'s source, for help texts (the CLI's
    `--help`): the comment beside a default is its documentation, written once.

    >>> field_help()["lr"]
    'peak learning rate (AdamW); 1e-4 to 3e-4 suits a 135M model'
    """
    try:
        source = inspect.getsource(TrainConfig)
    except (OSError, TypeError):  # no source files (a frozen install): names only
        return {}
    names = {f.name for f in fields(TrainConfig)}
    out: dict[str, str] = {}
    current = None
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NAME and tok.start[1] == 4 and tok.string in names:
            current = tok.string                         # a field's line starts
        elif tok.type == tokenize.COMMENT and current:   # its comment, and comment lines below it
            text = tok.string.lstrip("#").strip()
            out[current] = f"{out[current]} {text}" if current in out else text
        elif tok.type == tokenize.NAME and tok.start[1] == 4:
            current = None                               # anything else ends the field
    return out


def problems(values: dict, names: dict[str, str] | None = None) -> list[str]:
    """Every problem with these settings at once (empty when they are fine).

    `values`: field -> value (missing fields take the defaults); `names`: field -> the label a
    person sees (the Train tab's "Learning rate"), used in the messages instead of the field.
    """
    v = {f.name: f.default for f in fields(TrainConfig)} | dict(values)
    label = {f.name: f.name for f in fields(TrainConfig)} | dict(names or {})
    out = []

    def bad(key, text):
        out.append(f"{label[key]} {text}")

    if v["max_steps"] is not None and v["max_steps"] < 1:
        bad("max_steps", "must be at least 1 (or unset, to train for the epochs)")
    if v["max_steps"] is None and not v["epochs"] > 0:
        bad("epochs", "must be above 0 (or set a number of steps)")
    if not v["lr"] > 0:
        bad("lr", "must be above 0, e.g. 2e-4")
    elif v["lr"] >= 1:
        bad("lr", f"is {v['lr']:g}, far too high for fine-tuning; try 1e-4 to 3e-4")
    if v["schedule"] not in SCHEDULES:
        bad("schedule", f"must be constant, linear or cosine, not {v['schedule']!r}")
    if not 0 <= v["warmup_ratio"] < 1:
        bad("warmup_ratio", "must be a share between 0 and 1")
    for key in ("batch_size", "grad_accum"):
        if v[key] < 1:
            bad(key, "must be at least 1")
    if v["max_length"] < 2:
        bad("max_length", "must be at least 2 tokens")
    if v["micro_tokens"] is not None and v["micro_tokens"] < 1:
        bad("micro_tokens", "must be at least 1 (or unset)")
    if not 0 <= v["eval_split"] < 1:
        bad("eval_split", "must be a share from 0 (none) to below 1, e.g. 0.1")
    if v["eval_every"] < 0:
        bad("eval_every", "must be 0 (only at the end) or a number of steps")
    if v["max_grad_norm"] < 0 or v["weight_decay"] < 0:
        bad("max_grad_norm" if v["max_grad_norm"] < 0 else "weight_decay", "must not be negative")
    return out


def steps_for(n_examples: int, cfg: TrainConfig) -> tuple[int, int]:
    """(optimiser steps per epoch, total steps) for `n_examples` training examples."""
    per_epoch = math.ceil(math.ceil(n_examples / cfg.batch_size) / cfg.grad_accum)
    return per_epoch, cfg.max_steps or max(1, math.ceil(cfg.epochs * per_epoch))


def eval_every_for(n_train: int, cfg: TrainConfig, evals: int) -> int:
    """The `eval_every` that spreads about `evals` held-out evals over a run.

    >>> eval_every_for(40, TrainConfig(epochs=2, batch_size=8), 4)
    2
    """
    return max(1, steps_for(max(1, n_train), cfg)[1] // max(1, evals))


def micro_batch_tokens(setting: int | None, bf16: bool) -> int:
    """Padded tokens per forward pass: `TrainConfig.micro_tokens`, else 512 in bf16 and 256 in
    fp32 (the same activation memory)."""
    return setting or (512 if bf16 else 256)
