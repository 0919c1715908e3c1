"""TrainPanel: choose a model and hyperparameters, see the cost, train live, stop, reset, and
reload earlier runs.

Training runs in a background thread that holds the session's job slot (`Session.start_job`),
so the notebook stays responsive and nothing else trains or generates meanwhile; a callback
pushes progress and the loss curve to the browser a few times a second. Failures (bad data,
bad settings, a model that cannot be loaded, another job running) appear in the panel.

The runs folder is the panel's memory: after a kernel restart it shows the last run's curve
and summary, and any stored run can be loaded back as the tuned model.
"""
from __future__ import annotations

from pathlib import Path

import anywidget
import traitlets as t

from lab.present import plots
from lab import runs
from lab.analysis import timeline
from lab.present.report import report
from lab.config import TrainConfig, eval_every_for, problems, settings
from lab.analysis.estimate import describe, duration, estimate
from lab.generate import GenConfig
from lab.records import Conversation
from lab.session import Run, Session
from lab.analysis.timeline import TimelineConfig
from lab.train import Callback, StepInfo, TrainResult, split_eval

from .chart import Chart
from ._common import CSS, act, BusyLine, Job, Throttle, answer_while_cells_run, error_text, esm, on_main

SAMPLE_PROBES = 2        # probe prompts answered after each eval when sample replies are on
SAMPLE_TOKENS = 48       # reply length of those samples: short, training waits for them
EVALS_PER_RUN = 4        # held-out evals spread over a run (when there is an eval split)
LONG_RUN_S = 15 * 60     # a run estimated to take longer asks for a second press of Start
MEASURED_STEPS = 3       # a run this long or longer measures the machine's speed for the estimate
# The panel's own settings (the run's timeline and samples), declared as TrainConfig's are.
PANEL_SETTINGS = [
    {"name": "timeline", "type": "bool", "default": True, "label": "Timeline",
     "help": "answer and score the probes at step 0, at the last step and at a few steps between, "
             "to watch the replies change as the run goes", "low": None, "high": None, "step": None},
    {"name": "timeline_points", "type": "int", "default": 0, "label": "Timeline points",
     "help": "0 = as many as fit a quarter of the run's training time (step 0 and the last step "
             "always); a number: that many, evenly spaced", "low": 0, "high": None, "step": 1},
    {"name": "forgetting_meter", "type": "bool", "default": TimelineConfig.retention, "label": "Forgetting meter",
     "help": "at each timeline point, the NLL of a general retention set; after the run, its 30 "
             "questions answered by the base and the tuned model", "low": None, "high": None, "step": None},
    {"name": "sample_replies", "type": "bool", "default": False, "label": "Sample replies",
     "help": "after each eval, let the model answer two probe prompts (slows training a little)",
     "low": None, "high": None, "step": None},
]


def setting_traits(config=TrainConfig) -> type:
    """A traits class with one synced trait per Train-tab setting of `config` (and the panel's
    own), typed, defaulted and described from their declaration: a new setting needs no edit here."""
    kinds = {"float": t.Float, "int": t.Int, "int | None": t.Int, "bool": t.Bool}
    spec = [*settings(config, panel=True), *PANEL_SETTINGS]
    traits = {s["name"]: kinds[s["type"]](0 if s["default"] is None else s["default"],
                                          help=s["help"]).tag(sync=True) for s in spec}
    traits["setting_spec"] = t.List(t.Dict(), [{k: s[k] for k in ("name", "label", "type", "help", "step",
                                                                   "low", "high")} for s in spec],
                                    help="the settings the panel shows: name, label, type, help, step, "
                                    "range (from their declaration)").tag(sync=True)
    return type("SettingTraits", (t.HasTraits,), traits)


