"""Two stored runs side by side: pick them, load their models, show their replies with a diff.

Part of the experiments view. The session's CompareView compares its base and tuned models;
this compares any two finished what-if runs, loading each run's saved model from its folder
(`<run>/model`) only while it answers, so at most one extra model is in memory at a time.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

import ipywidgets as w

from lab.comparison import make_row
from lab.generate import GenConfig, generate
from lab.models import load_model

from lab.runs import has_model

from . import _experiments_html as H
from ._common import assign, error_text, join, on_main


def _has_model(card: dict | None) -> bool:
    return card is not None and has_model(card.get("path") or "")


class RunComparison(w.VBox):
    """Run A and Run B pickers, a "Compare runs" button, and the replies table.

    `prompts()` gives the prompts to ask (e.g. the view's current probes; when it gives none,
    the prompts stored in the two run cards are used); `on_error(text)` shows a failure
    ('' clears it); `start_job(what, fn)` runs `fn` in the background through the session's
    job slot (`lab.session.Session.start_job`), so the comparison waits for nothing else.
    """

    def __init__(self, prompts: Callable[[], list[str]], on_error: Callable[[str], None],
                 start_job: Callable, gen: GenConfig | None = None):
        self._prompts, self._on_error, self.gen = prompts, on_error, gen or GenConfig(max_new_tokens=64)
        self._start_job = start_job
        self._cards: dict[str, dict] = {}
        self._thread: threading.Thread | None = None
        self._updating = False          # True while the view itself sets the pickers
        self._picked: set[str] = set()  # pickers ("a", "b") the person has chosen in
        self.rows: list[dict] = []      # the last comparison, as `lab.comparison.make_row` rows
        wide = {"style": {"description_width": "initial"}, "layout": w.Layout(width="340px")}
        self.run_a = w.Dropdown(description="Run A", **wide)
        self.run_b = w.Dropdown(description="Run B", **wide)
        self.button = w.Button(description="Compare runs", icon="columns")
        self.html = w.HTML()
        for widget, cls in ((self.run_a, "sftlab-exp-run-a"), (self.run_b, "sftlab-exp-run-b"),
                            (self.button, "sftlab-exp-compare"), (self.html, "sftlab-exp-compare-view")):
            widget.add_class(cls)
        for key, dd in (("a", self.run_a), ("b", self.run_b)):
            dd.observe(lambda _, key=key: None if self._updating else self._picked.add(key), "value")
        self.button.on_click(lambda _: self.compare_in_background())
        super().__init__([w.HBox([self.run_a, self.run_b, self.button]), self.html])

    def set_runs(self, cards: dict[str, dict]) -> None:
        """Offer the runs (name -> card) that have a saved model. A picker the person has not
        touched follows the newest runs (A: the one before last, B: the last)."""
        self._cards = dict(cards)
        runs = [n for n, c in cards.items() if c.get("status") in ("done", "stopped") and _has_model(c)]
        newest = {"a": runs[-2] if len(runs) > 1 else None, "b": runs[-1] if runs else None}
        self._updating = True
        try:
            for key, dd in (("a", self.run_a), ("b", self.run_b)):
                if list(dd.options) != runs:
                    keep = dd.value if key in self._picked and dd.value in runs else newest[key]
                    dd.options = runs
                    dd.value = keep
        finally:
            self._updating = False
        self.button.disabled = len(runs) < 2 or self.running
        self.button.tooltip = "" if len(runs) >= 2 else "Two finished runs with saved models are needed"

    def _plan(self, a: str | None, b: str | None, prompts: list[str] | None):
        """Check the choice of runs and prompts; return (a, b, their cards, prompts)."""
        a, b = a or self.run_a.value, b or self.run_b.value
        if not a or not b:
            raise ValueError("pick two finished runs to compare (Run A and Run B)")
        if a == b:
            raise ValueError("pick two different runs to compare")
        cards = [self._cards.get(n) for n in (a, b)]
        for n, card in zip((a, b), cards):
            if not _has_model(card):
                raise ValueError(f"run {n} has no saved model to load")
        if prompts is None:
            prompts = self._prompts() or list(dict.fromkeys(
                p["prompt"] for c in cards for p in c.get("probes") or []))
        if not prompts:
            raise ValueError("no prompts to compare on: give the view probes=[...]")
        return a, b, cards, list(prompts)

    def compare(self, a: str | None = None, b: str | None = None,
                prompts: list[str] | None = None) -> list[dict]:
        """Load runs `a` and `b` (default: the picked ones), reply to the prompts, show the table.

        Returns `lab.comparison.make_row` rows, B's reply diffed against A's. Blocks; the
        button runs it in a background thread.
        """
        a, b, cards, prompts = self._plan(a, b, prompts)
        replies = {}
        for n, card in zip((a, b), cards):
            assign(self.html, value=f"<span class='sftlab-muted'>Loading {H._e(n)} and generating…</span>")
            model, tok = load_model(str(Path(card["path"]) / "model"))
            replies[n] = generate(model, tok, prompts, self.gen)
            del model  # an extra model in memory only while it answers
        self.rows = [make_row(p, {a: replies[a][i], b: replies[b][i]}) for i, p in enumerate(prompts)]
        info = {n: f"held-out NLL {H._num(c.get('eval_nll'))} · {c.get('n_examples', '?')} examples"
                for n, c in zip((a, b), cards)}
        assign(self.html, value=H.compare_table(self.rows, info))
        return self.rows

    def compare_in_background(self) -> None:
        """What the button does: check the choice at once, then load and generate off-thread."""
        self._on_error("")

        def work():
            try:
                self.compare(a, b, prompts)
            except Exception as err:  # e.g. a run folder deleted meanwhile: say so in the panel
                assign(self.html, value="")
                on_main(self._on_error, error_text(err))
            finally:
                assign(self.button, disabled=False)

        try:
            if self.running:
                raise RuntimeError("a comparison is already loading; wait for it")
            a, b, _, prompts = self._plan(None, None, None)
            self._thread = self._start_job("comparing two runs (Experiments tab)", work)
        except Exception as err:  # a bad choice, or the session busy: say so in the panel
            self._on_error(error_text(err))
            return
        self.button.disabled = True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> None:
        join(self._thread, timeout)
