"""CompareView: base and tuned replies to the same prompts, side by side, with a word diff.

Prompts are typed (one per line) or taken from the held-out probes of the starter set.
Both models decode with the same settings and seed, so differences come from training.
Replies recorded for earlier runs of the session appear as more columns. Reference mode
adds the reference answer's NLL under each model and a per-token probability heat map: the
training objective, measured on one example. Generation runs in a background thread and
streams into the table.

Three views explain the change: "What changed?" lists the tokens and phrases the tuning made
more and less likely (`lab.analysis.learned`); "Which examples?" under a tuned reply lists the run's
training examples that pushed that reply up or down (`lab.analysis.influence`, gradient similarity);
and, for a run that recorded a timeline, a step slider shows each probe's reply at each point
of the run, diffed against the point before.
"""
from __future__ import annotations

import os
from pathlib import Path

import anywidget
import traitlets as t

from lab.analysis import influence, timeline
from lab.present.comparison import make_row, write_table
from lab.generate import REPLY_TOKENS, GenConfig
from lab.analysis.learned import summarize
from lab.records import Conversation
from lab.session import Session
from lab.present.textdiff import word_diff

from ._common import CSS, act, BusyLine, Job, Throttle, answer_while_cells_run, esm, on_main, plural


def _tuned_reply(row: dict) -> str | None:
    """The tuned column's reply in a table row (None when the row has no tuned column)."""
    return next((c["reply"] for c in row["columns"] if c["name"] == "tuned"), None)