class TrainPanel(anywidget.AnyWidget, setting_traits()):
    """Fine-tune the session's model on `examples`; `.start()`, `.wait()`, `.stop()` from code."""

    _esm = esm("train_panel.js")
    _css = CSS

    model_name = t.Unicode("default", help="model to train: default, tiny-random, a hub id "
                           "or a local folder").tag(sync=True)
    loaded_model = t.Unicode("", help="the model the session holds ('' = none loaded yet)").tag(sync=True)
    model_info = t.Unicode("", help="size and device of the loaded model").tag(sync=True)
    forgetting = t.Dict(help="the forgetting meter's report after the run: accuracy base vs tuned "
                        "and the questions that flipped").tag(sync=True)
    n_examples = t.Int(0, help="examples the next run gets (before the eval split)").tag(sync=True)
    estimate = t.Dict(help="the next run's cost: tokens, steps, seconds, memory_gb, text").tag(sync=True)
    state = t.Unicode("idle", help="idle | loading | training | stopping | done | stopped | "
                      "error").tag(sync=True)
    progress = t.Dict(help="step, total, loss, tokens_per_second, eta, elapsed of the "
                      "running job").tag(sync=True)
    samples = t.List(t.Dict(), help="probe replies during training: {step, prompt, reply}").tag(sync=True)
    message = t.Unicode("", help="what just happened, for the status line").tag(sync=True)
    error = t.Unicode("", help="what went wrong and how to fix it ('' = nothing)").tag(sync=True)
    busy = t.Unicode("", help="what else the session is running ('' = free)").tag(sync=True)
    confirm = t.Unicode("", help="a question Start waits on (a very long run); pressing Start "
                        "again answers yes").tag(sync=True)
    stored = t.List(t.Dict(), help="runs in the runs folder: {name, path, status, line, "
                    "loadable}").tag(sync=True)
    run_choice = t.Unicode("", help="the stored run picked to load as the tuned model").tag(sync=True)
    tuned_run = t.Unicode("", help="the run whose weights the tuned model holds ('' = base)").tag(sync=True)
    starts_from = t.Unicode("The next run starts from the base model.", help="what the next Start trains "
                            "from: the base model, or the tuned model of the last run").tag(sync=True)
    load_clicks = t.Int(0, help="incremented by the 'Load model' button").tag(sync=True)
    start_clicks = t.Int(0, help="incremented by the 'Start' button").tag(sync=True)
    stop_clicks = t.Int(0, help="incremented by the 'Stop' button").tag(sync=True)
    reset_clicks = t.Int(0, help="incremented by the 'Reset to base' button").tag(sync=True)
    load_run_clicks = t.Int(0, help="incremented by the 'Load as tuned' button").tag(sync=True)
    report_clicks = t.Int(0, help="incremented by the 'Report' button").tag(sync=True)
    chart = anywidget.WidgetTrait().tag(sync=True)
    timeline_chart = anywidget.WidgetTrait().tag(sync=True)
    session = t.Instance(Session, allow_none=True, help="the lab session trained (not synced)")

    def __init__(self, session: Session | None = None, examples=(), *, model: str = "default",
                 probes=(), runs_dir=None, save: bool = True, **hyperparameters):
        """`session`: reuse a loaded model (else `model` is loaded at the first Load/Start);
        `save`: write a run folder per run under `runs_dir` (default: the session's)."""
        super().__init__(model_name=session.model_name if session else model, **hyperparameters)
        answer_while_cells_run(self)  # Stop while a cell waits for the run
        self._examples: list[Conversation] = list(examples)
        self._probes: list[Conversation] = []
        self._runs_dir, self._save = runs_dir, save
        self._job = Job(self)
        self._confirmed: dict | None = None
        self.run: Run | None = None  # the last run this panel trained (None: stopped at once)
        self.chart = Chart(plots.loss_figure())
        self.timeline_chart = Chart(plots.timeline_figure())
        self._busy = BusyLine(self)
        self.observe(self._on_session, "session")
        self.observe(self._on_settings, [s["name"] for s in settings(panel=True)])
        self.observe(lambda _: self.refresh_estimate(), ["timeline", "timeline_points", "forgetting_meter"])
        self.observe(lambda _: act(self, self.load_model), "load_clicks")
        self.observe(lambda _: None if self.running else act(self, self.start), "start_clicks")  # a double click starts once
        self.observe(self._on_tuned_run, "tuned_run")
        self.observe(lambda _: act(self, self.stop), "stop_clicks")
        self.observe(lambda _: act(self, self.reset), "reset_clicks")
        self.observe(lambda _: act(self, lambda: self.load_run(self.run_choice)), "load_run_clicks")
        self.observe(lambda _: act(self, lambda: self.write_report(self.run_choice)), "report_clicks")
        self.session = session
        self.set_probes(probes)
        self.refresh_estimate()

    # -- Python API -------------------------------------------------------------------------
    def set_examples(self, examples) -> None:
        """The training examples of the next run (e.g. `DatasetBuilder.examples`)."""
        self._examples = list(examples)
        self.refresh_estimate()

    def set_probes(self, probes) -> None:
        """Held-out prompts (text, or Conversations with reference answers): the timeline's
        probes, and what the model answers after each eval when `sample_replies` is on."""
        self._probes = [p if isinstance(p, Conversation) else Conversation.single(p) for p in probes]

    def config(self) -> TrainConfig:
        """The TrainConfig the panel's settings stand for; a ValueError lists every setting
        that is out of range, by the names the panel shows."""
        values = {s["name"]: getattr(self, s["name"]) for s in settings(panel=True)}
        values["max_steps"] = values["max_steps"] or None  # 0 in the box: train for the epochs
        found = problems(values, labels=True)
        if self.max_steps < 0:
            found.insert(0, "Max steps must be 0 (use the epochs) or more")
        if found:
            raise ValueError("; ".join(found))
        cfg = TrainConfig(**values)
        if cfg.eval_split > 0:
            n_train = len(split_eval(self._examples, cfg.eval_split, cfg.seed)[0])
            cfg.eval_every = eval_every_for(n_train, cfg, EVALS_PER_RUN)
        return cfg

    def timeline_config(self) -> TimelineConfig | None:
        """The next run's timeline, from the panel's settings (None: off)."""
        if not self.timeline:
            return None
        return TimelineConfig(points=self.timeline_points or "auto", retention=self.forgetting_meter)

    def _point_seconds(self) -> float | None:
        """What a timeline point between the first and last cost in this session's last run
        that had one (for the estimate of a run with a set number of points)."""
        for r in reversed(self.session.runs):
            between = [p["counted"] for p in r.timeline[1:-1] if "counted" in p]
            if between:
                return sum(between) / len(between)
        return None

    def refresh_estimate(self) -> None:
        """Recompute the pre-launch estimate (tokens, steps, time, memory on this machine)."""
        self.n_examples = len(self._examples)
        if self.session is None:
            self.estimate = {"text": "Load the model to see an estimate."}
            return
        # the speed of the last run long enough to measure it (a run stopped after a step or two
        # is mostly start-up and timeline, and would make the estimate jump)
        speed = next((r.result.tokens_per_second for r in reversed(self.session.runs)
                      if r.result and r.result.steps >= MEASURED_STEPS), None)
        try:
            est = estimate(self._examples, self.session.tokenizer, self.config(), self.session.model,
                           tokens_per_second=speed, timeline=self.timeline_config(),
                           point_seconds=self._point_seconds())
        except Exception as err:  # a bad setting or example: the estimate line says so
            self.estimate = {"text": f"no estimate: {error_text(err)}"}
            return
        self.estimate = {**est, "text": describe(est)}

    def load_model(self, name: str | None = None) -> None:
        """Load `name` (default: the panel's model box) in the background, replacing the session."""
        name = (name or self.model_name).strip()
        self.model_name = name
        self._check_free()
        self._job.start(None, "", self._load, name, name="sftlab-load")

    def start(self) -> None:
        """Start training in the background (loading the model first if it changed).

        A run estimated to take longer than `LONG_RUN_S` waits for a second `start()` with the
        same settings (the panel asks; Start again answers yes)."""
        if not self._examples:
            raise ValueError("no examples to train on: load a starter or add examples in the "
                             "dataset builder (or call set_examples)")
        cfg = self.config()
        if not self._confirm_long_run(cfg):
            return
        data = list(self._examples)
        self._check_free()
        self.error = ""
        before = self.state, self.message
        self.state, self.message, self.samples, self.confirm, self.forgetting = "training", "Training…", [], "", {}
        try:
            if self.session is None or self.model_name.strip() != self.session.model_name:
                self._job.start(None, "", self._load_and_train, cfg, data, name="sftlab-train")
            else:
                self._job.start(self.session, "training in the Train tab", self._train, self.session, cfg, data,
                                name="sftlab-train")  # Busy, naming what runs, if the slot is taken
        except BaseException:
            self.state, self.message = before
            raise

    def stop(self) -> None:
        """End the run after the current step; the model keeps what it has learned so far."""
        if self.state == "training" and self.session is not None:
            self.state = "stopping"
            self.session.stop()
            self.message = "Stopping after the current step…"

    def reset(self) -> None:
        """Make the tuned model the base model again (runs stay in the runs folder)."""
        if self.running:
            raise RuntimeError("training is running; press Stop first, then Reset to base")
        if self.session is not None:
            self.session.reset_to_base()  # Busy, with what runs, if another job holds the session
        self._clear_run_view()
        self.message = "Reset: the tuned model is the base model again."
        self.state = "idle"

    def load_run(self, name: str) -> None:
        """Make a stored run's model the tuned model (a run's name or folder)."""
        if self.session is None:
            raise RuntimeError("load a model first (Load model), then its runs")
        if not name:
            raise ValueError("pick a stored run to load first")
        card = self.session.load_run(name)
        self._show_card(card)
        self.state = "idle"
        self.message = (f"Loaded run {card['name']} as the tuned model ({runs.summary_line(card)}). "
                        "Compare it with the base model in the Compare tab.")

    def write_report(self, run: str) -> Path:
        """Write the stored run's one-file HTML report (`lab.present.report`) into its folder."""
        if not run:
            raise ValueError("pick a stored run first")
        out = report(run, Path(run) / "report.html")
        self.message = f"Report written: {out} (one file; opens offline in any browser)."
        return out

    def wait(self, timeout: float | None = None) -> Run | None:
        """Block until the background job ends; return the run, or raise if it failed."""
        self._job.wait(timeout)
        return self.run

    @property
    def running(self) -> bool:
        """True while this panel's background job (loading or training) runs."""
        return self._job.running

    # -- background jobs --------------------------------------------------------------------
    def _check_free(self) -> None:
        if self.running:
            raise RuntimeError("the panel is busy (loading or training); wait, or press Stop")
        if self.session is not None and self.session.busy:
            raise RuntimeError(self.session.busy_message())

    def _confirm_long_run(self, cfg: TrainConfig) -> bool:
        """True when the run may start: it is not long, or Start was pressed again for it."""
        seconds = self.estimate.get("seconds") or 0
        if seconds <= LONG_RUN_S or self._confirmed == cfg.to_json():
            self.confirm = ""
            return True
        self._confirmed = cfg.to_json()
        self.confirm = (f"This run would take about {duration(seconds)} on this machine "
                        f"({self.estimate.get('steps')} steps). Press Start again to run it anyway, "
                        "or lower the epochs or max steps.")
        return False

    def _load(self, name: str, then=None) -> None:
        """In the job's thread: load `name` into a new session; the panel takes it on the main
        thread."""
        self._job.set(state="loading", message=f"Loading model '{name}'…")
        session = Session(name, runs_dir=self._runs_dir or (self.session.runs_dir if self.session else None))
        self._job.set(session=session, state="training" if then else "idle",
                      message="Training…" if then else f"Loaded '{name}'.")
        return session

    def _load_and_train(self, cfg: TrainConfig, data: list[Conversation]) -> None:
        session = self._load(self.model_name.strip(), then="train")
        with session.job("training in the Train tab", by=self):
            self._train(session, cfg, data)

    def _train(self, session: Session, cfg: TrainConfig, data: list[Conversation]) -> None:
        """The run itself, in the thread that holds the session's job slot: it reports, the
        main thread shows (`_Live`, `_finished`)."""
        live = _Live(self, session)
        run = session.train(data, cfg, callbacks=[live], save=self._save, probes=self._probes,
                            timeline=self.timeline_config(), on_point=live.on_point)
        on_main(self._finished, session, run)

    def _finished(self, session: Session, run: Run | None) -> None:
        """On the main thread, after a run: its outcome in the panel."""
        self.run = run
        self.error = ""  # a run went through: earlier complaints (busy, a bad setting) are stale
        self.forgetting = run.forgetting or {} if run else {}
        self.refresh_estimate()  # now from the speed this run measured
        self.progress = {**self.progress, "eta": None}
        self.tuned_run = session.current.name if session.current else ""
        if run is None:
            self.state = "stopped"
            self.message = "Stopped before the first step: nothing changed, no run was saved."
            return
        r = run.result
        ev = f", eval loss {r.eval_loss:.3f}" if r.eval_loss is not None else ""
        where = f" Saved in {run.out}." if run.out else ""
        loss = f"train loss {r.final_loss:.3f} (mean of the last {min(5, r.steps)} steps){ev}"
        if r.stopped:
            self.state = "stopped"
            self.message = (f"Stopped at step {r.steps} of {r.total_steps}; the model keeps what it "
                            f"learned. {loss[0].upper()}{loss[1:]}.{where}")
        else:
            self.state = "done"
            self.message = (f"Run {run.name} finished: {r.steps} steps in {duration(r.seconds)} "
                            f"({r.tokens_per_second:.0f} tokens/s), {loss}.{where}")
        self._refresh_stored(session, pick=run.out)

    def _on_tuned_run(self, change) -> None:
        self.starts_from = (f"The next run continues from run {change['new']}'s weights; press Reset to "
                            "base to start from the base model." if change["new"] else
                            "The next run starts from the base model.")

    def _on_settings(self, _change) -> None:
        self.confirm = ""
        self.refresh_estimate()
        if self.error:  # a complaint about the settings goes once they are right
            try:
                self.config()
            except ValueError:
                return
            if not self.running:
                self.error = ""

    def _on_session(self, change) -> None:
        s = change["new"]
        self.loaded_model = s.model_name if s else ""
        if s is not None:
            n = sum(p.numel() for p in s.base.parameters())
            self.model_info = f"{n / 1e6:.1f}M parameters on {next(s.base.parameters()).device}"
            self.tuned_run = s.current.name if s.current else ""
        self._busy.follow(s)
        self.refresh_estimate()
        self._refresh_stored(s)
        if s is not None and not s.runs and self.state == "idle":
            self._show_last_stored()

    # -- the runs folder --------------------------------------------------------------------
    def _refresh_stored(self, session: Session | None, pick: str | None = None) -> None:
        """The stored runs list: every run folder, newest first, loadable when its model fits
        (`pick`: the run to select, e.g. the one just trained)."""
        if session is None:
            self.stored = []
            return
        names = (session.model_name, session.base.config.name_or_path)
        cards = list(reversed(session.stored_runs()))
        self.stored = [{"name": c["name"], "path": c["path"], "status": c.get("status", "?"),
                        "line": runs.summary_line(c), "experiment": c.get("experiment"),
                        "loadable": (c.get("model") in names
                                     and runs.has_model(c["path"]))} for c in cards]
        loadable = [c["path"] for c in self.stored if c["loadable"]]
        if pick in loadable:
            self.run_choice = pick
        elif self.run_choice not in loadable:
            self.run_choice = loadable[0] if loadable else ""

    def _show_last_stored(self) -> None:
        """After a restart: the last plain training run's curve and summary, and how to reload it."""
        last = next((c for c in self.stored if not c["experiment"]), None)  # the Train tab's own
        card = runs.read_card(last["path"]) if last else None
        if card is None:
            return
        self._show_card(card)
        restored = self._restore_settings(card.get("config") or {})
        hint = (" Its model is not loaded: pick it under 'Stored runs' and press 'Load as tuned'."
                if last["loadable"] else "")
        self.message = (f"Last run in {self.session.runs_dir}/: {runs.summary_line(card)}."
                        f"{' Its settings are back in the boxes above.' if restored else ''}{hint}")

    def _restore_settings(self, config: dict) -> bool:
        """Put a stored run's settings back in the panel (after a restart); True if any changed."""
        values = {s["name"]: config.get(s["name"]) for s in settings(panel=True)}
        values["max_steps"] = (values["max_steps"] or 0) if "max_steps" in config else None
        changed = {k: v for k, v in values.items() if v is not None and getattr(self, k) != v}
        with self.hold_trait_notifications():
            for k, v in changed.items():
                setattr(self, k, v)
        return bool(changed)

    def _show_card(self, card: dict) -> None:
        """Show a stored run's loss curve and final progress."""
        curve = runs.load_curve(card["path"])
        steps = [r for r in curve if "loss" in r]
        total = card.get("total_steps") or (steps[-1].get("total_steps") if steps else None)
        self.chart.show(plots.loss_figure(curve, total))
        points = timeline.load(card["path"])
        self.timeline_chart.show(plots.timeline_figure(points, total))
        self.forgetting = (points[-1].get("forgetting") or {}) if points else {}
        self.progress = {"step": card.get("steps") or 0, "total": total or 0,
                         "loss": steps[-1]["loss"] if steps else None} if steps else {}
        self.tuned_run = self.session.current.name if self.session and self.session.current else ""

    def _clear_run_view(self) -> None:
        self.progress, self.samples, self.confirm, self.tuned_run, self.forgetting = {}, [], "", "", {}
        self.chart.show(plots.loss_figure())
        self.timeline_chart.show(plots.timeline_figure())

    # -- what the training thread reports, shown on the main thread --------------------------
    def _show(self, history: list[dict], info: StepInfo | None) -> None:
        """Push progress and the loss curve to the browser."""
        if info is not None:
            self.progress = {"step": info.step, "total": info.total_steps, "loss": info.loss,
                             "tokens_per_second": info.tokens_per_second, "eta": info.eta,
                             "elapsed": info.elapsed, "epoch": info.epoch}
        self.chart.show(plots.loss_figure(history, self.progress.get("total") or None))

    def _add_samples(self, rows: list[dict]) -> None:
        """Probe replies the model gave during training (greedy, short)."""
        self.samples = self.samples + rows

    def _begin(self, total_steps: int) -> None:
        self.progress = {"step": 0, "total": total_steps}
        self.chart.show(plots.loss_figure([], total_steps))
        self.timeline_chart.show(plots.timeline_figure([], total_steps))

    def _point(self, points: list[dict], total: int | None) -> None:
        self.timeline_chart.show(plots.timeline_figure(points, total))
        if points[-1].get("forgetting"):
            self.forgetting = points[-1]["forgetting"]


