"""One job at a time: the slot that training, generating, scoring and the experiments queue take.

`job` holds it in the calling thread, `start_job` for a background thread, so two jobs never
run at once on the same weights. A second job is refused at once with `Busy`, whose one-line
message names what is running. Inside a job, further calls from the same thread nest freely.
`lab.session.Session` is a `JobSlot`; listeners (`on_change`) hear jobs start, end and
describe their progress.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable


class Busy(RuntimeError):
    """The session's job slot is taken; the message names the job and what to do."""


class JobSlot:
    """Who runs what now, one job at a time, and a stop event for the running job."""

    def __init__(self):
        self._stop = threading.Event()
        self._guard = threading.Lock()        # protects the three fields below
        self._owner = None                    # who holds the slot: a thread ident, or a token
                                              # while a background job is starting
        self._what: str | None = None
        self.held_by = None                   # the object that started the running job, if given
        self._since = 0.0
        self._listeners: list[tuple[Callable[[], None], bool]] = []

    @property
    def busy(self) -> bool:
        return self._owner is not None

    def busy_message(self) -> str:
        """One line: what runs, for how long, and what to do."""
        what = self._what or "another job"
        where = " there" if " tab" in what else ""
        return (f"Busy: {what}, running for {time.monotonic() - self._since:.0f} s. Wait for it to "
                f"finish, or press Stop{where}.")

    def on_change(self, listener: Callable[[], None], *, progress: bool = False) -> Callable[[], None]:
        """Call `listener()` when a job starts or ends, or the tuned model changes (from the
        thread that made the change); with `progress`, also when the running job describes
        its progress. Returns a function that unsubscribes it."""
        entry = (listener, progress)
        self._listeners.append(entry)
        return lambda: self._listeners.remove(entry) if entry in self._listeners else None

    def _changed(self, progress: bool = False) -> None:
        for listener, wants_progress in list(self._listeners):
            if wants_progress or not progress:
                listener()

    def describe(self, what: str) -> None:
        """Update the running job's description (e.g. its progress)."""
        if self._owner is not None:
            self._what = what
            self._changed(progress=True)

    def _claim(self, what: str, owner, by=None) -> bool:
        """Take the slot for `owner`; False when this thread holds it already (a nested job)."""
        with self._guard:
            if self._owner == owner:
                return False
            if self._owner is not None:
                raise Busy(self.busy_message())
            self._owner, self._what, self.held_by, self._since = owner, what, by, time.monotonic()
            self._stop.clear()
        self._changed()
        return True

    def _release(self) -> None:
        with self._guard:
            self._owner = self._what = self.held_by = None
        self._changed()

    @contextmanager
    def job(self, what: str, *, by=None):
        """Hold the job slot for the block (nested calls from the same thread pass through);
        `by`: who runs it (a widget), so that it can tell its own job from another's."""
        outer = self._claim(what, threading.get_ident(), by)
        try:
            yield self
        finally:
            if outer:
                self._release()

    def start_job(self, what: str, fn: Callable, *args, name: str = "sftlab-job",
                  by=None) -> threading.Thread:
        """Claim the slot now (`Busy` if it is taken) and run `fn(*args)` in a background
        thread that holds it until `fn` returns (`by`: as for `job`)."""
        self._claim(what, object(), by)

        def run():
            with self._guard:
                self._owner = threading.get_ident()
            try:
                fn(*args)
            finally:
                self._release()

        thread = threading.Thread(target=run, name=name, daemon=True)
        try:
            thread.start()
        except BaseException:
            self._release()
            raise
        return thread

    def stop(self) -> None:
        """Ask the running job (a training run, the experiments queue) to end after its
        current step; the model keeps what it learned."""
        self._stop.set()

    @property
    def stop_event(self) -> threading.Event:
        return self._stop
