"""TrainPanel: choose a model and hyperparameters, see the cost, train live, stop, reset.

Training runs in a background thread (`Session.train` with a callback), so the notebook stays
responsive; the callback pushes progress and the loss curve to the browser at most a few
times a second. Failures (bad data, a model that cannot be loaded) appear in the panel.
"""
from __future__ import annotations

import threading

import anywidget
import plotly.graph_objects as go
import traitlets as t

from lab import plots
from lab.estimate import describe, duration, estimate, steps_for
from lab.generate import GenConfig
from lab.records import Conversation
from lab.session import Run, Session
from lab.train import Callback, StepInfo, TrainConfig, TrainResult

from ._common import CSS, Throttle, error_text, esm

SAMPLE_PROBES = 2        # probe prompts answered after each eval when sample replies are on
SAMPLE_TOKENS = 48       # reply length of those samples: short, training waits for them
EVALS_PER_RUN = 4        # held-out evals spread over a run (when there is an eval split)


class TrainPanel(anywidget.AnyWidget):
    """Fine-tune the session's model on `examples`; `.start()`, `.wait()`, `.stop()` from code."""

    _esm = esm("train_panel.js")
    _css = CSS

    model_name = t.Unicode("default", help="model to train: default, tiny-random, a hub id "
                           "or a local folder").tag(sync=True)
    loaded_model = t.Unicode("", help="the model the session holds ('' = none loaded yet)").tag(sync=True)
    model_info = t.Unicode("", help="size and device of the loaded model").tag(sync=True)
    epochs = t.Float(2.0, help="passes over the training examples").tag(sync=True)
    lr = t.Float(2e-4, help="peak learning rate (AdamW, warmup then cosine decay)").tag(sync=True)
    batch_size = t.Int(8, help="examples per optimiser step").tag(sync=True)
    max_length = t.Int(256, help="tokens per example; longer ones are cut").tag(sync=True)
    completion_only = t.Bool(True, help="loss on response tokens only (else on every token)").tag(sync=True)
    eval_split = t.Float(0.1, help="share of the examples held out to measure eval loss").tag(sync=True)
    max_steps = t.Int(0, help="stop after this many optimiser steps (0 = use epochs)").tag(sync=True)
    sample_replies = t.Bool(False, help="after each eval, let the model answer a few probe "
                            "prompts (slows training a little)").tag(sync=True)
    n_examples = t.Int(0, help="examples the next run gets (before the eval split)").tag(sync=True)
    estimate = t.Dict(help="the next run's cost: tokens, steps, seconds, memory_gb, text").tag(sync=True)
    state = t.Unicode("idle", help="idle | loading | training | stopping | done | stopped | "
                      "error").tag(sync=True)
    progress = t.Dict(help="step, total, loss, tokens_per_second, eta, elapsed of the "
                      "running job").tag(sync=True)
    samples = t.List(t.Dict(), help="probe replies during training: {step, prompt, reply}").tag(sync=True)
    message = t.Unicode("", help="what just happened, for the status line").tag(sync=True)
    error = t.Unicode("", help="what went wrong and how to fix it ('' = nothing)").tag(sync=True)
    load_clicks = t.Int(0, help="incremented by the 'Load model' button").tag(sync=True)
    start_clicks = t.Int(0, help="incremented by the 'Start' button").tag(sync=True)
    stop_clicks = t.Int(0, help="incremented by the 'Stop' button").tag(sync=True)
    reset_clicks = t.Int(0, help="incremented by the 'Reset to base' button").tag(sync=True)
    chart = anywidget.WidgetTrait().tag(sync=True)
    session = t.Instance(Session, allow_none=True, help="the lab session trained (not synced)")

    def __init__(self, session: Session | None = None, examples=(), *, model: str = "default",
                 probes=(), runs_dir=None, save: bool = True, **hyperparameters):
        """`session`: reuse a loaded model (else `model` is loaded at the first Load/Start);
        `save`: write a run folder per run under `runs_dir`."""
        super().__init__(model_name=session.model_name if session else model, **hyperparameters)
        self._examples: list[Conversation] = list(examples)
        self._probes: list[str] = []
        self._runs_dir, self._save = runs_dir, save
        self._thread: threading.Thread | None = None
        self.run: Run | None = None  # the last finished (or stopped) run
        self.chart = go.FigureWidget(plots.loss_figure())
        self.observe(self._on_session, "session")
        self.observe(lambda _: self.refresh_estimate(),
                     ["epochs", "batch_size", "max_length", "completion_only", "eval_split", "max_steps"])
        self.observe(lambda _: self._act(self.load_model), "load_clicks")
        self.observe(lambda _: self._act(self.start), "start_clicks")
        self.observe(lambda _: self._act(self.stop), "stop_clicks")
        self.observe(lambda _: self._act(self.reset), "reset_clicks")
        self.session = session
        self.set_probes(probes)
        self.refresh_estimate()

    # -- Python API -------------------------------------------------------------------------
    def set_examples(self, examples) -> None:
        """The training examples of the next run (e.g. `DatasetBuilder.examples`)."""
        self._examples = list(examples)
        self.refresh_estimate()

    def set_probes(self, probes) -> None:
        """Prompts (text or Conversations) the model answers during training when
        `sample_replies` is on."""
        self._probes = [p if isinstance(p, str) else p.prompt for p in probes]

    def config(self) -> TrainConfig:
        """The TrainConfig the panel's settings stand for (ValueError if one is out of range)."""
        if self.epochs <= 0 and not self.max_steps:
            raise ValueError("epochs must be above 0 (or set max_steps)")
        if self.lr <= 0:
            raise ValueError("the learning rate must be above 0, e.g. 2e-4")
        cfg = TrainConfig(epochs=self.epochs, max_steps=self.max_steps or None, lr=self.lr,
                          batch_size=self.batch_size, max_length=self.max_length,
                          completion_only=self.completion_only, eval_split=self.eval_split)
        if cfg.eval_split > 0:
            n_train = len(self._examples) - max(1, round(cfg.eval_split * len(self._examples)))
            cfg.eval_every = max(1, steps_for(max(1, n_train), cfg)[1] // EVALS_PER_RUN)
        return cfg

    def refresh_estimate(self) -> None:
        """Recompute the pre-launch estimate (tokens, steps, time, memory on this machine)."""
        self.n_examples = len(self._examples)
        if self.session is None:
            self.estimate = {"text": "Load the model to see an estimate."}
            return
        last = self.session.runs[-1].result if self.session.runs else None
        try:
            est = estimate(self._examples, self.session.tokenizer, self.config(), self.session.model,
                           tokens_per_second=last.tokens_per_second if last else None)
        except Exception as err:  # a bad setting or example: the estimate line says so
            self.estimate = {"text": f"no estimate: {error_text(err)}"}
            return
        self.estimate = {**est, "text": describe(est)}

    def load_model(self, name: str | None = None) -> None:
        """Load `name` (default: the panel's model box) in the background, replacing the session."""
        name = (name or self.model_name).strip()
        self.model_name = name
        self._launch(self._load, name)

    def start(self) -> None:
        """Start training in the background (loading the model first if it changed)."""
        if not self._examples:
            raise ValueError("no examples to train on: load a starter or add examples in the "
                             "dataset builder (or call set_examples)")
        cfg = self.config()
        self._launch(self._train, cfg, list(self._examples))

    def stop(self) -> None:
        """End the run after the current step; the model keeps what it has learned so far."""
        if self.state == "training" and self.session is not None:
            self.state = "stopping"
            self.session.stop()
            self.message = "Stopping after the current step…"

    def reset(self) -> None:
        """Make the tuned model the base model again (runs stay in the session's history)."""
        if self.busy:
            raise RuntimeError("training is running; press Stop first, then Reset to base")
        if self.session is not None:
            self.session.reset_to_base()
        self.message = "Reset: the tuned model is the base model again."
        self.state = "idle"

    def wait(self, timeout: float | None = None) -> Run | None:
        """Block until the background job ends; return the run, or raise if it failed."""
        if self._thread is not None:
            self._thread.join(timeout)
        if self.state == "error":
            raise RuntimeError(self.error)
        return self.run

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- background jobs --------------------------------------------------------------------
    def _act(self, action) -> None:
        """A button press: run it, and show a failure in the panel rather than a log."""
        try:
            self.error = ""
            action()
        except Exception as err:  # any failure of a user action belongs in the panel
            self.error = error_text(err)

    def _launch(self, job, *args) -> None:
        if self.busy:
            raise RuntimeError("the panel is busy (loading or training); wait, or press Stop")
        self.error = ""
        self._thread = threading.Thread(target=self._guarded, args=(job, *args), daemon=True,
                                        name="sftlab-train")
        self._thread.start()

    def _guarded(self, job, *args) -> None:
        try:
            job(*args)
        except Exception as err:  # shown in the panel; `wait()` raises it for scripts
            self.error = error_text(err)
            self.state = "error"

    def _load(self, name: str) -> None:
        self.state, self.message = "loading", f"Loading model '{name}'…"
        self.session = Session(name, runs_dir=self._runs_dir)
        self.state, self.message = "idle", f"Loaded '{name}'."

    def _train(self, cfg: TrainConfig, data: list[Conversation]) -> None:
        if self.session is None or self.model_name.strip() != self.session.model_name:
            self._load(self.model_name.strip())
        self.state, self.message, self.samples = "training", "Training…", []
        self.run = self.session.train(data, cfg, callbacks=[_Live(self)], save=self._save)
        self.refresh_estimate()  # now from the speed this run measured
        r = self.run.result
        ev = f", eval loss {r.eval_loss:.3f}" if r.eval_loss is not None else ""
        where = f" Saved in {self.run.out}." if self.run.out else ""
        if r.stopped:
            self.state = "stopped"
            self.message = (f"Stopped at step {r.steps} of {r.total_steps}; the model keeps what it "
                            f"learned. Loss {r.final_loss:.3f}{ev}.{where}")
        else:
            self.state = "done"
            self.message = (f"Run {self.run.name} finished: {r.steps} steps in {duration(r.seconds)} "
                            f"({r.tokens_per_second:.0f} tokens/s), final loss {r.final_loss:.3f}{ev}.{where}")

    def _on_session(self, change) -> None:
        s = change["new"]
        self.loaded_model = s.model_name if s else ""
        if s is not None:
            n = sum(p.numel() for p in s.base.parameters())
            self.model_info = f"{n / 1e6:.1f}M parameters on {next(s.base.parameters()).device}"
        self.refresh_estimate()

    # -- called by the training thread ------------------------------------------------------
    def _show(self, history: list[dict], info: StepInfo | None) -> None:
        """Push progress and the loss curve to the browser."""
        if info is not None:
            self.progress = {"step": info.step, "total": info.total_steps, "loss": info.loss,
                             "tokens_per_second": info.tokens_per_second, "eta": info.eta,
                             "elapsed": info.elapsed, "epoch": info.epoch}
        s = plots.loss_series(history)
        with self.chart.batch_update():
            self.chart.data[0].x, self.chart.data[0].y = s["train_x"], s["train_y"]
            self.chart.data[1].x, self.chart.data[1].y = s["eval_x"], s["eval_y"]

    def _sample(self, step: int) -> None:
        """Answer a few probe prompts with the model as it is now (greedy, short)."""
        prompts = self._probes[:SAMPLE_PROBES]
        replies = self.session.reply(prompts, cfg=GenConfig(max_new_tokens=SAMPLE_TOKENS))
        self.samples = self.samples + [{"step": step, "prompt": p, "reply": r}
                                       for p, r in zip(prompts, replies)]


class _Live(Callback):
    """Forwards the training loop's progress to the panel, at most ~4 times a second."""

    def __init__(self, panel: TrainPanel):
        self.panel, self.history, self.last = panel, [], None
        self.throttle = Throttle(0.25)

    def on_start(self, total_steps: int, n_examples: int) -> None:
        self.panel.progress = {"step": 0, "total": total_steps}
        plots.sync_figure(self.panel.chart, plots.loss_figure([], total_steps))

    def on_step(self, info: StepInfo) -> None:
        self.history.append({"step": info.step, "loss": info.loss})
        self.last = info
        if self.throttle.ready():
            self.panel._show(self.history, info)

    def on_eval(self, step: int, eval_loss: float) -> None:
        self.history.append({"step": step, "eval_loss": eval_loss})
        self.panel._show(self.history, self.last)
        if self.panel.sample_replies and self.panel._probes:
            self.panel._sample(step)

    def on_end(self, result: TrainResult) -> None:
        self.panel._show(result.history, self.last)
