"""Lab: the dataset builder, train panel, compare view and experiments view in tabs, bound to
one session.

The model is loaded once, into a `lab.session.Session` the four views share, with its one
job slot: the builder's examples feed the train panel and the experiments, its probes feed
the compare view (and score the experiments), the experiments start from the train panel's
settings, and a model loaded in the train panel becomes the one every view uses.
"""
from __future__ import annotations

import ipywidgets
import traitlets

from lab.config import settings
from lab.session import Session

from .compare_view import CompareView
from .dataset_builder import DatasetBuilder
from .experiments_view import ExperimentsView
from .train_panel import TrainPanel


class Lab(ipywidgets.Tab):
    """`Lab()` in a cell shows the whole workflow; `.builder`, `.trainer`, `.compare`,
    `.experiments` drive it."""

    def __init__(self, model: str = "default", path: str | None = "sftlab_dataset.jsonl", *,
                 starter: str | None = None, session: Session | None = None, runs_dir=None,
                 save: bool = True, challenge=None, teacher: bool = False):
        """`model`: loaded once (unless a `session` is given); `path`: the dataset autosave
        file; `starter`: a starter set to load when there is no autosaved work; `runs_dir`:
        where runs are stored and found again after a restart (default: the session's);
        `challenge`: a class challenge folder: its task, budget and Submit above the Dataset
        tab, its model and public probes in the lab; `teacher`: add its Gallery as a tab."""
        ch = None
        if challenge is not None:
            from lab.classroom.challenge import load as load_challenge

            ch = load_challenge(challenge)
            model = ch.model
        self.session = session or Session(model, runs_dir=runs_dir)
        runs_dir = runs_dir or self.session.runs_dir
        self.builder = DatasetBuilder(tokenizer=self.session.tokenizer, path=path, starter=starter)
        self.trainer = TrainPanel(self.session, self.builder.examples, probes=self.builder.probes,
                                  runs_dir=runs_dir, save=save, max_length=self.builder.max_length)
        self.compare = CompareView(self.session, self.builder.probes)
        self.compare.example_number = self._example_number
        self.experiments = ExperimentsView(
            self.session, lambda: self.builder.examples, eval_data=lambda: self.builder.probes,
            probes=lambda: self.builder.probes, runs_dir=runs_dir, config=self.trainer.config)
        tabs = [self.builder, self.trainer, self.compare, self.experiments]
        titles = ["1 · Dataset", "2 · Train", "3 · Compare", "4 · Experiments"]
        self.challenge = self.gallery = None
        if ch is not None:
            tabs[0] = self._challenge_tab(ch, path, teacher)
            if teacher:
                from .gallery import Gallery

                self.gallery = Gallery(ch)
                tabs.append(self.gallery)
                titles.append("5 · Gallery")
        super().__init__(children=tabs, titles=titles)
        self.add_class("sftlab-app")
        traitlets.link((self.builder, "max_length"), (self.trainer, "max_length"))
        traitlets.link((self.builder, "completion_only"), (self.trainer, "completion_only"))
        self.builder.observe(self._on_data, ["rows", "starter"])
        self.trainer.observe(self._on_session, "session")
        # the Experiments tab says which of the Train tab's settings its runs will use
        self.trainer.observe(lambda _: self.experiments.show_settings(),
                             [s["name"] for s in settings(panel=True)])

    def _challenge_tab(self, ch, path, teacher: bool):
        """The Dataset tab with the challenge above it; the challenge's public probes become
        the lab's probes when the dataset has none yet."""
        from .challenge_panel import ChallengePanel

        if not self.builder.probes:
            self.builder.set_examples(self.builder.examples, [p.conv for p in ch.probes])
        state = f"{path}.challenge.json" if path else None
        self.challenge = ChallengePanel(ch, self.session, lambda: self.builder.examples, state_path=state)
        self.builder.observe(lambda _: self.challenge.update_count(), "rows")
        return ipywidgets.VBox([self.challenge, self.builder])

    def _example_number(self, prompt: str, response: str) -> int | None:
        """The number (from 1) the Dataset tab shows for a training example, found by its text."""
        return next((i for i, c in enumerate(self.builder.examples, 1)
                     if c.prompt == prompt and c.response == response), None)

    def _on_data(self, _change) -> None:
        self.trainer.set_examples(self.builder.examples)
        self.trainer.set_probes(self.builder.probes)
        self.compare.set_probes(self.builder.probes)
        self.experiments.show_settings()  # the held-out set (the builder's probes) may have changed

    def _on_session(self, change) -> None:
        self.session = change["new"]
        self.compare.session = self.session
        if self.session is not None:
            self.builder.tokenizer = self.session.tokenizer
            self.experiments.set_session(self.session)
