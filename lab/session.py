"""A lab session: one base model, its tuned copy, and the runs made in between.

The widgets and notebooks drive this object; it knows nothing of them. The base weights are
kept untouched, so "reset to base" is a weight copy, not a reload, and base and tuned replies
can be compared at any time.
"""
from __future__ import annotations

import copy
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .generate import GenConfig, generate
from .models import load_model
from .records import Conversation
from .score import Scores, score
from .train import Callback, TrainConfig, TrainResult, train


@dataclass
class Run:
    """One finished (or stopped) training run of this session."""

    name: str
    config: TrainConfig
    result: TrainResult
    n_examples: int
    out: str | None = None
    replies: dict = field(default_factory=dict)  # prompt -> reply of the model right after this run


def default_runs_dir() -> Path:
    return Path("runs")


class Session:
    """Base model + tuned model + history of runs. Thread-safe for one trainer at a time."""

    def __init__(self, model: str = "default", *, runs_dir: str | Path | None = None):
        self.model_name = model
        self.base, self.tokenizer = load_model(model)
        self.tuned = None                     # a trained copy of base; None until the first run
        self.runs: list[Run] = []
        self.runs_dir = Path(runs_dir) if runs_dir else default_runs_dir()
        self._stop = threading.Event()
        self._lock = threading.Lock()

    # -- models -----------------------------------------------------------------------------
    @property
    def model(self):
        """The model to train and to show as 'tuned' (the base itself before any run)."""
        return self.tuned if self.tuned is not None else self.base

    def reset_to_base(self) -> None:
        """Forget all training: the tuned model becomes a fresh copy of the base weights."""
        if self.tuned is not None:
            self.tuned.load_state_dict(self.base.state_dict())

    # -- training ---------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def stop(self) -> None:
        """Ask a running `train` to end after its current step (the model stays usable)."""
        self._stop.set()

    def train(self, data: list[Conversation], cfg: TrainConfig | None = None, *,
              eval_data: list[Conversation] | None = None, callbacks: list[Callback] = (),
              save: bool = True, name: str | None = None, probes: list[str] = ()) -> Run:
        """Train the tuned model (continuing from its current weights) and record the run."""
        if not self._lock.acquire(blocking=False):
            raise RuntimeError("a training run is already in progress in this session; stop it first")
        try:
            self._stop.clear()
            if self.tuned is None:
                self.tuned = copy.deepcopy(self.base)
            name = name or time.strftime("run-%Y%m%d-%H%M%S")
            out = self.runs_dir / name if save else None
            cfg = cfg or TrainConfig()
            result = train(self.tuned, self.tokenizer, data, cfg, eval_data=eval_data,
                           callbacks=callbacks, stop=self._stop, out_dir=out)
            run = Run(name=name, config=cfg, result=result, n_examples=len(data),
                      out=str(out) if out else None)
            if probes:
                run.replies = dict(zip(probes, self.reply(list(probes), tuned=True)))
            self.runs.append(run)
            return run
        finally:
            self._lock.release()

    # -- generation and scoring -------------------------------------------------------------
    def reply(self, prompts: list[str | Conversation], *, tuned: bool = True,
              cfg: GenConfig | None = None, on_token=None) -> list[str]:
        model = self.model if tuned else self.base
        return generate(model, self.tokenizer, prompts, cfg, on_token=on_token)

    def compare(self, prompts: list[str | Conversation], cfg: GenConfig | None = None) -> list[dict]:
        """Base and tuned replies to each prompt, decoded with the same settings and seed."""
        base = self.reply(prompts, tuned=False, cfg=cfg)
        tuned = self.reply(prompts, tuned=True, cfg=cfg)
        text = [p if isinstance(p, str) else p.prompt for p in prompts]
        return [{"prompt": p, "base": b, "tuned": t} for p, b, t in zip(text, base, tuned)]

    def score(self, data: list[Conversation], *, tuned: bool = True, max_length: int = 512) -> Scores:
        return score(self.model if tuned else self.base, self.tokenizer, data, max_length)

    def history(self) -> list[dict]:
        """One row per run: settings and outcome, for tables."""
        return [{"run": r.name, "examples": r.n_examples, **{k: v for k, v in asdict(r.config).items()
                 if k in ("epochs", "max_steps", "lr", "batch_size", "completion_only")},
                 "steps": r.result.steps, "final_loss": r.result.final_loss,
                 "eval_loss": r.result.eval_loss, "stopped": r.result.stopped} for r in self.runs]
