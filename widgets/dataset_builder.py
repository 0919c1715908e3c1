"""DatasetBuilder: write and curate SFT examples in the notebook, and see what training sees.

An editable list of examples (system text, instruction, response; multi-turn records show
every turn), starter sets, import (upload or path), export to JSONL, and for each example its
token count, warnings and the loss mask: which tokens the model is trained to predict.
Every edit is saved atomically to `path`, and reloaded on construction (with the starter it
came from and its probes), so a kernel crash or restart loses nothing; a list that is replaced
(a starter loaded over it) is kept in a numbered backup beside it.

The front end edits `rows` (chat-`messages` records, the lab's JSONL form); everything else
is computed here from `lab/` (parse, validate, mask preview, histogram).
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import anywidget
import traitlets as t

from lab.present import plots
from lab.data import starters
from lab.atomic import write_json
from lab.config import TrainConfig
from lab.data.dataio import parse_record, read_dataset, read_text, write_jsonl
from lab.masks import token_preview
from lab.models import load_tokenizer
from lab.records import Conversation
from lab.data.review import review
from lab.data.validate import check_dataset

from .chart import Chart
from ._common import CSS, answer_while_cells_run, error_text, esm

_EDIT_FAILED = "an edit could not be applied: "
BACKUPS_KEPT = 20  # numbered backups of replaced lists kept beside the autosave file


class DatasetBuilder(anywidget.AnyWidget):
    """Edit a dataset in the browser; `.examples` gives it to Python as `Conversation`s."""

    _esm = esm("dataset_builder.js")
    _css = CSS

    rows = t.List(t.Dict(), help="the examples as chat-messages records ({messages, tags?, id?}); "
                  "the front end edits them, Python validates and autosaves").tag(sync=True)
    selected = t.Int(-1, help="index of the example shown in detail, -1 for none").tag(sync=True)
    query = t.Unicode("", help="search text that filters the list (applied in the browser)").tag(sync=True)
    reviews = t.List(t.Dict(), help="per example: {tokens, trained, warnings}").tag(sync=True)
    summary = t.Dict(help="dataset counts, token spread and dataset-level issues").tag(sync=True)
    preview = t.List(help="the selected example's tokens as [text, trained, cut] "
                     "(cut: beyond max_length)").tag(sync=True)
    max_length = t.Int(TrainConfig.max_length, help="tokens per example in training; longer ones are cut").tag(sync=True)
    completion_only = t.Bool(True, help="loss on response tokens only (else on every token)").tag(sync=True)
    has_tokenizer = t.Bool(False, help="False: token counts and the mask preview are unavailable").tag(sync=True)
    starters = t.List(t.Unicode(), help="names of the starter sets").tag(sync=True)
    starter = t.Unicode("", help="the loaded starter set ('' when none)").tag(sync=True)
    starter_notes = t.Unicode("", help="the loaded starter's README: what it teaches").tag(sync=True)
    starter_choice = t.Unicode("", help="the starter picked in the dropdown").tag(sync=True)
    load_clicks = t.Int(0, help="incremented by the 'Load starter' button").tag(sync=True)
    upload = t.Dict(help="{name, text} of a file picked in the browser; cleared once imported").tag(sync=True)
    import_path = t.Unicode("", help="a dataset path typed for import").tag(sync=True)
    import_clicks = t.Int(0, help="incremented by the 'Import path' button").tag(sync=True)
    export_path = t.Unicode("sftlab_export.jsonl", help="where 'Export' writes JSONL").tag(sync=True)
    export_clicks = t.Int(0, help="incremented by the 'Export' button").tag(sync=True)
    path = t.Unicode("", help="the autosave file ('' = no autosave)").tag(sync=True)
    message = t.Unicode("", help="what just happened, for the status line").tag(sync=True)
    error = t.Unicode("", help="what went wrong and how to fix it ('' = nothing)").tag(sync=True)
    histogram = anywidget.WidgetTrait().tag(sync=True)

    def __init__(self, examples=None, *, tokenizer="default", path: str | os.PathLike | None =
                 "sftlab_dataset.jsonl", max_length: int = TrainConfig.max_length, starter: str | None = None,
                 **kwargs):
        """`examples`: Conversations or records in any format `lab.data.dataio` reads; `tokenizer`: a
        tokenizer, a model name to load one for, or None; `starter`: loaded when there is
        neither `examples` nor an autosave file to restore."""
        names = starters.names()
        super().__init__(max_length=max_length, path=str(path or ""), starters=names,
                         starter_choice=names[0] if names else "", **kwargs)
        answer_while_cells_run(self)
        self._convs: list[Conversation] = []
        self._probes: list[Conversation] = []
        self._tokenizer = None
        self.histogram = Chart(plots.length_histogram([], max_length))
        if isinstance(tokenizer, str):
            try:
                tokenizer = load_tokenizer(tokenizer)
            except Exception as err:  # no tokenizer only disables token counts; say why
                self.error = f"no tokenizer, so no token counts or mask preview: {error_text(err)}"
                tokenizer = None
        self._tokenizer = tokenizer
        self.has_tokenizer = tokenizer is not None
        self.observe(self._on_rows, "rows")
        self.observe(lambda _: self._refresh(), ["max_length", "completion_only"])
        self.observe(lambda _: self._update_preview(), "selected")
        self.observe(self._on_load_clicks, "load_clicks")
        self.observe(self._on_upload, "upload")
        self.observe(self._on_import_clicks, "import_clicks")
        self.observe(self._on_export_clicks, "export_clicks")
        restored = self._restore()
        if examples is not None:
            self.set_examples(examples)
        elif starter and not restored:
            self.load_starter(starter)
        elif not restored:
            self._refresh()

    # -- Python API -------------------------------------------------------------------------
    @property
    def examples(self) -> list[Conversation]:
        """The examples as they are now (every edit in the browser included)."""
        return list(self._convs)

    @property
    def probes(self) -> list[Conversation]:
        """Held-out probe prompts with reference answers, from the loaded starter set."""
        return list(self._probes)

    @property
    def tokenizer(self):
        return self._tokenizer

    @tokenizer.setter
    def tokenizer(self, tokenizer) -> None:
        """Use another model's tokenizer (token counts, mask preview) from now on."""
        self._tokenizer = tokenizer
        self.has_tokenizer = tokenizer is not None
        self._refresh()

    def set_examples(self, examples, probes=()) -> None:
        """Replace the examples (Conversations or records in any supported format), and the
        probes: held-out prompts with reference answers for the comparison."""
        convs = [parse_record(e, where=f"record {i}") for i, e in enumerate(examples, 1)]
        self._backup_if_replacing(convs)
        self._probes = [parse_record(p) for p in probes]
        if self.path:  # kept beside the autosave so a restart restores them too
            if self._probes:
                write_jsonl(self._sidecar("probes.jsonl"), self._probes)
            else:
                self._sidecar("probes.jsonl").unlink(missing_ok=True)
        self._set_starter("")
        self.rows = [c.to_json() for c in convs]
        self.selected = 0 if convs else -1

    def load_starter(self, name: str) -> None:
        """Replace the examples with a starter set; its probes become `.probes`."""
        convs = starters.load(name)  # ValueError names the sets there are
        self.set_examples(convs, starters.probes(name))
        self._set_starter(name)
        self.message = (f"Loaded starter '{name}': {len(convs)} examples and {len(self._probes)} "
                        "held-out probes." + self.message)

    def import_file(self, path: str | os.PathLike) -> int:
        """Add the examples of a JSONL/JSON/CSV file to the end of the list; return how many."""
        return self._append(read_dataset(Path(path)), str(path))

    def import_text(self, text: str, name: str) -> int:
        """Add examples from file text (an upload); `name` gives the format by its suffix."""
        return self._append(read_text(text, Path(name).suffix or "jsonl", source=name), name)

    def export(self, path: str | os.PathLike) -> Path:
        """Write the examples as JSONL (atomically) and return the path."""
        path = Path(path)
        if path.suffix.lower() != ".jsonl":
            raise ValueError(f"export writes JSONL; give a file name ending in .jsonl, not '{path.name}'")
        out = write_jsonl(path, self._convs)
        self.message = f"Exported {len(self._convs)} examples to {out}."
        return out

    # -- keeping state ----------------------------------------------------------------------
    def _restore(self) -> bool:
        """Reload the autosave file if there is one; an unreadable one is kept aside, not lost."""
        path = Path(self.path) if self.path else None
        if path is None or not path.is_file():
            return False
        try:
            if not path.read_text(encoding="utf-8").strip():
                return False
            convs = read_dataset(path)
        except Exception as err:  # whatever is wrong with it, the user's data must survive
            aside = path.with_name(path.name + ".unreadable")
            os.replace(path, aside)
            self.error = f"could not reload the autosave file: {error_text(err)}; it was moved to {aside}"
            return False
        if self._sidecar("probes.jsonl").is_file():
            try:
                self._probes = read_dataset(self._sidecar("probes.jsonl"))
            except Exception as err:  # probes are optional: restore the examples anyway
                self.error = f"could not reload the probes: {error_text(err)}"
        self.rows = [c.to_json() for c in convs]
        self.selected = 0
        self._restore_starter()
        self.message = (f"Restored {len(convs)} examples" + (f" and {len(self._probes)} probes"
                        if self._probes else "") + (f" (from starter '{self.starter}')"
                        if self.starter else "") + f" from {path} (autosave).")
        return True

    def _sidecar(self, suffix: str) -> Path:
        """A file kept beside the autosave file: `<stem>.<suffix>`."""
        path = Path(self.path)
        return path.with_name(f"{path.stem}.{suffix}")

    def _set_starter(self, name: str) -> None:
        """Note which starter the list came from ('' = none), in the widget and beside the
        autosave file, so that a restart shows the same starter and its notes."""
        self.starter = name
        if name:
            self.starter_choice = name
        self.starter_notes = starters.describe(name) if name else ""
        if self.path:
            write_json(self._sidecar("state.json"), {"starter": name})

    def _restore_starter(self) -> None:
        try:
            name = json.loads(self._sidecar("state.json").read_text()).get("starter") or ""
        except (OSError, ValueError, AttributeError):
            return
        if name in self.starters:
            self.starter = self.starter_choice = name
            self.starter_notes = starters.describe(name)

    def _backup_if_replacing(self, new: list[Conversation]) -> None:
        """Before the list is replaced, keep the old one in a numbered backup beside the
        autosave file (the newest `BACKUPS_KEPT` are kept)."""
        self.message = ""
        if not (self.path and self._convs) or new == self._convs:
            return
        stamp = time.strftime("%Y%m%d-%H%M%S")
        backup, n = self._sidecar(f"previous-{stamp}.jsonl"), 1
        while backup.exists():
            n += 1
            backup = self._sidecar(f"previous-{stamp}-{n}.jsonl")
        write_jsonl(backup, self._convs)
        for old in self.backups()[:-BACKUPS_KEPT]:
            old.unlink(missing_ok=True)
        self.message = f" Your previous {len(self._convs)} examples are in {backup}."

    def backups(self) -> list[Path]:
        """The backups of replaced lists beside the autosave file, oldest first."""
        if not self.path:
            return []
        stem = Path(self.path).stem
        return sorted(Path(self.path).parent.glob(f"{stem}.previous-*.jsonl"), key=lambda p: p.stat().st_mtime_ns)

    def _append(self, convs: list[Conversation], source: str) -> int:
        self.rows = self.rows + [c.to_json() for c in convs]
        brief = check_dataset(convs, self._tokenizer, self.max_length).brief()
        self.message = (f"Imported {len(convs)} examples from {source}; {len(self.rows)} in all."
                        + (f" {brief}" if brief else ""))
        return len(convs)

    def _on_rows(self, _change) -> None:
        try:
            self._convs = [parse_record(r, where=f"record {i}") for i, r in enumerate(self.rows, 1)]
        except Exception as err:  # the browser sent something unparseable: say so, keep the file
            self.error = f"{_EDIT_FAILED}{error_text(err)}"
            return
        if self.error.startswith(_EDIT_FAILED):
            self.error = ""
        if self.path:
            write_jsonl(self.path, self._convs)
        self._refresh()

    def _refresh(self) -> None:
        """Recompute reviews, summary, histogram and preview from the current examples."""
        reviews, report = review(self._convs, self._tokenizer, self.max_length, self.completion_only)
        self.reviews = [r.to_json() for r in reviews]
        lengths = [r.tokens for r in reviews if r.tokens is not None]
        self.summary = {
            **report.stats,
            "trained_within": (sum(bool(r.trained) for r in reviews)  # trainable at max_length
                               if self._tokenizer is not None else None),
            "warnings": sum(len(r.warnings) for r in reviews),
            "flagged": sum(bool(r.warnings) for r in reviews),
            "dataset_issues": [i.message for i in report.errors + report.warnings if i.index is None],
            "over_max_length": sum(n > self.max_length for n in lengths),
        }
        self.histogram.show(plots.length_histogram(lengths, self.max_length))
        self._update_preview()

    def _update_preview(self) -> None:
        i = self.selected
        if self._tokenizer is None or not 0 <= i < len(self._convs):
            self.preview = []
            return
        try:
            tokens = token_preview(self._convs[i], self._tokenizer, None, self.completion_only)
        except Exception as err:  # the warning list says it too; keep the preview empty
            self.preview = [[f"(cannot render: {err})", False, False]]
            return
        self.preview = [[text, trained, n >= self.max_length] for n, (text, trained) in enumerate(tokens)]

    # -- buttons and uploads from the browser ----------------------------------------------
    @contextlib.contextmanager
    def _reporting(self):
        """Run a browser action; show a failure in the widget instead of a log."""
        self.error = ""
        try:
            yield
        except Exception as err:  # any failure of a user action belongs in the panel
            self.message = ""
            self.error = error_text(err)

    def _on_load_clicks(self, _change) -> None:
        with self._reporting():
            self.load_starter(self.starter_choice)

    def _on_upload(self, change) -> None:
        if not change["new"]:
            return
        with self._reporting():
            self.import_text(change["new"].get("text", ""), change["new"].get("name", "upload.jsonl"))
        self.upload = {}

    def _on_import_clicks(self, _change) -> None:
        with self._reporting():
            if not self.import_path.strip():
                raise ValueError("type the path of a .jsonl, .json or .csv file to import first")
            self.import_file(self.import_path.strip())

    def _on_export_clicks(self, _change) -> None:
        with self._reporting():
            self.export(self.export_path.strip() or "sftlab_export.jsonl")
