"""A lab session: one base model, its tuned copy, the runs made in between, one job at a time.

The widgets and notebooks drive this object; it knows nothing of them. The base weights are
kept untouched, so "reset to base" is a weight copy, not a reload, and base and tuned replies
can be compared at any time.

One job slot (`lab.jobs.JobSlot`): training, generating, scoring, resetting and the experiments
queue each take it, so two of them never run at once on the same weights.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path

from .analysis import influence
from . import runs
from .jobs import JobSlot
from .config import TrainConfig
from .analysis.forgetting import Meter
from .generate import GenConfig, generate
from .analysis.learned import token_changes
from .models import load_model
from .records import Conversation
from .score import Scores, score, token_probabilities
from .runner import Start, make_run
from .analysis import timeline
from .analysis.timeline import TimelineConfig, reply_key
from .train import Callback, TrainResult


@dataclass
class Run:
    """A training run whose weights the tuned model holds or held: trained in this session,
    or loaded from its run folder (then `result` is None and `card` says how it went)."""

    name: str
    config: TrainConfig
    result: TrainResult | None
    n_examples: int
    out: str | None = None
    replies: dict = field(default_factory=dict)  # prompt -> reply of the model right after this run
    card: dict = field(default_factory=dict)
    timeline: list[dict] = field(default_factory=list)  # `lab.analysis.timeline` points, when recorded
    forgetting: dict | None = None  # the forgetting meter's report after the run, when on


def default_runs_dir() -> Path:
    return Path("runs")


class Session(JobSlot):
    """Base model + tuned model + history of runs, behind one job slot (`lab.jobs`)."""

    def __init__(self, model: str = "default", *, runs_dir: str | Path | None = None):
        self.model_name = model
        self.base, self.tokenizer = load_model(model)
        self.tuned = None                     # a trained copy of base; None until the first run
        self.current: Run | None = None       # the run whose weights `tuned` holds (None: base)
        self.runs: list[Run] = []             # runs trained or loaded in this session, in order
        self.runs_dir = Path(runs_dir) if runs_dir else default_runs_dir()
        JobSlot.__init__(self)
        self._meter: Meter | None = None
        self._base_answers: dict | None = None

    # -- models -----------------------------------------------------------------------------
    @property
    def model(self):
        """The model to train and to show as 'tuned' (the base itself before any run)."""
        return self.tuned if self.tuned is not None else self.base

    def reset_to_base(self) -> None:
        """Forget all training: the tuned model becomes a fresh copy of the base weights."""
        with self.job("resetting the tuned model to the base"):
            if self.tuned is not None:
                self.tuned.load_state_dict(self.base.state_dict())
            self.current = None
        self._changed()

    def load_run(self, run: str | Path) -> dict:
        """Make a stored run's model the tuned model (a run folder, or a run's name in the runs
        folder); return its card. The base model stays as it is."""
        path = Path(run)
        if not (path / runs.CONFIG).is_file() and (self.runs_dir / str(run)).is_dir():
            path = self.runs_dir / str(run)
        card = runs.read_card(path)
        if card is None:
            raise FileNotFoundError(f"{path} is not a run folder (no {runs.CONFIG}); see `sft-lab runs`")
        model_dir = path / runs.MODEL
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(f"run {card['name']} has no saved model ({model_dir} is missing): "
                                    f"it is {card['status']}; train it again")
        if card.get("model") not in (None, self.model_name, self.base.config.name_or_path):
            raise ValueError(f"run {card['name']} tuned '{card.get('model')}', but this session's base "
                             f"model is '{self.model_name}'; load that model first")
        with self.job(f"loading run {card['name']}"):
            weights, _ = load_model(str(model_dir), device=next(self.base.parameters()).device)
            if self.tuned is None:
                self.tuned = copy.deepcopy(self.base)
            self.tuned.load_state_dict(weights.state_dict())
            del weights
            known = [r for r in self.runs if r.out == str(path)]
            self.current = known[0] if known else Run(
                name=card["name"], config=TrainConfig.from_json(card.get("config") or {}), result=None,
                n_examples=card.get("n_examples") or 0, out=str(path),
                replies=runs.read_replies(path), card=card)
            if not known:
                self.runs.append(self.current)
        self._changed()
        return card

    def stored_runs(self) -> list[dict]:
        """The cards of the runs in this session's runs folder (earlier kernels' too)."""
        return runs.list_runs(self.runs_dir)

    # -- training ---------------------------------------------------------------------------
    def train(self, data: list[Conversation], cfg: TrainConfig | None = None, *,
              eval_data: list[Conversation] | None = None, callbacks: list[Callback] = (),
              save: bool = True, name: str | None = None, probes=(),
              timeline: TimelineConfig | None = None, on_point=None) -> Run | None:
        """Train the tuned model (continuing from its current weights) and record the run.

        `timeline`: record a timeline (`lab.analysis.timeline`): the `probes` (texts, or Conversations
        with reference answers) answered and scored at each point, the forgetting meter when
        `timeline.retention`; `on_point` hears each point. Returns None when the run was
        stopped before its first step (nothing changed)."""
        with self.job(f"training{f' {name}' if name else ''}"):
            if self.tuned is None:
                self.tuned = copy.deepcopy(self.base)
            name = name or time.strftime("run-%Y%m%d-%H%M%S")
            out = runs.fresh_dir(self.runs_dir, name) if save else None
            cfg = cfg or TrainConfig()
            fresh = self.current is None  # from the base weights: step 0 is the base model's
            with_meter = timeline is not None and timeline.retention and timeline.on
            made = make_run(self.tuned, self.tokenizer, data, cfg, out_dir=out, eval_data=eval_data,
                            probes=probes, timeline=timeline, callbacks=callbacks, stop=self._stop,
                            on_point=on_point, meter=self.meter() if with_meter else None,
                            start=Start(name=self.model_name if fresh else None,
                                        copy=self.base if fresh else None, base=self.base,
                                        answers=self._base_answers))
            self._base_answers = made.base_answers or self._base_answers  # decoded once per session
            result = made.result
            if not result.steps:
                return None
            run = Run(name=out.name if out else name, config=cfg, result=result, n_examples=len(data),
                      out=str(out) if out else None, timeline=made.timeline, forgetting=made.forgetting,
                      card=made.card)
            self.current = run
            self.runs.append(run)
        self._changed()
        return run

    def meter(self) -> Meter:
        """The forgetting meter for this session's tokenizer (encoded once)."""
        if self._meter is None:
            self._meter = Meter(self.tokenizer)
        return self._meter

    def record_replies(self, replies: dict[str, str]) -> None:
        """Remember the tuned model's replies as those of the run it holds (kept in that run's
        folder too, so they show as an earlier run's column after a restart)."""
        if self.current is None:
            return
        self.current.replies.update(replies)
        if self.current.out:
            runs.record_replies(self.current.out, replies)

    def earlier_replies(self, prompts: list[str]) -> dict[str, dict[str, str]]:
        """Run name -> {prompt: reply} of every run other than the one the tuned model holds
        (this session's and those stored in the runs folder) that answered any of `prompts`."""
        out: dict[str, dict[str, str]] = {}
        seen = set()
        for run in self.runs:
            seen.add(run.out)
            if run is not self.current and any(p in run.replies for p in prompts):
                out[run.name] = run.replies
        for card in self.stored_runs():
            if card["path"] in seen or (self.current and self.current.out == card["path"]):
                continue
            replies = runs.read_replies(card["path"])
            if any(p in replies for p in prompts):
                out[card["name"]] = replies
        return out

    # -- generation and scoring -------------------------------------------------------------
    def reply(self, prompts: list[str | Conversation], *, tuned: bool = True,
              cfg: GenConfig | None = None, on_token=None) -> list[str]:
        """The tuned (or base) model's reply to each prompt. Replies a timeline already decoded
        with the same settings (its first and last points, `lab.analysis.timeline`) are handed
        out as they are, in one `on_token` call each, and not decoded again."""
        cfg = cfg or GenConfig()
        with self.job(f"generating {len(prompts)} replies"):
            known = self._known_replies(tuned, cfg)
            keys = [reply_key(p) for p in prompts]
            out = [known.get(k, "") for k in keys]
            todo = [i for i, k in enumerate(keys) if k not in known]
            if on_token is not None:
                for i, k in enumerate(keys):
                    if known.get(k):
                        on_token(i, known[k])
            if todo:
                model = self.model if tuned else self.base
                sub = (lambda j, piece: on_token(todo[j], piece)) if on_token is not None else None
                for i, r in zip(todo, generate(model, self.tokenizer, [prompts[i] for i in todo], cfg,
                                               on_token=sub)):
                    out[i] = r
            return out

    def _known_replies(self, tuned: bool, cfg: GenConfig) -> dict[str, str]:
        """{prompt key: reply} that a timeline decoded greedily with `cfg`'s length: the last
        point of the run the tuned model holds (when it reached its last step), or, for the
        base weights, step 0 of any run of this session that started from them."""
        if cfg.temperature > 0:
            return {}
        run = self.current
        if tuned and run is not None:
            last = run.timeline[-1] if run.timeline else None
            if run.result is None or last is None or last["step"] != run.result.steps:
                return {}
            return timeline.full_replies(last, cfg.max_new_tokens)
        known: dict[str, str] = {}
        for r in self.runs:
            if r.timeline and r.timeline[0].get("base"):
                known.update(timeline.full_replies(r.timeline[0], cfg.max_new_tokens))
        return known

    def compare(self, prompts: list[str | Conversation], cfg: GenConfig | None = None) -> list[dict]:
        """Base and tuned replies to each prompt, decoded with the same settings and seed."""
        with self.job(f"comparing {len(prompts)} prompts"):
            base = self.reply(prompts, tuned=False, cfg=cfg)
            tuned = self.reply(prompts, tuned=True, cfg=cfg)
        text = [p if isinstance(p, str) else p.prompt for p in prompts]
        return [{"prompt": p, "base": b, "tuned": t} for p, b, t in zip(text, base, tuned)]

    def score(self, data: list[Conversation], *, tuned: bool = True, max_length: int = 512) -> Scores:
        with self.job(f"scoring {len(data)} examples"):
            return score(self.model if tuned else self.base, self.tokenizer, data, max_length)

    def token_probabilities(self, conv: Conversation, *, tuned: bool = True) -> list[tuple[str, float]]:
        with self.job("scoring a reference answer"):
            return token_probabilities(self.model if tuned else self.base, self.tokenizer, conv)

    def which_examples(self, prompt: str | Conversation, reply: str, *, top: int = 5,
                       on_progress=None) -> dict:
        """Which training examples of the run the tuned model holds pushed `reply` to `prompt`
        up or down (`lab.analysis.influence.explain`; recorded in the run's folder)."""
        with self.job("ranking training examples for a reply"):
            run = self.current
            if run is None or self.tuned is None:
                raise ValueError("the tuned model is the base model: train (or load a run), then ask "
                                 "which examples taught a reply")
            if not run.out:
                raise ValueError(f"run {run.name} was not saved to a folder, so its training examples are "
                                 "not on disk to rank; train with saving on")
            return influence.explain(run.out, prompt, reply, top, model=self.tuned, tokenizer=self.tokenizer,
                                     on_progress=on_progress)

    def learned(self, convs: list[Conversation]) -> list[list[dict]]:
        """Per example per response token, how the tuning changed its log-probability
        (`lab.analysis.learned.token_changes`, base vs tuned): what "What changed?" summarises."""
        with self.job("explaining what changed"):
            return token_changes(self.base, self.model, self.tokenizer, convs)[1]

    def tuned_differs(self) -> bool:
        """True when the tuned model is not (any longer) a copy of the base weights."""
        if self.tuned is None:
            return False
        import torch

        return any(not torch.equal(a, b) for a, b in zip(self.tuned.parameters(), self.base.parameters()))
