"""Submission folders: written whole or not at all, read back whatever state they are in.

A submission is built in `submissions/.incoming/<name>.<pid>.<random>/` (the process id in
its name says who writes it; a run folder,
`lab.runs`, plus `scores.json` and `submission.json` written last) and then renamed into
place in one step: `submissions/<name>` for a participant's first, `<name>--2`, `<name>--3`
... for later ones. A rename onto a folder that exists fails, so twenty processes publishing
at once each get a folder of their own and none is lost. Reading never raises: a folder
without a readable `submission.json`, or an incoming one whose process has ended, is listed
with `status` "broken" and the reason; one still being written is "in progress".

>>> sanitise("  Ann-Marie O'Neil <script> ")
'Ann-Marie_O_Neil_script'
>>> sanitise("../../etc"), sanitise("a--2"), sanitise("Zoë")
('etc', 'a-2', 'Zoe')
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import time
import unicodedata
from pathlib import Path

from .. import runs
from ..atomic import write_json

SUBMISSION, SCORES = "submission.json", "scores.json"
INCOMING = ".incoming"
ATTEMPT = "--"  # <name>--2: a participant's second submission
MAX_NAME = 40


class BadName(ValueError):
    """A participant name with nothing usable in it."""


def sanitise(name: str) -> str:
    """A participant's name as a folder name: letters, digits, '_', '-' and '.', at most
    `MAX_NAME` characters, no leading dots or dashes, no '--' (kept for attempt numbers)."""
    ascii_ = unicodedata.normalize("NFKD", name or "").encode("ascii", "ignore").decode()  # Zoë -> Zoe
    text = re.sub(r"[^A-Za-z0-9_.-]+", "_", ascii_.strip())
    text = re.sub(r"-{2,}", "-", re.sub(r"_{2,}", "_", text))
    text = re.sub(r"\.{2,}", ".", text).strip("._-")[:MAX_NAME].strip("._-")
    if not text:
        raise BadName(f"the name {name!r} has no letters or digits to name a folder with; "
                         "type your name, e.g. 'ada' or 'Ada L.'")
    return text


def incoming(submissions: Path, name: str) -> Path:
    """A fresh folder path to build `name`'s submission in (not made yet)."""
    return submissions / INCOMING / f"{name}.{os.getpid()}.{secrets.token_hex(4)}"


def publish(staging: Path, submissions: Path, name: str) -> Path:
    """Move a finished submission into place as `name`, or `name--N` for the N-th one; return
    where it landed. Safe when many processes publish at once (each rename is atomic)."""
    n = 1
    while True:
        target = submissions / (name if n == 1 else f"{name}{ATTEMPT}{n}")
        if not target.exists():
            try:
                os.rename(staging, target)
                return target
            except OSError:  # another process took this name first (a folder that is not empty)
                if not staging.exists():
                    raise
        n += 1


def write(staging: Path, submission: dict, scores: dict) -> None:
    """The submission's own files, `submission.json` last (a folder without it is broken)."""
    write_json(staging / SCORES, scores)
    write_json(staging / SUBMISSION, submission)


# ---------------------------------------------------------------------------- reading

def read(folder: Path) -> dict:
    """One submission folder as a row: its `submission.json` with `folder`, `status` ("ok",
    "broken" or "in progress") and, when not ok, `problem`."""
    base = {"folder": folder.name, "path": str(folder)}
    card_path = folder / SUBMISSION
    if card_path.is_file():
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            return {**base, "name": _name_of(folder.name), "status": "broken",
                    "problem": f"{SUBMISSION} is damaged ({err}); submit again"}
        if not isinstance(card, dict) or not isinstance(card.get("scores"), dict):
            return {**base, "name": _name_of(folder.name), "status": "broken",
                    "problem": f"{SUBMISSION} has no scores; submit again"}
        return {**card, **base, "name": str(card.get("name") or _name_of(folder.name)), "status": "ok"}
    if folder.parent.name == INCOMING:
        name, pid = _incoming_parts(folder.name)
        if runs._alive(pid):
            return {**base, "name": name, "status": "in progress", "problem": "training and scoring now"}
    else:
        name = _name_of(folder.name)
    return {**base, "name": name, "status": "broken", "problem": "half-written: the process writing it ended before it finished "
                                           f"(no {SUBMISSION}); submit again"}


def _incoming_parts(folder_name: str) -> tuple[str, int | None]:
    """(name, pid of the writing process) of an incoming folder `<name>.<pid>.<random>`."""
    parts = folder_name.rsplit(".", 2)
    return parts[0], int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def _name_of(folder_name: str) -> str:
    return folder_name.split(ATTEMPT)[0]


def attempt_of(folder_name: str) -> int:
    """1 for `name`, N for `name--N`."""
    tail = folder_name.rsplit(ATTEMPT, 1)[1] if ATTEMPT in folder_name else "1"
    return int(tail) if tail.isdigit() else 1


def list_all(submissions: Path) -> list[dict]:
    """Every submission folder under `submissions/`, those being written and broken ones too,
    oldest first."""
    if not submissions.is_dir():
        return []
    folders = [p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith(".")]
    inbox = submissions / INCOMING
    if inbox.is_dir():
        folders += [p for p in inbox.iterdir() if p.is_dir()]
    rows = []
    for f in folders:
        try:
            rows.append(read(f))
        except OSError as err:  # vanished or unreadable between listing and reading
            rows.append({"folder": f.name, "path": str(f), "name": _name_of(f.name), "status": "broken",
                         "problem": f"cannot be read ({err})"})
    return sorted(rows, key=lambda r: (r.get("submitted_ts") or _mtime(r["path"]), r["folder"]))


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def signature(submissions: Path) -> tuple:
    """Something that changes when a submission lands, starts or breaks (cheap: names only)."""
    names = []
    for d in (submissions, submissions / INCOMING):
        try:
            names += sorted((d.name, p.name, p.stat().st_mtime_ns) for p in d.iterdir())
        except OSError:
            continue
    return tuple(names)


def clean_stale(submissions: Path, older_than_s: float = 3600) -> int:
    """Remove incoming folders whose process ended more than `older_than_s` ago; return how many."""
    inbox, removed = submissions / INCOMING, 0
    if not inbox.is_dir():
        return 0
    for f in inbox.iterdir():
        if f.is_dir() and not runs._alive(_incoming_parts(f.name)[1]) and time.time() - _mtime(str(f)) > older_than_s:
            shutil.rmtree(f, ignore_errors=True)
            removed += 1
    return removed
