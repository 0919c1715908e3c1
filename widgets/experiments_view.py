"""ExperimentsView: queue what-if runs over dataset and config variants, watch them, compare them.

A person picks a kind of variant ("subsample N", "shuffled responses", an lr sweep, ...),
types its values ("10, 20, 40") and an experiment name, and adds the runs to a queue. The
queue (`lab.experiments.Queue`) trains a fresh copy of the session's base model per run in a
background thread that holds the session's job slot; the session's tuned model is never
touched. Runs start from the Train tab's settings in `Lab` (else `TrainConfig()`'s defaults). The view shows each run's
status and progress, overlays the loss curves, tabulates held-out NLL and probe replies, and
loads two finished runs' models to show their replies side by side with a word diff.

Everything shown is rebuilt from the run cards in the runs folder, so the history survives a
kernel restart. Built from ipywidgets (no custom JS): a `VBox` with CSS class
`sftlab-experiments`; the tables are HTML made by `widgets._experiments_html`.
"""
from __future__ import annotations

import contextlib
import threading
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Union

import ipywidgets as w
import plotly.graph_objects as go

from lab.dataio import parse_record
from lab.experiments.plots import (group_name, group_rows, is_full_sequence, ladder_figure, nll_table_rows,
                                   overlay_losses, run_name)
from lab.experiments import Queue, load_cards, load_curve, slug
from lab.generate import GenConfig
from lab.records import Conversation
from lab.report import report
from lab.train import StepInfo, TrainConfig
from lab.experiments.specs import KINDS, make_variants
from lab.experiments.variants import tags as data_tags

from . import _experiments_html as H
from ._common import BusyLine, Throttle, answer_while_cells_run, error_text, join, on_main
from ._run_compare import RunComparison

Examples = Union[Iterable, Callable[[], Iterable]]
ALL = "all experiments"
_WIDE = dict(style={"description_width": "initial"})


def _conversations(items: Iterable, what: str) -> list[Conversation]:
    return [c if isinstance(c, Conversation) else parse_record(c, where=f"{what} {i}")
            for i, c in enumerate(items, 1)]


def _prompt_text(p) -> str:
    if isinstance(p, str):
        return p
    return (p if isinstance(p, Conversation) else parse_record(p, where="probe")).prompt


def _sync_figure(target: go.FigureWidget, source: go.Figure) -> None:
    """Show `source` in `target`: traces updated in place, or replaced when their number changed."""
    if len(target.data) != len(source.data):
        target.data = ()
        target.add_traces(list(source.data))
        target.layout.update(source.layout.to_plotly_json(), overwrite=True)
        return
    with target.batch_update():
        for old, new in zip(target.data, source.data):
            old.update(new.to_plotly_json(), overwrite=True)
        target.layout.update(source.layout.to_plotly_json(), overwrite=True)