class _Live(Callback):
    """Reports the training loop's progress to the panel, at most ~4 times a second, and each
    timeline point as it comes: from the training thread, handed to the main thread."""

    def __init__(self, panel: TrainPanel, session: Session):
        self.panel, self.session, self.history, self.last = panel, session, [], None
        self.points: list[dict] = []
        self.total = None
        self.throttle = Throttle(0.25)

    def on_start(self, total_steps: int, n_examples: int) -> None:
        self.total = total_steps
        on_main(self.panel._begin, total_steps)

    def on_point(self, row: dict) -> None:
        self.points.append(row)
        on_main(self.panel._point, list(self.points), self.total)

    def on_step(self, info: StepInfo) -> None:
        self.history.append({"step": info.step, "loss": info.loss})
        self.last = info
        if self.throttle.ready():
            self.session.describe(f"training in the Train tab, step {info.step} of {info.total_steps}")
            on_main(self.panel._show, list(self.history), info)

    def on_eval(self, step: int, eval_loss: float) -> None:
        self.history.append({"step": step, "eval_loss": eval_loss})
        on_main(self.panel._show, list(self.history), self.last)
        if self.panel.sample_replies and self.panel._probes:
            prompts = [p.prompt for p in self.panel._probes[:SAMPLE_PROBES]]
            replies = self.session.reply(prompts, cfg=GenConfig(max_new_tokens=SAMPLE_TOKENS))
            on_main(self.panel._add_samples, [{"step": step, "prompt": p, "reply": r}
                                              for p, r in zip(prompts, replies)])

    def on_end(self, result: TrainResult) -> None:
        on_main(self.panel._show, list(result.history), self.last)
