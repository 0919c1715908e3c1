"""Lab: the dataset builder, train panel and compare view in tabs, bound to one session.

The model is loaded once, into a `lab.session.Session` the three views share: the builder's
examples feed the train panel, its probes feed the compare view, and a model loaded in the
train panel becomes the one the builder tokenizes with and the compare view generates with.
"""
from __future__ import annotations

import ipywidgets
import traitlets

from lab.session import Session

from .compare_view import CompareView
from .dataset_builder import DatasetBuilder
from .train_panel import TrainPanel


class Lab(ipywidgets.Tab):
    """`Lab()` in a cell shows the whole workflow; `.builder`, `.trainer`, `.compare` drive it."""

    def __init__(self, model: str = "default", path: str | None = "sftlab_dataset.jsonl", *,
                 starter: str | None = None, session: Session | None = None, runs_dir=None,
                 save: bool = True):
        """`model`: loaded once (unless a `session` is given); `path`: the dataset autosave
        file; `starter`: a starter set to load when there is no autosaved work."""
        self.session = session or Session(model, runs_dir=runs_dir)
        self.builder = DatasetBuilder(tokenizer=self.session.tokenizer, path=path, starter=starter)
        self.trainer = TrainPanel(self.session, self.builder.examples, probes=self.builder.probes,
                                  runs_dir=runs_dir, save=save, max_length=self.builder.max_length)
        self.compare = CompareView(self.session, self.builder.probes)
        super().__init__(children=[self.builder, self.trainer, self.compare],
                         titles=["1 · Dataset", "2 · Train", "3 · Compare"])
        self.add_class("sftlab-app")
        traitlets.link((self.builder, "max_length"), (self.trainer, "max_length"))
        traitlets.link((self.builder, "completion_only"), (self.trainer, "completion_only"))
        self.builder.observe(self._on_data, ["rows", "starter"])
        self.trainer.observe(self._on_session, "session")

    def _on_data(self, _change) -> None:
        self.trainer.set_examples(self.builder.examples)
        self.trainer.set_probes(self.builder.probes)
        self.compare.set_probes(self.builder.probes)

    def _on_session(self, change) -> None:
        self.session = change["new"]
        self.compare.session = self.session
        if self.session is not None:
            self.builder.tokenizer = self.session.tokenizer
