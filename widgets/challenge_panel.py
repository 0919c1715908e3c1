"""ChallengePanel: a class challenge's task and budget above the Dataset tab, and Submit.

Submit trains the Dataset tab's examples with the challenge's own settings (the Train tab's
do not apply), scores them on the held-out set and files one submission folder
(`lab.classroom.submit`), in the background through the session's job slot; the participant
then sees the score and the rank. The participant's name is asked once: it is kept beside
the dataset's autosave file (on a JupyterHub it starts as the hub's user name). The
held-out prompts are never sent to the browser; only how many there are.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import anywidget
import traitlets as t

from lab.atomic import write_json
from lab.classroom import store
from lab.classroom.challenge import Challenge, load
from lab.classroom.submit import check_data, submit
from lab.train import Callback

from ._common import CSS, Job, Throttle, act, answer_while_cells_run, esm


class _Progress(Callback):
    def __init__(self, job: Job):
        self.job, self.throttle = job, Throttle(0.3)

    def on_step(self, info) -> None:
        if self.throttle.ready(force=info.step == info.total_steps):
            self.job.set(progress={"step": info.step, "total": info.total_steps, "loss": info.loss})


class ChallengePanel(anywidget.AnyWidget):
    """The task, the budget against the examples there are, the name, Submit and the result."""

    _esm = esm("challenge_panel.js")
    _css = CSS

    challenge = t.Dict(help="what a participant may see of the challenge: title, task, model, budget, "
                       "settings, probes/held_out counts, topics").tag(sync=True)
    examples = t.Int(0, help="examples in the Dataset tab now (the budget counts these)").tag(sync=True)
    name = t.Unicode("", help="the participant's name, as typed; sanitised for the folder").tag(sync=True)
    name_locked = t.Bool(False, help="True once a submission used the name (asked once)").tag(sync=True)
    submit_clicks = t.Int(0, help="incremented by the Submit button").tag(sync=True)
    state = t.Unicode("idle", help="idle | running | done | error").tag(sync=True)
    progress = t.Dict(help="{step, total, loss} of the submission's training run").tag(sync=True)
    result = t.Dict(help="the last submission: {name, folder, rank, of, held_out_nll, checks_passed, "
                    "checks_total}").tag(sync=True)
    message = t.Unicode("", help="what is happening").tag(sync=True)
    error = t.Unicode("", help="what went wrong and how to fix it").tag(sync=True)

    def __init__(self, challenge: Challenge | str | os.PathLike, session, examples, *,
                 state_path: str | os.PathLike | None = None, **kwargs):
        """`examples`: a callable giving the dataset to submit (the Dataset tab's); `session`:
        whose base model and job slot the submission uses; `state_path`: where the name is kept."""
        self.ch = challenge if isinstance(challenge, Challenge) else load(challenge)
        super().__init__(challenge=self.ch.public(), **kwargs)
        answer_while_cells_run(self)
        self.session, self._examples = session, examples
        self.state_path = Path(state_path) if state_path else None
        self._job = Job(self)
        saved = self._read_state()
        self.name = saved.get("name") or os.environ.get("JUPYTERHUB_USER", "")
        self.name_locked = bool(saved.get("name"))
        if saved.get("result"):
            self.result = saved["result"]
        self.observe(lambda _: act(self, self.submit), "submit_clicks")
        self.update_count()

    def update_count(self) -> None:
        self.examples = len(self._examples())

    # -- submitting ---------------------------------------------------------------------------
    def submit(self, name: str | None = None) -> None:
        """Submit the Dataset tab's examples (in the background; `wait()` for the result)."""
        if name is not None and not self.name_locked:
            self.name = name
        data = check_data(self.ch, self._examples())  # budget and replies: said at once
        folder = store.sanitise(self.name)
        self.error, self.message, self.progress = "", f"Submitting {len(data)} examples as {folder}…", {}
        self.state = "running"
        job = self._job
        session = self.session

        def work():
            row = submit(self.ch, data, self.name, model=session.base, tokenizer=session.tokenizer,
                         callbacks=[_Progress(job)], stop=session.stop_event,
                         on_stage=lambda text: job.set(message=text[:1].upper() + text[1:] + "…"))
            s = row["scores"]
            result = {"name": row["name"], "folder": row["folder"], "rank": row["rank"], "of": row["of"],
                      "held_out_nll": s["held_out_nll"], "checks_passed": s["checks_passed"],
                      "checks_total": s["checks_total"]}
            self._write_state({"name": self.name, "result": result})
            job.set(result=result, name_locked=True, state="done",
                    message=f"Submitted as {row['name']}: rank {row['rank']} of {row['of']}.")

        job.start(session, "training and scoring a challenge submission", work, name="sftlab-submit")

    def wait(self, timeout: float | None = None) -> dict:
        self._job.wait(timeout)
        return dict(self.result)

    # -- the name, kept beside the dataset ------------------------------------------------------
    def _read_state(self) -> dict:
        try:
            return json.loads(self.state_path.read_text()) if self.state_path else {}
        except (OSError, ValueError):
            return {}

    def _write_state(self, state: dict) -> None:
        if self.state_path:
            write_json(self.state_path, state)
