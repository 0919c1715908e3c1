"""Pieces the three widgets share: where the front-end files are, error text, throttling."""
from __future__ import annotations

import pathlib
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
