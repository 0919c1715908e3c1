"""ExperimentsView: queue what-if runs over dataset and config variants, watch them, compare them.

A person picks a kind of variant ("subsample N", "shuffled responses", an lr sweep, ...),
types its values ("10, 20, 40") and an experiment name, and adds the runs to a queue. The
queue (`lab.experiments.Queue`) trains a fresh copy of the session's base model per run in a
background thread that holds the session's job slot; the session's tuned model is never
touched. Runs start from the Train tab's settings in `Lab` (else `TrainConfig()`'s defaults),
and the view shows those settings beside its Run button. The view shows each run's status
and progress, overlays the loss curves, tabulates held-out NLL and probe replies, and loads
two finished runs' models to show their replies side by side with a word diff.

Everything shown is rebuilt from the run cards in the runs folder, so the history survives a
kernel restart. An anywidget like the other tabs: state in the synced traits below (tables as
rows of data), front end in static/experiments_view.js. The queue's and the comparison's
threads only report: every trait changes on the kernel's main thread (`on_main`, `Job`).
"""
from __future__ import annotations

import math
import re
import threading
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Union

import anywidget
import traitlets as t

from lab.present.comparison import make_row
from lab.config import settings as train_settings
from lab.data.dataio import parse_record
from lab.experiments import Queue, load_cards, load_curve, slug
from lab.experiments.plots import (group_name, group_rows, is_full_sequence, ladder_figure, nll_table_rows,
                                   overlay_losses, run_name)
from lab.experiments.specs import KINDS, make_variants
from lab.experiments.variants import tags as data_tags
from lab.generate import GenConfig, generate
from lab.models import load_model
from lab.records import Conversation
from lab.present.report import report
from lab.runs import has_model
from lab.train import StepInfo, TrainConfig

from .chart import Chart
from ._common import CSS, act, BusyLine, Job, Throttle, answer_while_cells_run, error_text, esm, join, on_main, plural

Examples = Union[Iterable, Callable[[], Iterable]]
ALL = "all experiments"
MAX_SEEDS = 10
# exception names a failed run's card may start its error with; the text after them is the
# message a person reads (the traceback stays in the run's run.json)
_PLAIN_ERRORS = re.compile(r"^(?:DataError|ModelError|ValueError|RuntimeError|OSError|FileNotFoundError|Busy): ")


def _conversations(items: Iterable, what: str) -> list[Conversation]:
    return [c if isinstance(c, Conversation) else parse_record(c, where=f"{what} {i}")
            for i, c in enumerate(items, 1)]


def _prompt_text(p) -> str:
    if isinstance(p, str):
        return p
    return (p if isinstance(p, Conversation) else parse_record(p, where="probe")).prompt


