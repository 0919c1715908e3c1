"""What-if experiments: a set of runs over dataset and config variants, queued and stored.

Every run starts from the same base weights, trains on its variant, is scored on the same
held-out set and answers the same probe prompts. Its folder (`runs/<experiment>/<variant>/`)
holds the trainer's run folder; `run.json` in it is the run card: dataset hash, config, library
versions, metrics, probe replies and status. The history is read back from those cards, so it
survives a kernel restart.
"""
from __future__ import annotations

import copy
import threading
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from . import variants as V
from .. import runs
from ..generate import GenConfig
from ..records import Conversation
from ..runner import Start, make_run
from ..analysis.timeline import TimelineConfig
from ..train import Callback, StepInfo, TrainConfig

TRANSFORMS: dict[str, Callable] = {
    "subsample": V.subsample,                 # arg: number of examples
    "shuffle_responses": V.shuffle_responses,  # arg: fraction with a wrong response
    "corrupt_responses": V.corrupt_responses,  # arg: fraction with garbled responses
    "duplicate": V.duplicate,                 # arg: fraction repeated
    "drop_tag": V.drop_tag,                   # arg: the category to drop
}


@dataclass
class Variant:
    """One what-if: a data transform (or none) plus training-config overrides."""

    name: str
    transform: str | None = None       # a key of TRANSFORMS, or None for the data as it is
    arg: float | int | str | None = None
    config: dict = field(default_factory=dict)  # TrainConfig overrides, e.g. {"lr": 1e-4}
    seed: int = 0                      # of the data transform (and, repeated, of training)
    group: str | None = None           # the variant this one repeats with another seed

    def __post_init__(self):
        if self.transform is not None and self.transform not in TRANSFORMS:
            raise ValueError(f"unknown transform {self.transform!r}; choose from {', '.join(TRANSFORMS)}")
        unknown = set(self.config) - set(TrainConfig.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields in variant {self.name!r}: {', '.join(sorted(unknown))}")

    def apply(self, data: list[Conversation]) -> list[Conversation]:
        if self.transform is None:
            return list(data)
        fn = TRANSFORMS[self.transform]
        if self.transform == "drop_tag":
            return fn(data, self.arg)
        return fn(data, self.arg, seed=self.seed)

    def train_config(self, base: TrainConfig) -> TrainConfig:
        return replace(base, **self.config)


# -- ready-made sweeps ---------------------------------------------------------------------
def size_sweep(sizes: list[int]) -> list[Variant]:
    return [Variant(f"n={n}", "subsample", n) for n in sizes]


def noise_sweep(fractions: list[float], kind: str = "shuffle_responses") -> list[Variant]:
    return [Variant(f"{kind.split('_')[0]}={f:g}", kind, f) for f in fractions]


def lr_sweep(lrs: list[float]) -> list[Variant]:
    return [Variant(f"lr={lr:g}", config={"lr": lr}) for lr in lrs]


def size_ladder(n_examples: int, start: int = 4) -> list[Variant]:
    """How many examples do I need: subsamples of 4, 8, 16, ... examples, then all of them.

    >>> [v.name for v in size_ladder(45)]
    ['n=4', 'n=8', 'n=16', 'n=32', 'n=45']
    """
    sizes, n = [], start
    while n < n_examples:
        sizes.append(n)
        n *= 2
    return size_sweep(sizes + [n_examples])


def with_seeds(variants: list[Variant], seeds: int) -> list[Variant]:
    """Each variant repeated over `seeds` seeds (data transform and training order), so that a
    difference between variants can be told from noise; one seed leaves them as they are.

    >>> [(v.name, v.group, v.config) for v in with_seeds([Variant("n=4", "subsample", 4)], 2)]
    [('n=4 s0', 'n=4', {'seed': 0}), ('n=4 s1', 'n=4', {'seed': 1})]
    """
    if seeds < 1:
        raise ValueError("seeds must be at least 1")
    if seeds == 1:
        return list(variants)
    return [replace(v, name=f"{v.name} s{s}", seed=s, group=v.name, config={**v.config, "seed": s})
            for v in variants for s in range(seeds)]


def epoch_sweep(epochs: list[float]) -> list[Variant]:
    return [Variant(f"epochs={e:g}", config={"epochs": e}) for e in epochs]


def loss_ablation() -> list[Variant]:
    return [Variant("completion-only"), Variant("full-sequence", config={"completion_only": False})]


def run_variant(base_model, tokenizer, data: list[Conversation], variant: Variant, *,
                config: TrainConfig, out_dir: Path, experiment: str,
                eval_data: list[Conversation] = (), probes: list[str] = (),
                gen: GenConfig | None = None, stop: threading.Event | None = None,
                callbacks: list[Callback] = (), base_name: str | None = None,
                timeline: TimelineConfig | None = None) -> dict:
    """Train a fresh copy of the base model on one variant through the run path
    (`lab.runner.make_run`); return its run card (a failed run's card says why).

    With `eval_data`, every variant is scored on that one held-out set (its own eval split
    is off, so each trains on all of its data); `probes` are answered after the run."""
    card = {"experiment": experiment, "variant": asdict(variant)}
    model = None
    try:
        variant_data = variant.apply(data)
        cfg = variant.train_config(config)
        card.update(dataset_sha256=runs.dataset_sha256(variant_data), n_examples=len(variant_data),
                    config=cfg.to_json())
        model = copy.deepcopy(base_model)
        made = make_run(model, tokenizer, variant_data, cfg, out_dir=out_dir, held_out=eval_data,
                        probes=probes, reply_probes=gen or GenConfig(max_new_tokens=64),
                        timeline=timeline, start=Start(name=base_name, copy=base_model, base=base_model),
                        callbacks=callbacks, stop=stop, card={k: card[k] for k in ("experiment", "variant")})
        if not made.result.steps:
            return {**card, "status": "cancelled", "path": str(out_dir)}
        return {**made.card, "path": str(out_dir)}
    except Exception as err:  # one failed run must not sink the queue: record it and go on
        card.update(status="failed", error=f"{type(err).__name__}: {err}",
                    traceback=traceback.format_exc(limit=5))
    finally:
        del model
    out_dir.mkdir(parents=True, exist_ok=True)
    return {**runs.finish(out_dir, card), "path": str(out_dir)}


class _Relay(Callback):
    """Forward a run's steps to queue listeners, tagged with the run's name."""

    def __init__(self, name: str, on_step):
        self.name, self.on_step_fn = name, on_step

    def on_step(self, info: StepInfo) -> None:
        self.on_step_fn(self.name, info)


@dataclass
class Job:
    experiment: str
    variant: Variant
    data: list[Conversation]
    out_dir: Path
    status: str = "queued"   # queued | running | done | stopped | failed | cancelled
    card: dict | None = None


class Queue:
    """Runs queued variants one after another in a background thread that holds the session's
    job slot (`lab.session.Session.start_job`): while the queue runs, nothing else trains.

    Every run trains a fresh copy of `session.base`; the session's tuned model is untouched.
    `on_step(run_name, StepInfo)` and `on_run_end(run_name, card)` are called from that thread;
    `error` says why the last start failed, if it did.
    """

    def __init__(self, session, *, runs_dir: str | Path | None = None,
                 config: TrainConfig | None = None, eval_data: list[Conversation] = (),
                 probes: list[str] = (), gen: GenConfig | None = None,
                 timeline: TimelineConfig | None = None, on_step=None, on_run_end=None):
        self.session = session
        self.runs_dir = Path(runs_dir) if runs_dir is not None else Path(session.runs_dir)
        self.config = config or TrainConfig()
        self.eval_data, self.probes = list(eval_data), list(probes)
        self.gen = gen or GenConfig(max_new_tokens=64)
        self.timeline = timeline  # each run's timeline (None: none)
        self.on_step, self.on_run_end = on_step, on_run_end
        self.jobs: list[Job] = []
        self._cancel = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, experiment: str, data: list[Conversation], variants: list[Variant]) -> list[Job]:
        names = [v.name for v in variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must be unique within an experiment")
        new = [Job(experiment, v, list(data), self.runs_dir / runs.slug(experiment) / runs.slug(v.name))
               for v in variants]
        with self._lock:
            self.jobs += new
        return new

    def start(self, by=None) -> None:
        """Start working through the queue (no-op if already running; `Busy` if the session
        is doing something else; `by`: see `Session.job`)."""
        if self.running:
            return
        self._cancel = False
        self._thread = self.session.start_job("the experiments queue (Experiments tab)", self._work,
                                              name="sftlab-queue", by=by)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """End the current run at its next step (its model is saved) and cancel the rest."""
        self._cancel = True
        if self.running:
            self.session.stop()

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _next(self) -> Job | None:
        with self._lock:
            return next((j for j in self.jobs if j.status == "queued"), None)

    def _work(self) -> None:
        while (job := self._next()) is not None:
            if self._cancel:
                for j in self.jobs:
                    if j.status == "queued":
                        j.status = "cancelled"
                break
            job.status = "running"
            name = f"{job.experiment}/{job.variant.name}"
            left = sum(j.status == "queued" for j in self.jobs)
            self.session.describe(f"the experiments queue (Experiments tab): run {name}, {left} more queued")
            relay = [_Relay(name, self.on_step)] if self.on_step else []
            job.card = run_variant(self.session.base, self.session.tokenizer, job.data, job.variant,
                                   config=self.config, out_dir=job.out_dir, experiment=job.experiment,
                                   eval_data=self.eval_data, probes=self.probes, gen=self.gen,
                                   stop=self.session.stop_event, callbacks=relay,
                                   base_name=self.session.model_name, timeline=self.timeline)
            job.status = job.card["status"]
            if self.on_run_end:
                self.on_run_end(name, job.card)


def load_cards(runs_dir: str | Path = "runs") -> list[dict]:
    """The what-if run cards under `runs_dir` (interrupted ones included), oldest first."""
    return [c for c in runs.list_runs(runs_dir) if "experiment" in c]