class CompareView(anywidget.AnyWidget):
    """Compare the session's base and tuned models; `.compare()`, `.wait()`, `.export()`."""

    _esm = esm("compare_view.js")
    _css = CSS

    source = t.Unicode("typed", help="where prompts come from: 'typed' (the text box) or "
                       "'probes' (held-out probes)").tag(sync=True)
    prompts = t.Unicode("", help="typed prompts, one per line (\\n for a line break)").tag(sync=True)
    references = t.Unicode("", help="optional reference answers, one per line, in the "
                           "prompts' order").tag(sync=True)
    probe_list = t.List(t.Dict(), help="the held-out probes: {prompt, system, reference}").tag(sync=True)
    decoding = t.Unicode("greedy", help="'greedy' (deterministic) or 'sampled'").tag(sync=True)
    temperature = t.Float(0.7, help="sampling temperature (when sampled)").tag(sync=True)
    max_new_tokens = t.Int(REPLY_TOKENS, help="upper bound on each reply's length").tag(sync=True)
    seed = t.Int(0, help="sampling seed, the same for every model").tag(sync=True)
    reference_mode = t.Bool(False, help="also score reference answers: NLL and per-token "
                            "probabilities under each model").tag(sync=True)
    show_diff = t.Bool(True, help="highlight words the tuned reply adds or drops").tag(sync=True)
    rows = t.List(t.Dict(), help="the table: {prompt, system, reference, columns: [{name, reply, "
                  "diff, similarity, nll, probs}]}").tag(sync=True)
    state = t.Unicode("idle", help="idle | running | done | error").tag(sync=True)
    progress = t.Dict(help="{done, total, stage} of the running job; `text`, when there, is the "
                      "whole progress line").tag(sync=True)
    message = t.Unicode("", help="what just happened, for the status line").tag(sync=True)
    error = t.Unicode("", help="what went wrong and how to fix it ('' = nothing)").tag(sync=True)
    compare_clicks = t.Int(0, help="incremented by the 'Compare' button").tag(sync=True)
    export_path = t.Unicode("sftlab_compare.csv", help="where 'Export table' writes (.csv or "
                            ".jsonl)").tag(sync=True)
    export_clicks = t.Int(0, help="incremented by the 'Export table' button").tag(sync=True)
    busy = t.Unicode("", help="what else the session is running ('' = free)").tag(sync=True)
    tuned_run = t.Unicode("", help="the run whose weights the tuned column shows ('' = base)").tag(sync=True)
    timeline = t.List(t.Dict(), help="the tuned run's timeline points: {step, rows: [{prompt, reply, "
                      "diff}], probe_nll, retention}").tag(sync=True)
    timeline_run = t.Unicode("", help="the run the timeline belongs to").tag(sync=True)
    learned = t.Dict(help="what the tuning promoted and suppressed: `lab.analysis.learned.summarize` on "
                     "the table's prompts, plus `source`").tag(sync=True)
    learned_clicks = t.Int(0, help="incremented by the 'What changed?' button").tag(sync=True)
    influence = t.Dict(help="the last 'Which examples?' answer: `lab.analysis.influence.explain`'s result plus "
                       "`row` (its table row) and `note` (the approximation in one sentence); {} = "
                       "none").tag(sync=True)
    influence_row = t.Int(-1, help="the table row whose tuned reply 'Which examples?' explains").tag(sync=True)
    influence_clicks = t.Int(0, help="incremented by a row's 'Which examples?' button").tag(sync=True)
    session = t.Instance(Session, allow_none=True, help="the lab session compared (not synced)")

    def __init__(self, session: Session | None = None, probes=(), **kwargs):
        super().__init__(**kwargs)
        answer_while_cells_run(self)
        self._probes: list[Conversation] = []
        self._job = Job(self)
        self.example_number = None  # (prompt, response) -> its number in the Dataset tab, set by Lab
        self._busy = BusyLine(self)
        self._off = None
        self.observe(self._on_session, "session")
        self.session = session
        self._on_session({"new": session})
        self.set_probes(probes)
        self.observe(self._on_prompts, "prompts")
        self.observe(lambda _: act(self, self.compare), "compare_clicks")
        self.observe(lambda _: act(self, self.explain_change), "learned_clicks")
        self.observe(lambda _: act(self, lambda: self.which_examples(self.influence_row)), "influence_clicks")
        self.observe(lambda _: act(self, lambda: self.export(self.export_path.strip())), "export_clicks")

    # -- Python API -------------------------------------------------------------------------
    def set_probes(self, probes) -> None:
        """Held-out prompts (Conversations; their responses are the reference answers)."""
        new = [p if isinstance(p, Conversation) else Conversation.single(p) for p in probes]
        if new == self._probes:
            return
        self._probes = new
        self.probe_list = [{"prompt": p.prompt, "system": p.system, "reference": p.response} for p in new]
        self.source = "probes" if new and not self.prompts.strip() else "typed"

    def _on_prompts(self, change) -> None:
        """Reference answers belong to their prompts: when the prompts change, each reference
        follows its prompt's line, and a new prompt has none (never another prompt's)."""
        refs = self.references.split("\n")
        mine = {p.strip(): refs[i] for i, p in enumerate(change["old"].split("\n"))
                if p.strip() and i < len(refs) and refs[i].strip()}
        follow = "\n".join(mine.get(p.strip(), "") for p in change["new"].split("\n")).rstrip("\n")
        if follow != self.references:
            self.references = follow

    def items(self) -> list[Conversation]:
        """The prompts the next comparison uses (with reference answers where known)."""
        if self.source == "probes":
            return list(self._probes)
        refs = self.references.split("\n")
        out = []
        for i, line in enumerate(self.prompts.split("\n")):
            if line.strip():
                ref = refs[i].strip() if i < len(refs) else ""
                out.append(Conversation.single(_unescape(line.strip()), _unescape(ref) if ref else None))
        return out

    def gen_config(self) -> GenConfig:
        if self.max_new_tokens < 1:
            raise ValueError("max new tokens must be at least 1")
        temperature = self.temperature if self.decoding == "sampled" else 0.0
        if self.decoding == "sampled" and temperature <= 0:
            raise ValueError("sampling needs a temperature above 0, e.g. 0.7")
        return GenConfig(max_new_tokens=self.max_new_tokens, temperature=temperature, seed=self.seed)

    def compare(self, prompts=None) -> None:
        """Start a comparison in the background (`prompts`: texts, or Conversations whose
        responses are reference answers; else the panel's prompts)."""
        if prompts is not None:
            convs = [p if isinstance(p, Conversation) else Conversation.single(p) for p in prompts]
            self.source = "typed"
            self.prompts = "\n".join(_escape(c.prompt) for c in convs)
            self.references = "\n".join(_escape(c.response or "") for c in convs)
        if self.session is None:
            raise RuntimeError("no model loaded yet: load one in the train panel first")
        if self.running:
            raise RuntimeError("a comparison is already running; wait for it to finish")
        items, cfg = self.items(), self.gen_config()
        if not items:
            raise ValueError("no prompts: type some (one per line) or choose the held-out probes")
        self.error = ""
        self._job.start(self.session, f"comparing {plural(len(items), 'prompt')} in the Compare tab",
                        self._compare, items, cfg, self.reference_mode, name="sftlab-compare")

    def explain_change(self) -> None:
        """Start "What changed?" in the background: the tokens and phrases the tuning made
        more and less likely, on the reference answers of the table's prompts (or, without
        references, on the tuned model's replies in the table)."""
        if self.session is None:
            raise RuntimeError("no model loaded yet: load one in the train panel first")
        items = self._explained_items()
        if not items:
            raise ValueError("nothing to explain yet: press Compare first (or give reference answers)")
        if not self.session.tuned_differs():
            raise ValueError("the tuned model is the base model: train (or load a run), then ask "
                             "what changed")
        self.error = ""
        self._job.start(self.session, "explaining what changed (Compare tab)", self._learned, items,
                        name="sftlab-learned")

    def _explained_items(self) -> list[Conversation]:
        """The table's prompts with their reference answers, else with the tuned replies."""
        out = []
        for row in self.rows:
            reply = row["reference"] or _tuned_reply(row)
            if reply:
                out.append(Conversation.single(row["prompt"], reply, system=row.get("system")))
        return out

    def _learned(self, items: list[Conversation]) -> None:
        self._job.set(state="running", message="",
                      progress={"done": 0, "total": 1, "stage": "scoring every token under both models"})
        changes = self.session.learned(items)
        refs = sum(bool(r["reference"]) for r in self.rows)
        learned = {**summarize(changes), "source": "reference answers" if refs == len(items)
                   else "the tuned model's replies" if not refs else
                   "reference answers and the tuned model's replies"}
        self._job.set(learned=learned, progress={"done": 1, "total": 1, "stage": "done"}, state="done",
                      message=f"What changed: scored {learned['tokens_scored']} tokens of "
                              f"{plural(len(items), 'reply', 'replies')}.")

    def which_examples(self, row: int) -> None:
        """Start "Which examples?" in the background: the training examples of the tuned model's
        run that pushed the tuned reply of table row `row` up or down (`lab.analysis.influence`); the
        answer shows under that row and is recorded in the run's `influence.jsonl`."""
        if self.session is None:
            raise RuntimeError("no model loaded yet: load one in the train panel first")
        if not 0 <= row < len(self.rows):
            raise ValueError("no such row in the table: press Compare first")
        r = self.rows[row]
        reply = _tuned_reply(r)
        current = self.session.current
        if not self.tuned_run or current is None:
            raise ValueError("the tuned column shows the base model: train (or load a run), compare, "
                             "then ask which examples taught a reply")
        if current.name != self.tuned_run:
            raise ValueError(f"the table shows run {self.tuned_run}'s replies, but the tuned model now "
                             f"holds run {current.name}: press Compare again first")
        if not reply:
            raise ValueError("this row has no tuned reply to explain")
        self.error = ""
        prompt = Conversation.single(r["prompt"], system=r.get("system"))
        self._job.start(self.session, "finding which examples taught a reply (Compare tab)", self._influence,
                        row, prompt, reply, name="sftlab-influence")

    def _influence(self, row: int, prompt: Conversation, reply: str) -> None:
        self._job.set(state="running", message="", influence={})
        throttle = Throttle(0.25)

        def progress(stage: str, done: int, total: int) -> None:
            if throttle.ready(done == total):
                self._job.set(progress={"done": done, "total": total, "stage": stage,
                                        "text": f"ranking training examples: gradient {done} of {total}"})

        result = self.session.which_examples(prompt, reply, on_progress=progress)
        if self.example_number is not None:  # number examples as the Dataset tab does
            for side in ("supporting", "opposing"):
                result[side] = [{**e, "number": self.example_number(e["prompt"], e["response"])}
                                for e in result[side]]
        self._job.set(influence={**result, "row": row, "note": influence.NOTE}, state="done",
                      message=f"Which examples: ranked the {plural(result['examples'], 'training example')} "
                              f"of run {self.tuned_run} for the tuned reply in row {row + 1}.")

    def show_timeline(self, run=None) -> None:
        """Show the timeline of `run` (a `lab.session.Run`, a run folder, or None for the run
        the tuned model holds) under the slider."""
        if run is None:
            run = self.session.current if self.session is not None else None
        if run is None:
            points, name = [], ""
        elif isinstance(run, (str, os.PathLike)):
            points, name = timeline.load(run), Path(run).name
        else:
            points = run.timeline or (timeline.load(run.out) if run.out else [])
            name = run.name
        self.timeline_run = name if points else ""
        self.timeline = [_timeline_point(points, i) for i in range(len(points))]

    @property
    def running(self) -> bool:
        """True while this view's comparison runs."""
        return self._job.running

    def wait(self, timeout: float | None = None) -> list[dict]:
        """Block until the comparison ends; return the rows, or raise if it failed."""
        self._job.wait(timeout)
        return self.rows

    def export(self, path: str) -> None:
        """Write the table as CSV or JSONL (by the suffix), atomically."""
        if not self.rows:
            raise ValueError("nothing to export yet: press Compare first")
        out = write_table(path or "sftlab_compare.csv", self.rows)
        self.message = f"Exported {len(self.rows)} rows to {out}."

    # -- the background job -----------------------------------------------------------------
    def _compare(self, items: list[Conversation], cfg: GenConfig, reference_mode: bool) -> None:
        s = self.session
        prompts = [c.prompt for c in items]
        trained = s.tuned_differs()
        tuned_run = s.current.name if trained and s.current else ""
        self._job.set(state="running", message="", influence={}, learned={}, tuned_run=tuned_run)
        replies = {"base": [""] * len(items), "tuned": [""] * len(items)}
        earlier = s.earlier_replies(prompts)
        total = len(items) * cfg.max_new_tokens * (2 if trained else 1)
        done, throttle = [0], Throttle(0.25)

        def push(stage: str, force: bool = False) -> None:
            if throttle.ready(force):
                self._job.set(progress={"done": min(done[0], total), "total": total, "stage": stage},
                              rows=[_row(c, {k: v[i] for k, v in replies.items()}, earlier)
                                    for i, c in enumerate(items)])

        for key, tuned, stage in (("base", False, "base model"), ("tuned", True, "tuned model")):
            if tuned and not trained:
                replies["tuned"] = list(replies["base"])
                continue

            def on_token(i: int, piece: str, key=key, stage=stage) -> None:
                replies[key][i] += piece
                done[0] += 1
                push(stage)

            replies[key] = s.reply(items, tuned=tuned, cfg=cfg, on_token=on_token)
            done[0] = len(items) * cfg.max_new_tokens * (2 if tuned else 1)
            push(stage, force=True)
        scores = self._score(items, total) if reference_mode else {}
        if trained:
            s.record_replies(dict(zip(prompts, replies["tuned"])))
        done = f"Compared {plural(len(items), 'prompt')}."
        self._job.set(rows=[_row(c, {k: v[i] for k, v in replies.items()}, earlier, scores, i)
                            for i, c in enumerate(items)],
                      progress={"done": total, "total": total, "stage": "done"}, state="done",
                      message=done if trained else
                      f"{done} The tuned model is the base model (no run yet, reset to base, or a "
                      "run still to load in the Train tab), so both columns agree: train, then "
                      "compare again.")

    def _score(self, items: list[Conversation], total: int) -> dict:
        """NLL of each reference answer and its per-token probabilities, per model (the tuned
        model's with the base probability beside each, for the heat map's hover)."""
        s = self.session
        with_ref = [i for i, c in enumerate(items) if c.response]
        out: dict = {}
        for key, tuned in (("base", False), ("tuned", True)):
            self._job.set(progress={"done": total, "total": total, "stage": f"scoring references ({key})"})
            nll = s.score([items[i] for i in with_ref], tuned=tuned).per_example if with_ref else []
            for i, value in zip(with_ref, nll):
                probs = s.token_probabilities(items[i], tuned=tuned)
                if key == "tuned":
                    base = out[i]["base"][1]
                    cells = [[tok, p, b[1]] for (tok, p), b in zip(probs, base)]
                else:
                    cells = [[tok, p] for tok, p in probs]
                out.setdefault(i, {})[key] = (value, cells)
        return out

    def _on_session(self, change) -> None:
        """Follow a new session: its busy line, and its tuned run's timeline."""
        if self._off is not None:
            self._off()
        session = change["new"]
        self._busy.follow(session)
        self._off = session.on_change(lambda: on_main(self.show_timeline)) if session is not None else None
        self.show_timeline()