def _plain(value):
    """`value` as the browser can take it: NaN and infinities (a diverged run) become None.

    >>> _plain({"a": [1.0, float("nan")], "b": (2, float("inf"))})
    {'a': [1.0, None], 'b': [2, None]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def failure_message(error: str) -> str:
    """A failed run's error as a message: its first line, without the exception's name when
    the message says what happened on its own.

    >>> failure_message("DataError: no trainable example: every response is empty\\nTraceback ...")
    'no trainable example: every response is empty'
    >>> failure_message("KeyError: 'lr'")
    "KeyError: 'lr'"
    """
    first = (error or "").strip().splitlines()[0] if (error or "").strip() else "failed"
    return _PLAIN_ERRORS.sub("", first, count=1) or first


def _figure_trait(help: str) -> anywidget.WidgetTrait:
    """A synced trait holding a `Chart` (WidgetTrait takes no `help=` of its own)."""
    trait = anywidget.WidgetTrait().tag(sync=True)
    trait.help = help
    return trait


def _has_model(card: dict | None) -> bool:
    return card is not None and has_model(card.get("path") or "")


class ExperimentsView(anywidget.AnyWidget):
    """What-if experiments over the training data: define, queue, run, watch, compare.

    `data` (and `eval_data`, `probes`) may be a list or a callable returning the current list,
    so the lab can pass a DatasetBuilder's live examples. Python API: `add`, `run`, `stop`,
    `wait`, `compare`, `refresh`, `write_report`, `set_session`; `cards`, `status_rows` and
    `comparison_rows` hold what the tables show.
    """

    _esm = esm("experiments_view.js")
    _css = CSS

    kinds = t.List(t.Dict(), help="the kinds of variant to choose from: {key, label, hint, example, "
                   "values} (values false: the kind takes none)").tag(sync=True)
    kind = t.Unicode("subsample", help="the kind of variant the next 'Add to queue' makes").tag(sync=True)
    params = t.Unicode(KINDS["subsample"].example, help="the kind's values as typed, e.g. '10, 20, 40' "
                       "(one run each)").tag(sync=True)
    hint = t.Unicode("", help="what to type for the kind (for 'drop a tag': the tags in the data)").tag(sync=True)
    experiment = t.Unicode("", help="the experiment's name ('' = the kind); runs are stored under "
                           "it").tag(sync=True)
    seeds = t.Int(1, help=f"runs per variant, each with another seed (1 to {MAX_SEEDS}): is a "
                  "difference real or noise?").tag(sync=True)
    train_settings = t.Unicode("", help="the training settings the queued runs use (the Train tab's), "
                               "as one line").tag(sync=True)
    status_rows = t.List(t.Dict(), help="one row per run shown: {run, status, step, total, note, "
                         "detail}").tag(sync=True)
    nll_rows = t.List(t.Dict(), help="the finished runs shown: `lab.experiments.plots.nll_table_rows` "
                      "(held-out NLL, probe replies, best)").tag(sync=True)
    variant_rows = t.List(t.Dict(), help="each variant over its seeds (`group_rows`), when a variant "
                          "ran with more than one seed; [] = none").tag(sync=True)
    reply_chars = t.Int(60, help="probe replies longer than this are cut in the table (full text on "
                        "hover and click)").tag(sync=True)
    show = t.Unicode(ALL, help=f"the experiment shown ('{ALL}' = every run)").tag(sync=True)
    show_options = t.List(t.Unicode(), [ALL], help="the experiment filter's choices").tag(sync=True)
    show_ladder = t.Bool(False, help="true when the experiment shown is a size ladder (the NLL-vs-size "
                         "chart shows)").tag(sync=True)
    run_options = t.List(t.Unicode(), help="finished runs with a saved model, the run pickers' "
                         "choices").tag(sync=True)
    run_a = t.Unicode("", help="the first run to compare ('' = none picked)").tag(sync=True)
    run_b = t.Unicode("", help="the second run to compare, diffed against the first").tag(sync=True)
    comparison_rows = t.List(t.Dict(), help="the last run comparison: `lab.present.comparison.make_row` rows "
                             "(prompt; run A, run B with its word diff against A)").tag(sync=True)
    comparison_info = t.Dict(help="run name -> one line about it (held-out NLL, examples) for the "
                             "comparison's header").tag(sync=True)
    state = t.Unicode("idle", help="idle | running | stopping | comparing | done | error").tag(sync=True)
    message = t.Unicode("", help="what just happened, for the status line").tag(sync=True)
    error = t.Unicode("", help="what went wrong and how to fix it ('' = nothing)").tag(sync=True)
    busy = t.Unicode("", help="what else the session is running ('' = free or this queue)").tag(sync=True)
    add_clicks = t.Int(0, help="incremented by the 'Add to queue' button").tag(sync=True)
    run_clicks = t.Int(0, help="incremented by the 'Run queue' button").tag(sync=True)
    stop_clicks = t.Int(0, help="incremented by the 'Stop' button").tag(sync=True)
    report_clicks = t.Int(0, help="incremented by the 'Report' button").tag(sync=True)
    compare_clicks = t.Int(0, help="incremented by the 'Compare runs' button").tag(sync=True)
    figure = _figure_trait("training loss per run (a Chart)")
    ladder = _figure_trait("held-out NLL against the number of examples, for a size ladder (a Chart)")

    def __init__(self, session, data: Examples, *, eval_data: Examples = (), probes: Examples = (),
                 runs_dir: str | Path | None = None,
                 config: TrainConfig | Callable[[], TrainConfig] | None = None,
                 gen: GenConfig | None = None, reply_chars: int = 60):
        """`session`: a `lab.session.Session` (its `.base` and `.tokenizer` are used); `runs_dir`:
        where runs are written and history is read (default: the session's runs folder);
        `config`: the base TrainConfig each variant overrides (or a callable giving it, e.g. the
        Train tab's `config`); `gen`: decoding of probe replies."""
        super().__init__(reply_chars=reply_chars, kinds=[
            {"key": key, "label": k.label, "hint": k.hint, "example": k.example, "values": k.values}
            for key, k in KINDS.items()])
        answer_while_cells_run(self)  # Stop while a cell waits for the queue
        self.session = session
        self._data, self._eval, self._probes, self._config = data, eval_data, probes, config
        self.runs_dir = Path(runs_dir) if runs_dir is not None else Path(session.runs_dir)
        self.gen = gen or GenConfig(max_new_tokens=64)
        self._lock = threading.RLock()
        self._throttle = Throttle(0.25)  # at most ~4 redraws per second from the training thread
        self._cards: dict[str, dict] = {}      # run name -> card (finished runs, oldest first)
        self._order: list[str] = []            # every run name, in the order first seen
        self._exp: dict[str, str] = {}         # run name -> its experiment
        self._group: dict[str, str] = {}       # run name -> its variant (the same over seeds)
        self._curves: dict[str, list[dict]] = {}
        self._progress: dict[str, StepInfo] = {}
        self._jobs: dict = {}                  # run name -> lab.experiments.Job of this view
        self._stopping = False
        self._updating = False                 # True while the view itself sets a picker
        self._picked: set[str] = set()         # pickers ("run_a", "run_b") the person chose in
        self._job = Job(self)                  # drives the queue (the queue's thread trains)
        self._compare_job = Job(self)          # loads two runs and generates
        self.queue = Queue(session, runs_dir=self.runs_dir, gen=self.gen,
                           on_step=self._on_step, on_run_end=self._on_run_end)
        self.figure = Chart(overlay_losses({}))
        self.ladder = Chart(ladder_figure([]))
        self._busy = BusyLine(self)
        self._busy.follow(session)
        self.observe(self._on_kind, "kind")
        self.observe(lambda _: None if self._updating else self.refresh(), "show")
        self.observe(self._on_pick, ["run_a", "run_b"])
        self.observe(lambda _: act(self, self.add), "add_clicks")
        self.observe(lambda _: act(self, self.run), "run_clicks")
        self.observe(lambda _: act(self, self.stop), "stop_clicks")
        self.observe(lambda _: act(self, self.write_report), "report_clicks")
        self.observe(lambda _: act(self, self.compare_in_background), "compare_clicks")
        self._on_kind({"new": self.kind})
        self._load_history()
        self.refresh()
        self.show_settings()

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

    def show_settings(self) -> None:
        """Say, beside the Run button, which settings the queued runs will train with (call it
        when the Train tab's settings change; `Lab` does)."""
        try:
            cfg, held_out = self._train_config(), len(self._eval_data())
        except Exception as err:  # a setting out of range in the Train tab: say which
            self.train_settings = f"The Train tab's settings are not valid yet: {error_text(err)}"
            return
        parts = []
        for s in train_settings(TrainConfig, panel=True):
            value = getattr(cfg, s["name"])
            if s["name"] == "max_steps":
                if value:
                    parts.append(f"{s['label']} {value}")
            elif s["name"] == "epochs":
                if not cfg.max_steps:
                    parts.append(f"{s['label']} {value:g}")
            elif s["name"] == "eval_split":
                parts.append(f"held-out set: {plural(held_out, 'example')} (every run scored on it)"
                             if held_out else f"{s['label']} {value:g}")
            elif isinstance(value, bool):
                parts.append(f"{s['label']} {'on' if value else 'off'}")
            else:
                parts.append(f"{s['label']} {value:g}" if isinstance(value, float) else f"{s['label']} {value}")
        source = "the Train tab's settings" if callable(self._config) else "these settings"
        self.train_settings = (f"Each run trains a fresh copy of the base model with {source}: "
                               + " · ".join(parts) + ". A variant changes only what it names (e.g. an lr sweep "
                               "the learning rate).")

    def _on_kind(self, change) -> None:
        """New kind: fill in its example values and say what to type (no values for some kinds)."""
        kind = KINDS[change["new"]]
        example, hint = kind.example, kind.hint
        if change["new"] == "drop_tag":
            try:
                found = data_tags(self.data())
            except Exception:  # bad data is reported when adding, not here
                found = []
            example = found[0] if found else ""
            hint += f"; tags in the data: {', '.join(found) or 'none'}"
        with self.hold_trait_notifications():
            self.params, self.hint = example, hint

    def _on_pick(self, change) -> None:
        if not self._updating:
            self._picked.add(change["name"])

    # -- actions ----------------------------------------------------------------------------
    def add(self, kind: str | None = None, values: str | None = None,
            experiment: str | None = None, seeds: int | None = None) -> list[str]:
        """Queue the runs of one experiment (default: what the form shows), each variant over
        `seeds` seeds; return run names."""
        kind = kind or self.kind
        values = self.params if values is None else values
        name = (experiment if experiment is not None else self.experiment).strip() or kind
        seeds = self.seeds if seeds is None else seeds
        if seeds > MAX_SEEDS:
            raise ValueError(f"seeds: at most {MAX_SEEDS} runs per variant")
        data = self.data()
        if not data:
            raise ValueError("there are no training examples yet: add some first")
        variants = make_variants(kind, values, tags=data_tags(data), n_examples=len(data), seeds=seeds)
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
        then = "They join the running queue." if self.running else "Press Run queue."
        self.message = (f"Queued {plural(len(names), 'run')} of experiment '{exp}'{renamed}: "
                        f"{', '.join(v.name for v in variants)}. {then}")
        self.refresh()
        self.show_settings()
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
        """Start training the queued runs, one after another, in the background."""
        if self.running:
            self.message = "The queue is running; runs you add join it."
            return
        if not any(j.status == "queued" for j in self.queue.jobs):
            raise ValueError("nothing is queued: define a variant and press 'Add to queue' first")
        self.show_settings()
        self.queue.config = self._train_config()
        self.queue.eval_data, self.queue.probes = self._eval_data(), self.probes()
        self._stopping = False
        self.queue.start(by=self)  # Busy, naming what runs, if the session is doing something else
        self.state, self.message = "running", "Running the queue…"
        self._job.start(None, "", self._drive, name="sftlab-experiments")

    def _drive(self) -> None:
        """(the driver's thread) Work through the queue, including runs added while it ran;
        then hand the redraw to the main thread."""
        try:
            while True:
                self.queue.wait()
                if self._stopping or not any(j.status == "queued" for j in self.queue.jobs):
                    break
                self.queue.start(by=self)
        finally:
            on_main(self._finished)

    def _finished(self) -> None:
        counts = Counter(job.status for job in self._jobs.values())
        self.state = "done"
        self.message = "Queue finished: " + ", ".join(f"{v} {k}" for k, v in counts.items()) + "."
        self.refresh()

    def stop(self) -> None:
        """End the current run at its next step (its model is kept) and cancel the queued ones."""
        self._stopping = True
        self.queue.stop()
        if self.running:
            self.state, self.message = "stopping", "Stopping after the current step…"

    def write_report(self) -> Path:
        """Write the one-file HTML report (`lab.present.report`) of the experiment shown, or of the
        whole runs folder, beside its runs."""
        folder = self.runs_dir if self.show == ALL else self.runs_dir / slug(self.show)
        out = report(folder, folder / "report.html")
        self.message = f"Report written: {out} (one file; opens offline in any browser)."
        return out

    @property
    def running(self) -> bool:
        """True while the queue is being worked through."""
        return self._job.running

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

    def wait(self, timeout: float | None = None) -> None:
        """Block until the queue and any comparison have finished (for scripts and tests),
        applying their changes; raise the view's error if one of them failed."""
        join(self._job.thread, timeout)
        join(self._compare_job.thread, timeout)
        if self.state == "error":
            raise RuntimeError(self.error)

    # -- events from the queue's thread (they only report) -----------------------------------
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
        return self.show == ALL or self._exp.get(name) == self.show

    def _status(self) -> list[dict]:
        """One row per run shown: `{run, status, step, total, note, detail}`."""
        rows = []
        with self._lock:
            for name in self._order:
                if not self._visible(name):
                    continue
                job, card, info = self._jobs.get(name), self._cards.get(name), self._progress.get(name)
                status = job.status if job else (card or {}).get("status", "?")
                step = info.step if info else (card or {}).get("steps", 0)
                total = info.total_steps if info else (card or {}).get("total_steps", 0)
                detail = ""
                if card and card.get("error"):
                    detail = (f"{card['error'].strip()}\n\nThe traceback is in "
                              f"{Path(card.get('path') or '.') / 'run.json'}.")
                rows.append({"run": name, "status": status, "step": step or 0, "total": total or 0,
                             "note": self._note(status, card, info), "detail": detail})
        return _plain(rows)

    @staticmethod
    def _note(status: str, card: dict | None, info: StepInfo | None) -> str:
        if card and card.get("error"):
            return failure_message(card["error"])
        if status == "running" and info:
            return f"loss {info.loss:.3f} · {info.tokens_per_second:.0f} tok/s · about {info.eta:.0f} s left"
        if card and isinstance(card.get("final_loss"), float) and math.isfinite(card["final_loss"]):
            return f"final loss {card['final_loss']:.3f} in {card.get('seconds', 0):.1f} s"
        return ""

    def refresh(self, tables: bool = True) -> None:
        """Redraw the status table and the overlay (and with `tables`, the NLL tables, the
        filter's and the run pickers' choices). On the main thread."""
        with self._lock:
            rows = self._status()
            curves = {n: self._curves[n] for n in self._order if n in self._curves and self._visible(n)}
            dashed = [n for n, c in self._cards.items() if is_full_sequence(c)]
            groups: dict[str, list[str]] = {}
            for n in curves:
                groups.setdefault(self._group.get(n, n), []).append(n)
            visible = [c for n, c in self._cards.items() if self._visible(n)]
            cards = dict(self._cards)
            experiments = [ALL] + list(dict.fromkeys(self._exp[n] for n in self._order))
        self.status_rows = rows
        self.figure.show(overlay_losses(curves, dashed=dashed, groups=groups))
        if not tables:
            return
        seeded = any(len(v) > 1 for v in groups.values())
        sizes = {c.get("n_examples") for c in visible if (c.get("variant") or {}).get("transform") == "subsample"}
        ladder = self.show != ALL and len(sizes) >= 3 and all(
            (c.get("variant") or {}).get("transform") == "subsample" for c in visible)
        if ladder:
            self.ladder.show(ladder_figure(visible))
        with self.hold_trait_notifications():
            self.nll_rows = _plain(nll_table_rows(visible))
            self.variant_rows = _plain(group_rows(visible)) if seeded else []
            self.show_ladder = ladder
        self._update_choices(experiments, cards)  # not held: its observers must see `_updating`

    def _update_choices(self, experiments: list[str], cards: dict[str, dict]) -> None:
        """Keep the experiment filter and the run pickers in step with the runs. A picker the
        person has not touched follows the newest runs (A: the one before last, B: the last)."""
        runs = [n for n, c in cards.items() if c.get("status") in ("done", "stopped") and _has_model(c)]
        newest = {"run_a": runs[-2] if len(runs) > 1 else "", "run_b": runs[-1] if runs else ""}
        self._updating = True
        try:
            self.show_options = experiments
            if self.show not in experiments:
                self.show = ALL
            if self.run_options != runs:
                self.run_options = runs
                for key in ("run_a", "run_b"):
                    keep = getattr(self, key) if key in self._picked and getattr(self, key) in runs else newest[key]
                    setattr(self, key, keep)
        finally:
            self._updating = False

    # -- two runs side by side --------------------------------------------------------------
    def _plan(self, a: str | None, b: str | None, prompts: list[str] | None):
        """Check the choice of runs and prompts; return (a, b, their cards, prompts)."""
        a, b = a or self.run_a, b or self.run_b
        if not a or not b:
            raise ValueError("pick two finished runs to compare (Run A and Run B)")
        if a == b:
            raise ValueError("pick two different runs to compare")
        with self._lock:
            cards = [self._cards.get(n) for n in (a, b)]
        for n, card in zip((a, b), cards):
            if not _has_model(card):
                raise ValueError(f"run {n} has no saved model to load")
        if prompts is None:
            prompts = self.probes() or list(dict.fromkeys(
                p["prompt"] for c in cards for p in c.get("probes") or []))
        if not prompts:
            raise ValueError("no prompts to compare on: give the view probes=[...]")
        return a, b, cards, list(prompts)

    def compare_in_background(self, a: str | None = None, b: str | None = None,
                              prompts: list[str] | None = None) -> None:
        """What 'Compare runs' does: check the choice at once, then load the two runs' models
        and generate in the background, through the session's job slot."""
        if self._compare_job.running:
            raise RuntimeError("a comparison is already loading; wait for it")
        a, b, cards, prompts = self._plan(a, b, prompts)
        self.run_a, self.run_b = a, b  # the pickers show the two runs compared
        before = self.state, self.message
        self.state, self.message = "comparing", f"Loading run {a} and generating…"
        try:
            self._compare_job.start(self.session, "comparing two runs (Experiments tab)", self._compare,
                                    a, b, cards, prompts, name="sftlab-compare-runs")
        except BaseException:  # Busy: the state stays what it was
            self.state, self.message = before
            raise

    def compare(self, a: str | None = None, b: str | None = None,
                prompts: list[str] | None = None) -> list[dict]:
        """Load runs `a` and `b`'s saved models (default: the picked ones) and show their
        replies side by side; blocks, and returns the rows (`lab.present.comparison.make_row`, B's
        reply diffed against A's). Prompts default to the view's probes, else the prompts
        stored in the two run cards."""
        self.error = ""
        self.compare_in_background(a, b, prompts)
        self._compare_job.wait()
        return self.comparison_rows

    def _compare(self, a: str, b: str, cards: list[dict], prompts: list[str]) -> None:
        """(the comparison's thread) One run's model in memory at a time, only while it answers."""
        replies = {}
        for n, card in zip((a, b), cards):
            self._compare_job.set(message=f"Loading run {n} and generating…")
            model, tok = load_model(str(Path(card["path"]) / "model"))
            replies[n] = generate(model, tok, prompts, self.gen)
            del model
        rows = [make_row(p, {a: replies[a][i], b: replies[b][i]}) for i, p in enumerate(prompts)]
        info = {n: " · ".join(x for x in (
            f"held-out NLL {c['eval_nll']:.3f}" if isinstance(c.get("eval_nll"), float) else "",
            f"{c['n_examples']} examples" if c.get("n_examples") is not None else "") if x)
            for n, c in zip((a, b), cards)}
        self._compare_job.set(comparison_rows=_plain(rows), comparison_info=info, state="done",
                              message=f"Compared runs {a} and {b} on {plural(len(prompts), 'prompt')}.")
