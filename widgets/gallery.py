"""Gallery: a class challenge's submissions for the teacher, refreshed as they land.

A leaderboard (held-out NLL, checks passed, examples, tokens, duplicates, diversity, probe
topics covered), the submissions that are broken or still being written (listed, never in
the way), what separates the top third from the rest, one submission opened (its dataset and
its replies to the public probes) or two side by side (the second's replies diffed against
the first's), and an export of the whole class as one offline HTML file. Everything comes
from the submission folders (`lab.classroom.gallery`); no model is loaded.

A watcher thread looks at the submissions folder every `every` seconds and, when something
landed, hands the refresh to the kernel's main thread (`on_main`): it only reports.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import anywidget
import traitlets as t

from lab import runs
from lab.classroom import store
from lab.classroom.challenge import Challenge, load
from lab.classroom.gallery import export_html, flat, leaderboard, separates
from lab.present.textdiff import word_diff

from ._common import CSS, act, answer_while_cells_run, esm, on_main


class Gallery(anywidget.AnyWidget):
    """`Gallery(DIR)` in a cell; `.refresh()`, `.show(a, b=None)`, `.export(path)` drive it."""

    _esm = esm("gallery.js")
    _css = CSS

    challenge = t.Dict(help="what the class sees of the challenge (no held-out text)").tag(sync=True)
    rows = t.List(t.Dict(), help="the leaderboard, best first: one row per participant (latest "
                  "working submission)").tag(sync=True)
    broken = t.List(t.Dict(), help="submissions broken or being written: {folder, name, status, problem}").tag(sync=True)
    separates = t.List(t.Dict(), help="per trait, its mean in the top third and in the rest").tag(sync=True)
    opened = t.List(t.Unicode(), help="folders of the one or two submissions shown below the table").tag(sync=True)
    detail = t.List(t.Dict(), help="per opened submission: {folder, name, rank, dataset [{prompt, "
                    "response}], replies [{prompt, reply, diff}]}; diff: word pieces against the first").tag(sync=True)
    refresh_clicks = t.Int(0, help="incremented by the Refresh button").tag(sync=True)
    export_path = t.Unicode("class_gallery.html", help="where Export writes the HTML").tag(sync=True)
    export_clicks = t.Int(0, help="incremented by the Export button").tag(sync=True)
    updated = t.Unicode("", help="when the table was last read").tag(sync=True)
    message = t.Unicode("", help="what just happened").tag(sync=True)
    error = t.Unicode("", help="what went wrong and how to fix it").tag(sync=True)

    def __init__(self, challenge: Challenge | str | os.PathLike, *, every: float = 2.0, **kwargs):
        """`every`: seconds between looks at the submissions folder (0: only on Refresh)."""
        self.ch = challenge if isinstance(challenge, Challenge) else load(challenge)
        super().__init__(challenge=self.ch.public(), **kwargs)
        answer_while_cells_run(self)
        self._signature = None
        self._closed = threading.Event()
        self.observe(lambda _: act(self, self.refresh), "refresh_clicks")
        self.observe(lambda _: act(self, lambda: self.export(self.export_path)), "export_clicks")
        self.observe(lambda _: act(self, self._show_opened), "opened")
        self.refresh()
        if every:
            threading.Thread(target=self._watch, args=(every,), daemon=True, name="sftlab-gallery").start()

    def _watch(self, every: float) -> None:
        while not self._closed.wait(every):
            try:
                sig = store.signature(self.ch.submissions)
            except OSError:
                continue
            if sig != self._signature:
                on_main(self.refresh)

    def close(self) -> None:
        self._closed.set()
        super().close()

    # -- reading the folder -----------------------------------------------------------------------
    def refresh(self) -> None:
        """Read the submissions again (what the watcher does when something changed)."""
        self._signature = store.signature(self.ch.submissions)
        board = leaderboard(self.ch)
        self._board = board
        with self.hold_trait_notifications():
            self.rows = [_plain(flat(r)) for r in board["rows"]]
            self.broken = [{k: r.get(k, "") for k in ("folder", "name", "status", "problem")} for r in board["broken"]]
            self.separates = separates(board["rows"])
            from time import strftime
            self.updated = strftime("%H:%M:%S")
        self._show_opened()

    def show(self, a: str, b: str | None = None) -> None:
        """Show submission `a` (a participant's name or folder), or `a` and `b` side by side."""
        self.opened = [self._folder(x) for x in (a, b) if x]

    def _folder(self, who: str) -> str:
        for r in self._board["rows"]:
            if who in (r["folder"], r["name"], r.get("participant")):
                return r["folder"]
        raise ValueError(f"no submission by {who!r}; the leaderboard has "
                         f"{', '.join(r['name'] for r in self._board['rows']) or 'none yet'}")

    def _show_opened(self) -> None:
        by_folder = {r["folder"]: r for r in self._board["rows"]}
        shown = [by_folder[f] for f in self.opened if f in by_folder][:2]
        first = {p["prompt"]: p["reply"] for p in (shown[0].get("public_replies") or [])} if shown else {}
        detail = []
        for i, r in enumerate(shown):
            replies = [{"prompt": p["prompt"], "reply": p["reply"],
                        "diff": word_diff(first.get(p["prompt"], ""), p["reply"]) if i else None}
                       for p in r.get("public_replies") or []]
            data = [{"prompt": c["prompt"], "response": c["response"]} for c in _dataset(Path(r["path"]))]
            detail.append({"folder": r["folder"], "name": r["name"], "rank": r["rank"], "dataset": data,
                           "replies": replies, "nll": _plain((r.get("scores") or {}).get("held_out_nll"))})
        self.detail = detail

    def export(self, path: str | os.PathLike = "class_gallery.html") -> Path:
        """The whole class as one offline HTML file (no held-out text in it)."""
        out = export_html(self.ch, path)
        self.message = f"Wrote {out}: the class in one file, opens offline."
        return out


def _dataset(folder: Path) -> list[dict]:
    out = []
    for r in runs.read_jsonl(folder / runs.DATASET):
        msgs = r.get("messages") or []
        out.append({"prompt": "\n".join(str(m.get("content") or "") for m in msgs if m.get("role") == "user"),
                    "response": "\n".join(str(m.get("content") or "") for m in msgs if m.get("role") == "assistant")})
    return out


def _plain(value):
    import math

    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