def _timeline_point(points: list[dict], i: int) -> dict:
    """Point `i` for the slider: each probe's reply diffed against the point before."""
    point = points[i]
    rows = [{"prompt": r["prompt"], "reply": r["reply"],
             "diff": word_diff(r["before"], r["reply"]) if r["before"] is not None else None}
            for r in timeline.replies_at(points, i)]
    return {"step": point["step"], "rows": rows, "probe_nll": point.get("probe_nll"),
            "retention": point.get("retention"), "before_step": points[i - 1]["step"] if i else None}


def _row(conv: Conversation, replies: dict, earlier: dict, scores: dict | None = None, i: int = -1) -> dict:
    """One table row: base, tuned, then earlier runs' recorded replies (where recorded)."""
    cols = dict(replies)
    cols.update({name: rec.get(conv.prompt) for name, rec in earlier.items()})
    score = (scores or {}).get(i, {})
    row = make_row(conv.prompt, cols, conv.response, {k: v[0] for k, v in score.items()})
    for col in row["columns"]:
        col["probs"] = score[col["name"]][1] if col["name"] in score else None
    row["system"] = conv.system
    return row


def _escape(text: str) -> str:
    return text.replace("\n", "\\n")


def _unescape(text: str) -> str:
    return text.replace("\\n", "\n")
