"""Pieces the widgets share: front-end files, error text, throttling, the main thread, jobs.

Widget state changes on the kernel's main thread only: a background job (`Job`) reports, and
hands every change to `on_main`, which queues it for the kernel's event loop; a widget's
`wait()` runs the queued changes itself (`join`) while it holds the main thread.
"""
from __future__ import annotations

import pathlib
import queue
import threading
import time

from lab.models import ModelError
from lab.records import DataError

STATIC = pathlib.Path(__file__).parent / "static"
CSS = STATIC / "sftlab.css"


def esm(name: str) -> str:
    """A widget's ES module with the shared DOM helpers (static/dom.js) in front of it."""
    return (STATIC / "dom.js").read_text() + "\n" + (STATIC / name).read_text()


def error_text(err: BaseException) -> str:
    """An exception as one message for a person: ours already say what and how to fix."""
    if isinstance(err, (DataError, ModelError)):
        return str(err)
    if isinstance(err, (ValueError, RuntimeError, OSError)) and str(err):
        return f"{err}"
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


class Throttle:
    """True at most once per `interval` seconds, so a fast loop does not flood the browser.

    >>> t = Throttle(10.0)
    >>> t.ready(), t.ready(), t.ready(force=True)
    (True, False, True)
    """

    def __init__(self, interval: float = 0.25):
        self.interval = interval
        self._last = float("-inf")
        self._lock = threading.Lock()

    def ready(self, force: bool = False) -> bool:
        with self._lock:
            now = time.monotonic()
            if force or now - self._last >= self.interval:
                self._last = now
                return True
            return False


_pending: queue.SimpleQueue = queue.SimpleQueue()


def _kernel_loop():
    """The running kernel's main event loop, or None (a script, a test without a kernel)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return None
    kernel = getattr(get_ipython(), "kernel", None)
    return getattr(kernel, "io_loop", None)


def on_main(fn, *args) -> None:
    """Run `fn(*args)` on the kernel's main thread: now if this is it or there is no kernel,
    else as soon as the main thread is free (or waits in a widget's `wait()`)."""
    loop = _kernel_loop() if threading.current_thread() is not threading.main_thread() else None
    if loop is None:
        fn(*args)
        return
    _pending.put((fn, args))
    loop.add_callback(drain)


def drain() -> None:
    """Run the changes queued for the main thread (call it on the main thread)."""
    while True:
        try:
            fn, args = _pending.get_nowait()
        except queue.Empty:
            return
        fn(*args)


def act(widget, action) -> None:
    """A button press on `widget`: run `action()`, and show a failure in the widget's `error`
    line rather than in a log."""
    try:
        widget.error = ""
        action()
    except Exception as err:  # any failure of a user action belongs in the widget
        widget.error = error_text(err)


def assign(widget, **traits) -> None:
    """Set several traits of `widget` on the kernel's main thread (`on_main`), as one change."""
    on_main(_assign, widget, traits)


def _assign(widget, traits: dict) -> None:
    with widget.hold_trait_notifications():
        for name, value in traits.items():
            setattr(widget, name, value)


class Job:
    """A widget's background job (training, generating, scoring): it takes the session's job
    slot, runs in its own thread, and only reports; every change of the widget's state goes to
    the kernel's main thread (`set`, `on_main`). A failure shows in the widget: `message`
    cleared, `error` says what and how to fix it, `state` 'error'; `wait()` raises it."""

    def __init__(self, widget):
        self.widget, self.thread = widget, None

    def start(self, session, what: str, fn, *args, name: str = "sftlab-job") -> None:
        """Run `fn(*args)` in the background holding `session`'s job slot (`Busy` at once,
        naming what runs, if it is taken); without a session, in a plain thread."""
        if session is None:
            self.thread = threading.Thread(target=self._run, args=(fn, *args), daemon=True, name=name)
            self.thread.start()
        else:
            self.thread = session.start_job(what, self._run, fn, *args, name=name, by=self.widget)

    def _run(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception as err:  # shown in the widget; `wait()` raises it for scripts
            self.set(message="", error=error_text(err), state="error")

    def set(self, **traits) -> None:
        """Change the widget's traits on the main thread (from the job's thread)."""
        assign(self.widget, **traits)

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the job ends, applying the changes it hands to the main thread; raise
        its error (as the widget shows it) if it failed."""
        join(self.thread, timeout)
        if getattr(self.widget, "state", None) == "error":
            raise RuntimeError(self.widget.error)


def join(thread: threading.Thread | None, timeout: float | None = None) -> None:
    """Wait for a background job, applying the main-thread changes it queues meanwhile."""
    end = None if timeout is None else time.monotonic() + timeout
    while thread is not None and thread.is_alive() and (end is None or time.monotonic() < end):
        thread.join(0.05)
        if threading.current_thread() is threading.main_thread():
            drain()
    if threading.current_thread() is threading.main_thread():
        drain()


def answer_while_cells_run(*widgets) -> None:
    """Let clicks in these widgets reach the kernel while a notebook cell runs (e.g. Stop while
    a cell waits for the training run).

    JupyterLab sends widget messages to a kernel subshell, which handles them while the main
    shell runs a cell. ipykernel 7, though, routes a comm's incoming messages to the shell of
    the last message the kernel sent on it: once a cell (or a thread) sets a trait, the
    widget's clicks queue behind the running cell. Keeping the front end's own choice of
    subshell undoes that. Kernels without subshells have no such routing; nothing changes."""
    for widget in widgets:
        comm = getattr(widget, "comm", None)
        if comm is not None and hasattr(comm, "_reply_subshell_for"):  # ipykernel >= 7 (private)
            comm._reply_subshell_for = lambda data, default: default


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 prompt', '2 prompts'.

    >>> plural(1, "prompt"), plural(3, "reply", "replies")
    ('1 prompt', '3 replies')
    """
    return f"{n} {word if n == 1 else (many or word + 's')}"


class BusyLine:
    """Keeps a widget's `busy` trait saying what the session is doing, when the job is not
    the widget's own (started with `by=widget`): one line, updated on the main thread as jobs
    start and end."""

    def __init__(self, widget):
        self.widget, self.session, self._off = widget, None, None

    def follow(self, session) -> None:
        if self._off is not None:
            self._off()
        self.session, self._off = session, None
        if session is not None:
            self._off = session.on_change(lambda: on_main(self.update), progress=True)
        self.update()

    def update(self) -> None:
        s = self.session
        mine = s is not None and s.held_by is self.widget
        self.widget.busy = s.busy_message() if s is not None and s.busy and not mine else ""