class ExperimentsView(w.VBox):
    """What-if experiments over the training data: define, queue, run, watch, compare.

    `data` (and `eval_data`, `probes`) may be a list or a callable returning the current list,
    so the lab can pass a DatasetBuilder's live examples. Python API: `add`, `run`, `stop`,
    `wait`, `compare`, `refresh`; `cards`, `status_rows` and `comparison_rows` hold what the
    tables show.
    """

    def __init__(self, session, data: Examples, *, eval_data: Examples = (), probes: Examples = (),
                 runs_dir: str | Path | None = None,
                 config: TrainConfig | Callable[[], TrainConfig] | None = None,
                 gen: GenConfig | None = None, reply_chars: int = 60):
        """`session`: a `lab.session.Session` (its `.base` and `.tokenizer` are used); `runs_dir`:
        where runs are written and history is read (default: the session's runs folder);
        `config`: the base TrainConfig each variant overrides; `gen`: decoding of probe replies."""
        self.session = session
        self._data, self._eval, self._probes, self._config = data, eval_data, probes, config
        self.runs_dir = Path(runs_dir) if runs_dir is not None else Path(session.runs_dir)
        self.gen = gen or GenConfig(max_new_tokens=64)
        self.reply_chars = reply_chars
        self._lock = threading.RLock()
        self._throttle = Throttle(0.25)  # at most ~4 redraws per second from the training thread
        self._cards: dict[str, dict] = {}      # run name -> card (finished runs, oldest first)
        self._order: list[str] = []            # every run name, in the order first seen
        self._exp: dict[str, str] = {}         # run name -> its experiment
        self._group: dict[str, str] = {}       # run name -> its variant (the same over seeds)
        self._curves: dict[str, list[dict]] = {}
        self._progress: dict[str, StepInfo] = {}
        self._jobs: dict = {}                  # run name -> lab.experiments.Job of this view
        self._driver: threading.Thread | None = None
        self._stopping = False
        self._updating = False                 # True while the view itself sets the filter
        self.queue = Queue(session, runs_dir=self.runs_dir, gen=self.gen,
                           on_step=self._on_step, on_run_end=self._on_run_end)
        self._build()
        self._busy = BusyLine(self)
        self._busy.follow(session)
        super().__init__(self._children())
        answer_while_cells_run(self.kind, self.params, self.experiment, self.seeds, self.add_button,
                               self.run_button, self.stop_button, self.report_button, self.show,
                               self.run_a, self.run_b, self.compare_button)
        self.add_class("sftlab-experiments")
        self._load_history()
        self.refresh()

    # -- layout -----------------------------------------------------------------------------
    def _build(self) -> None:
        def cls(widget, name):
            widget.add_class(name)
            return widget

        self.header = w.HTML(H.css() + "<b>What-if experiments</b> <span class='sftlab-muted'>each run "
                             "trains a fresh copy of the base model on a variant of the data</span>")
        self.kind = cls(w.Dropdown(options=[(k.label, key) for key, k in KINDS.items()], value="subsample",
                                   **_WIDE, description="Variant", layout=w.Layout(width="340px")), "sftlab-exp-kind")
        self.params = cls(w.Text(value=KINDS["subsample"].example, **_WIDE, description="Values",
                                 placeholder=KINDS["subsample"].hint, layout=w.Layout(width="360px")),
                          "sftlab-exp-params")
        self.experiment = cls(w.Text(value="", **_WIDE, description="Experiment", placeholder="name (default: the kind)",
                                     layout=w.Layout(width="280px")), "sftlab-exp-name")
        self.seeds = cls(w.BoundedIntText(value=1, min=1, max=10, **_WIDE, description="Seeds",
                                          tooltip="runs per variant, each with another seed: is a difference "
                                                  "real or noise?", layout=w.Layout(width="130px")),
                         "sftlab-exp-seeds")
        self.hint = cls(w.HTML(), "sftlab-exp-hint")
        self.add_button = cls(w.Button(description="Add to queue", icon="plus", layout=w.Layout(width="auto")),
                              "sftlab-exp-add")
        self.run_button = cls(w.Button(description="Run queue", icon="play", button_style="primary"),
                              "sftlab-exp-run")
        self.stop_button = cls(w.Button(description="Stop", icon="stop", disabled=True), "sftlab-exp-stop")
        self.report_button = cls(w.Button(description="Report", icon="file", tooltip="one HTML file about the "
                                          "experiment shown (all experiments: the runs folder)"), "sftlab-exp-report")
        self.message = cls(w.HTML(), "sftlab-exp-message")
        self.busy_html = cls(w.HTML(), "sftlab-exp-busy")
        self.error = cls(w.HTML(), "sftlab-exp-error")
        self.show = cls(w.Dropdown(options=[ALL], value=ALL, **_WIDE, description="Show",
                                   layout=w.Layout(width="340px")), "sftlab-exp-show")
        self.status_html = cls(w.HTML(), "sftlab-exp-status")
        self.figure = go.FigureWidget(overlay_losses({}))
        self.ladder = go.FigureWidget(ladder_figure([]))
        self.ladder_box = cls(w.Box([self.ladder], layout=w.Layout(display="none")), "sftlab-exp-ladder")
        self.nll_html = cls(w.HTML(), "sftlab-exp-nll")
        self.comparison = RunComparison(
            self.probes, self._show_error,
            lambda what, fn: self.session.start_job(what, fn, name="sftlab-compare-runs", by=self), self.gen)
        self.run_a, self.run_b = self.comparison.run_a, self.comparison.run_b
        self.compare_button, self.compare_html = self.comparison.button, self.comparison.html

        self.kind.observe(self._on_kind, "value")
        self.show.observe(lambda _: None if self._updating else self.refresh(), "value")
        self.add_button.on_click(lambda _: self._action(self.add))
        self.run_button.on_click(lambda _: self._action(self.run))
        self.stop_button.on_click(lambda _: self._action(self.stop))
        self.report_button.on_click(lambda _: self._action(self.write_report))
        self._on_kind({"old": None, "new": self.kind.value})

    def _children(self) -> list:
        overlay = w.Box([self.figure])
        overlay.add_class("sftlab-exp-overlay")
        return [self.header,
                w.HBox([self.kind, self.params, self.experiment, self.seeds, self.add_button]), self.hint,
                w.HBox([self.run_button, self.stop_button, self.report_button, self.message]), self.busy_html,
                self.error,
                self.show, self.status_html, overlay, self.ladder_box, self.nll_html, self.comparison]

    # -- inputs -----------------------------------------------------------------------------
    def data(self) -> list[Conversation]:
        """The training examples as they are now."""
        return _conversations(self._data() if callable(self._data) else self._data, "example")

    def _eval_data(self) -> list[Conversation]:
        return _conversations(self._eval() if callable(self._eval) else self._eval, "eval example")

    def probes(self) -> list[str]:
        """The probe prompts as they are now (text of each prompt's last user turn)."""
        return [_prompt_text(p) for p in (self._probes() if callable(self._probes) else self._probes)]

    def _train_config(self) -> TrainConfig:
        cfg = self._config() if callable(self._config) else self._config
        return cfg or TrainConfig()

    def _on_kind(self, change) -> None:
        """New kind: fill in its example values and say what to type (no box when it takes none)."""
        kind = KINDS[change["new"]]
        example, hint = kind.example, kind.hint
        if change["new"] == "drop_tag":
            with contextlib.suppress(Exception):  # bad data is reported when adding, not here
                found = data_tags(self.data())
                example = found[0] if found else ""
                hint += f"; tags in the data: {', '.join(found) or 'none'}"
        self.params.value, self.params.placeholder = example, kind.hint
        self.params.disabled = not kind.values
        self.hint.value = f"<span class='sftlab-muted'>{H._e(hint)}</span>"

    # -- actions ----------------------------------------------------------------------------
    def _show_error(self, text: str) -> None:
        self.error.value = H.error_html(text)

    @contextlib.contextmanager
    def _reporting(self):
        """Show a failure in the widget (red text) instead of a traceback in a log."""
        try:
            yield
        except Exception as err:  # any failure of a user action belongs in the panel
            on_main(self._show_error, error_text(err))

    def _action(self, fn) -> None:
        self.error.value = ""
        with self._reporting():
            fn()

    def add(self, kind: str | None = None, values: str | None = None,
            experiment: str | None = None, seeds: int | None = None) -> list[str]:
        """Queue the runs of one experiment (default: what the widgets show), each variant over
        `seeds` seeds; return run names."""
        kind = kind or self.kind.value
        values = self.params.value if values is None else values
        name = (experiment if experiment is not None else self.experiment.value).strip() or kind
        data = self.data()
        if not data:
            raise ValueError("there are no training examples yet: add some first")
        variants = make_variants(kind, values, tags=data_tags(data), n_examples=len(data),
                                 seeds=self.seeds.value if seeds is None else seeds)
        for v in variants:  # fail now, not minutes into the queue
            if not v.apply(data):
                raise ValueError(f"variant {v.name} leaves no training examples")
        exp = self._free_experiment_name(name, [v.name for v in variants])
        jobs = self.queue.submit(exp, data, variants)
        names = [f"{exp}/{v.name}" for v in variants]
        with self._lock:
            for n, job, v in zip(names, jobs, variants):
                self._jobs[n] = job
                self._order.append(n)
                self._exp[n] = exp
                self._group[n] = f"{exp}/{v.group or v.name}"
        renamed = f" (renamed from '{name}', which has runs already)" if exp != name else ""
        self.message.value = (f"Queued {len(names)} run{'s' * (len(names) != 1)} of experiment "
                              f"'{H._e(exp)}'{H._e(renamed)}: {H._e(', '.join(v.name for v in variants))}. "
                              "Press <b>Run queue</b>.")
        self.refresh()
        return names

    def _free_experiment_name(self, name: str, variants: list[str]) -> str:
        """`name`, or `name-2`, `name-3`, ... so that no run overwrites another's folder."""
        n, candidate = 1, name
        while any(f"{candidate}/{v}" in self._order or (self.runs_dir / slug(candidate) / slug(v)).exists()
                  for v in variants):
            n += 1
            candidate = f"{name}-{n}"
        return candidate

    def run(self) -> None:
        """Start training the queued runs, one after another, in a background thread."""
        if self.running:
            self.message.value = "The queue is running; runs you add join it."
            return
        if not any(j.status == "queued" for j in self.queue.jobs):
            raise ValueError("nothing is queued: define a variant and press 'Add to queue' first")
        self.queue.config = self._train_config()
        self.queue.eval_data, self.queue.probes = self._eval_data(), self.probes()
        self._stopping = False
        self.queue.start(by=self)  # Busy, naming what runs, if the session is doing something else
        self._set_running(True)
        self.message.value = "Running the queue…"
        self._driver = threading.Thread(target=self._drive, name="sftlab-experiments", daemon=True)
        self._driver.start()

    def _drive(self) -> None:
        """Work through the queue, including runs added while it ran; then redraw."""
        with self._reporting():
            while True:
                self.queue.wait()
                if self._stopping or not any(j.status == "queued" for j in self.queue.jobs):
                    break
                self.queue.start(by=self)
        on_main(self._finished)

    def _finished(self) -> None:
        self._set_running(False)
        counts = Counter(job.status for job in self._jobs.values())
        self.message.value = "Queue finished: " + ", ".join(f"{v} {k}" for k, v in counts.items()) + "."
        self.refresh()

    def stop(self) -> None:
        """End the current run at its next step (its model is kept) and cancel the queued ones."""
        self._stopping = True
        self.queue.stop()
        self.message.value = "Stopping after the current step…"

    def write_report(self) -> Path:
        """Write the one-file HTML report (`lab.report`) of the experiment shown, or of the
        whole runs folder, beside its runs."""
        folder = self.runs_dir if self.show.value == ALL else self.runs_dir / slug(self.show.value)
        out = report(folder, folder / "report.html")
        self.message.value = f"Report written: {H._e(str(out))} (one file; opens offline in any browser)."
        return out

    @property
    def running(self) -> bool:
        """True while the queue is being worked through."""
        return self._driver is not None and self._driver.is_alive()

    def set_session(self, session) -> None:
        """Train the queued and later runs from another session's base model (e.g. after the
        Train panel loaded a different model); finished runs stay in the history."""
        if self.running:
            raise RuntimeError("the queue is running; press Stop first, then change the model")
        queued = [j for j in self.queue.jobs if j.status == "queued"]
        self.session = session
        self.queue = Queue(session, runs_dir=self.runs_dir, gen=self.gen,
                           on_step=self._on_step, on_run_end=self._on_run_end)
        self.queue.jobs = queued
        self._busy.follow(session)

    @property
    def busy(self) -> str:
        """What else the session is running ('' when it is free or runs this queue)."""
        return self._busy_text

    @busy.setter
    def busy(self, text: str) -> None:
        self._busy_text = text
        self.busy_html.value = f"<div class='sftlab-busy'>{H._e(text)}</div>" if text else ""
        self.run_button.disabled = bool(text) or self.running

    def wait(self, timeout: float | None = None) -> None:
        """Block until the queue and any comparison have finished (for scripts and tests)."""
        join(self._driver, timeout)
        self.comparison.wait(timeout)

    def _set_running(self, running: bool) -> None:
        self.run_button.disabled = running
        self.stop_button.disabled = not running

    # -- events from the queue's thread -----------------------------------------------------
    def _on_step(self, name: str, info: StepInfo) -> None:
        with self._lock:
            self._progress[name] = info
            self._curves.setdefault(name, []).append({"step": info.step, "loss": info.loss})
        if self._throttle.ready():
            on_main(self.refresh, False)

    def _on_run_end(self, name: str, card: dict) -> None:
        job = self._jobs.get(name)
        with self._lock:
            card = {**card, "path": str(job.out_dir) if job else card.get("path")}
            self._cards[name] = card
            self._curves[name] = load_curve(card["path"]) if card.get("path") else []
        self._throttle.ready(force=True)
        on_main(self.refresh)

    # -- what is shown ----------------------------------------------------------------------
    @property
    def cards(self) -> list[dict]:
        """Run cards of the finished runs (history and this session's), oldest first."""
        with self._lock:
            return list(self._cards.values())

    def _load_history(self) -> None:
        """Read the what-if run cards stored in the runs folder (history of earlier sessions)."""
        for card in load_cards(self.runs_dir):
            if "experiment" not in card or "variant" not in card:
                continue  # a plain training run (Train panel), not a what-if run
            name = run_name(card)
            if name in self._jobs:
                continue  # a run of this view: its card arrives through on_run_end
            if name not in self._order:
                self._order.append(name)
                self._exp[name] = str(card["experiment"])
                self._group[name] = group_name(card)
            if name not in self._cards:
                self._cards[name] = card
                self._curves[name] = load_curve(card["path"])

    def _visible(self, name: str) -> bool:
        return self.show.value == ALL or self._exp.get(name) == self.show.value

    @property
    def status_rows(self) -> list[dict]:
        """One row per run: `{run, status, step, total, note}` (what the status table shows)."""
        rows = []
        with self._lock:
            for name in self._order:
                if not self._visible(name):
                    continue
                job, card, info = self._jobs.get(name), self._cards.get(name), self._progress.get(name)
                status = job.status if job else (card or {}).get("status", "?")
                step = info.step if info else (card or {}).get("steps", 0)
                total = info.total_steps if info else (card or {}).get("total_steps", 0)
                rows.append({"run": name, "status": status, "step": step, "total": total,
                             "note": self._note(status, card, info)})
        return rows

    @staticmethod
    def _note(status: str, card: dict | None, info: StepInfo | None) -> str:
        if card and card.get("error"):
            return card["error"]
        if status == "running" and info:
            return f"loss {info.loss:.3f} · {info.tokens_per_second:.0f} tok/s · about {info.eta:.0f} s left"
        if card and isinstance(card.get("final_loss"), float):
            return f"final loss {card['final_loss']:.3f} in {card.get('seconds', 0):.1f} s"
        return ""

    def refresh(self, tables: bool = True) -> None:
        """Redraw the status table and the overlay (and with `tables`, the NLL table and choices)."""
        with self._lock:
            self.status_html.value = H.status_table(self.status_rows)
            curves = {n: self._curves[n] for n in self._order if n in self._curves and self._visible(n)}
            dashed = [n for n, c in self._cards.items() if is_full_sequence(c)]
            groups: dict[str, list[str]] = {}
            for n in curves:
                groups.setdefault(self._group.get(n, n), []).append(n)
            _sync_figure(self.figure, overlay_losses(curves, dashed=dashed, groups=groups))
            if not tables:
                return
            visible = [c for n, c in self._cards.items() if self._visible(n)]
            seeded = any(len(v) > 1 for v in groups.values())
            self.nll_html.value = ((H.group_table(group_rows(visible)) if seeded else "")
                                   + H.nll_table(nll_table_rows(visible), self.reply_chars))
            sizes = {c.get("n_examples") for c in visible if (c.get("variant") or {}).get("transform") == "subsample"}
            ladder = self.show.value != ALL and len(sizes) >= 3 and all(
                (c.get("variant") or {}).get("transform") == "subsample" for c in visible)
            self.ladder_box.layout.display = "" if ladder else "none"
            if ladder:
                _sync_figure(self.ladder, ladder_figure(visible))
            self._update_choices()

    def _update_choices(self) -> None:
        """Keep the experiment filter and the run pickers in step with the runs."""
        experiments = [ALL] + list(dict.fromkeys(self._exp[n] for n in self._order))
        if list(self.show.options) != experiments:
            keep = self.show.value if self.show.value in experiments else ALL
            self._updating = True
            try:
                self.show.options = experiments
                self.show.value = keep
            finally:
                self._updating = False
        self.comparison.set_runs(self._cards)

    # -- two runs side by side --------------------------------------------------------------
    @property
    def comparison_rows(self) -> list[dict]:
        """The last comparison: `lab.comparison.make_row` rows (prompt, run A, run B + diff)."""
        return self.comparison.rows

    def compare(self, a: str | None = None, b: str | None = None,
                prompts: list[str] | None = None) -> list[dict]:
        """Load runs `a` and `b`'s saved models and show their replies side by side (blocks).

        Prompts default to the view's probes, else the prompts stored in the two run cards.
        """
        return self.comparison.compare(a, b, prompts)
