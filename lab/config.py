"""The training settings: one dataclass, one set of defaults, one way to count steps.

The CLI, the Train tab, the experiments queue and the notebooks all start from
`TrainConfig()`; its defaults give a useful run of SmolLM2-135M on a starter set in a few
minutes on a 2-core laptop. Each setting is declared once, here, with its label, help and range
(`setting`, read back by `settings`): the CLI's flags and the Train tab's boxes come from it. `steps_for` is how the trainer, the estimate and the widgets count
optimiser steps, so the three never disagree.

>>> TrainConfig().epochs, TrainConfig().lr
(2.0, 0.0002)
>>> steps_for(40, TrainConfig(epochs=2, batch_size=8))
(5, 10)
>>> problems({"epochs": 0, "lr": -1}, labels=True)
['Epochs must be above 0 (or set a number of steps)', 'Learning rate must be above 0, e.g. 2e-4']
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

SCHEDULES = ("constant", "linear", "cosine")


def setting(default, label: str, help: str, *, low=None, high=None, step=None, panel: bool = False):
    """A `TrainConfig` field with what a person needs to set it: `label` (what the Train tab
    shows), `help` (one line: the CLI's `--help`, the tab's tooltip), the range `low..high` and
    the input `step` the tab offers; `panel`: shown in the Train tab (else command line only)."""
    return field(default=default, metadata={"label": label, "help": help, "low": low, "high": high,
                                            "step": step, "panel": panel})


@dataclass
class TrainConfig:
    epochs: float = setting(2.0, "Epochs", "passes over the training set (unused when max steps is set)",
                            low=0, step=0.5, panel=True)
    max_steps: int | None = setting(None, "Max steps", "optimiser steps; overrides epochs (unset, or 0 "
                                    "in the Train tab: train for the epochs)", low=0, step=1, panel=True)
    lr: float = setting(2e-4, "Learning rate", "peak learning rate (AdamW); 1e-4 to 3e-4 suits a 135M model",
                        low=0, high=1, panel=True)
    schedule: str = setting("cosine", "Schedule", "learning-rate schedule after warmup: constant, linear "
                            "or cosine")
    warmup_ratio: float = setting(0.1, "Warmup", "share of steps spent ramping the lr up from 0", low=0, high=1)
    batch_size: int = setting(8, "Batch size", "examples per optimiser step", low=1, step=1, panel=True)
    grad_accum: int = setting(1, "Gradient accumulation", "batches per optimiser step", low=1, step=1)
    micro_tokens: int | None = setting(None, "Micro-batch tokens", "max padded tokens per forward pass; "
                                       "bigger batches are split (same gradient). Unset: 512 in bf16, "
                                       "256 in fp32, the same activation memory (SmolLM2-135M's run "
                                       "stays under 3 GB)", low=1)
    max_length: int = setting(256, "Max length", "tokens per example; longer ones are cut (with a warning)",
                              low=2, step=16, panel=True)
    weight_decay: float = setting(0.0, "Weight decay", "AdamW weight decay", low=0)
    max_grad_norm: float = setting(1.0, "Gradient clipping", "clip the gradient norm to this (0 = off)", low=0)
    seed: int = setting(0, "Seed", "seed of the data order, the eval split and any randomness: change it "
                        "to see how much of a result is chance", step=1, panel=True)
    completion_only: bool = setting(True, "Completion-only loss", "loss on response tokens only; off = "
                                    "on every token, the prompt too", panel=True)
    include_undesirable: bool = setting(False, "Include undesirable", "also train replies the data marks "
                                        "undesirable (\"label\": false)")
    eval_split: float = setting(0.1, "Eval split", "share of the data held out for eval when no eval set "
                                "is given (0 = none)", low=0, high=1, step=0.05, panel=True)
    eval_every: int = setting(0, "Eval every", "eval every N steps (0 = only at the end)", low=0, step=1)

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


def settings(cls=TrainConfig, *, panel: bool | None = None) -> list[dict]:
    """Each setting of a config class with its metadata: name, type, default, label, help,
    low, high, step, panel (`panel`: only those shown in the Train tab, or only those not).

    >>> [s["name"] for s in settings(panel=True)][:3]
    ['epochs', 'max_steps', 'lr']
    >>> next(s for s in settings() if s["name"] == "lr")["help"]
    'peak learning rate (AdamW); 1e-4 to 3e-4 suits a 135M model'
    """
    out = []
    for f in fields(cls):
        meta = {"label": f.name, "help": f.name, "low": None, "high": None, "step": None, "panel": False,
                **f.metadata}
        if panel is None or meta["panel"] == panel:
            out.append({"name": f.name, "type": f.type if isinstance(f.type, str) else f.type.__name__,
                        "default": f.default, **meta})
    return out


def problems(values: dict, labels: bool = False) -> list[str]:
    """Every problem with these settings at once (empty when they are fine).

    `values`: field -> value (missing fields take the defaults); `labels`: name the settings as
    the Train tab does ("Learning rate"), else by their field names.
    """
    v = {f.name: f.default for f in fields(TrainConfig)} | dict(values)
    label = {s["name"]: s["label"] if labels else s["name"] for s in settings()}
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
