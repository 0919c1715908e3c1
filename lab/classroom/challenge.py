"""A class challenge: one task, one model, fixed training settings, a held-out set.

A challenge is a folder a teacher shares with the room (on a JupyterHub, a shared folder):

    challenge.json    what the task is and how every submission is trained (below)
    probes.jsonl      public probes: prompts with reference answers participants may look at
    held_out.jsonl    the held-out set every submission is scored on; the widgets never show it
    submissions/      one folder per submission (`lab.classroom.store`)

`challenge.json`, one JSON object:

    title        str, required    a short name ("Brightwave support bot")
    task         str, required    the task in a few sentences, shown to participants
    model        str              the model every submission tunes (default "default")
    budget       int >= 1         most examples a submitted dataset may hold
    settings     object           `lab.config.TrainConfig` fields (seed included); every field
                                  missing takes its default, an unknown one is an error
    reply_tokens int >= 1         longest reply, in tokens, when the probes are answered (64)
    probes       str              the public probes' file name (default "probes.jsonl")
    held_out     str              the held-out set's file name (default "held_out.jsonl")
    starter      str              the starter set it was made from (information only)

Probe files are chat-messages JSONL (any format `lab.data.dataio` reads) with a reference
answer per record; a record may add `tags` (its topic, for the gallery's topic coverage) and
`checks`: a list of `{"phrase": "..."}` (the reply holds this text, case and spacing aside) or
`{"regex": "..."}` (Python `re`, case-insensitive) that a right reply satisfies.

Every problem is reported at once, naming the file, the field or line, and the fix
(`ChallengeError`, a `DataError`).

>>> check_reply("Thanks for reaching out!  Bills are due by the 15th.", [{"phrase": "thanks for reaching out"}, {"regex": r"\\b15(th)?\\b"}])
[True, True]
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..atomic import write_json, write_jsonl
from ..config import TrainConfig, problems
from ..records import Conversation, DataError

CHALLENGE = "challenge.json"
SUBMISSIONS = "submissions"
DEFAULTS = {"model": "default", "reply_tokens": 64, "probes": "probes.jsonl", "held_out": "held_out.jsonl"}
KEYS = ("title", "task", "model", "budget", "settings", "reply_tokens", "probes", "held_out", "starter")
CHECK_KINDS = ("phrase", "regex")
# what `new` trains with: a 20-example set needs more passes and smaller batches than the
# Train tab's defaults to take a few steps (3 epochs of batch 4: 15 steps)
STARTER_SETTINGS = {"epochs": 3.0, "batch_size": 4}
STARTERS_FILE = Path(__file__).with_name("starters.json")  # per starter: the task text and the probes' checks


class ChallengeError(DataError):
    """A challenge folder that cannot be used, with every problem found, each with its fix."""


@dataclass
class Probe:
    """One probe: its conversation (prompt and reference answer), topic tags and checks."""

    conv: Conversation
    id: str | None = None
    tags: tuple[str, ...] = ()
    checks: list[dict] = field(default_factory=list)

    @property
    def prompt(self) -> str:
        return self.conv.prompt


@dataclass
class Challenge:
    folder: Path
    title: str
    task: str
    model: str
    budget: int
    settings: TrainConfig
    reply_tokens: int
    probes: list[Probe]
    held_out: list[Probe]
    starter: str | None = None

    @property
    def submissions(self) -> Path:
        return self.folder / SUBMISSIONS

    @property
    def topics(self) -> list[str]:
        """The probes' topic tags, public and held-out, in first-seen order."""
        return list(dict.fromkeys(t for p in self.probes + self.held_out for t in p.tags))

    def public(self) -> dict:
        """What a participant may see: no held-out prompt or answer, only how many there are."""
        return {"title": self.title, "task": self.task, "model": self.model, "budget": self.budget,
                "settings": self.settings.to_json(), "probes": len(self.probes),
                "held_out": len(self.held_out), "checks": sum(len(p.checks) for p in self.held_out),
                "topics": self.topics}


def check_reply(reply: str, checks: list[dict]) -> list[bool]:
    """Whether `reply` satisfies each check (a phrase it holds, or a pattern it matches)."""
    flat = " ".join(reply.split()).lower()
    out = []
    for c in checks:
        if "phrase" in c:
            out.append(" ".join(c["phrase"].split()).lower() in flat)
        else:
            out.append(re.search(c["regex"], reply, re.IGNORECASE) is not None)
    return out


# ---------------------------------------------------------------------------- reading

def load(folder: str | Path) -> Challenge:
    """Read and validate a challenge folder; `ChallengeError` lists every problem with its fix."""
    folder = Path(folder)
    path = folder / CHALLENGE
    if not path.is_file():
        raise ChallengeError(f"no {CHALLENGE} here: make a challenge with `sft-lab class new {folder} "
                             "--starter support`, or write one (schema: lab/classroom/challenge.py)",
                             source=str(folder))
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ChallengeError(f"is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}); "
                             "fix it in an editor", source=str(path)) from None
    if not isinstance(spec, dict):
        raise ChallengeError("must hold one JSON object ({\"title\": ..., \"task\": ..., ...})", source=str(path))
    found: list[str] = []
    spec = {**DEFAULTS, **spec}
    for key in spec:
        if key not in KEYS:
            found.append(f"unknown field '{key}': the fields are {', '.join(KEYS)}")
    for key in ("title", "task"):
        if not isinstance(spec.get(key), str) or not spec[key].strip():
            found.append(f"'{key}' must be a non-empty text, e.g. \"{key}\": \"...\"")
    for key in ("budget", "reply_tokens"):
        value = spec.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            found.append(f"'{key}' must be a whole number of at least 1, e.g. \"{key}\": "
                         f"{20 if key == 'budget' else 64} (it is {value!r})")
    if not isinstance(spec.get("model"), str) or not spec["model"]:
        found.append("'model' must name a model: \"default\", \"tiny-random\", a folder or a hub id")
    settings = spec.get("settings") or {}
    cfg = None
    if not isinstance(settings, dict):
        found.append("'settings' must be an object of training settings, e.g. {\"epochs\": 3, \"seed\": 0}")
    else:
        names = {f.name for f in fields(TrainConfig)}
        unknown = [k for k in settings if k not in names]
        if unknown:
            found.append(f"'settings' has unknown setting(s) {', '.join(unknown)}: the settings are "
                         f"{', '.join(sorted(names))}")
        else:
            bad = problems(settings)
            found += [f"'settings': {b}" for b in bad]
            if not bad:
                try:
                    cfg = TrainConfig(**settings)
                except (TypeError, ValueError) as err:
                    found.append(f"'settings': {err}")
    probes = held = []
    for key in ("probes", "held_out"):
        if not isinstance(spec.get(key), str) or not spec[key]:
            found.append(f"'{key}' must be a file name in the challenge folder, e.g. \"{DEFAULTS[key]}\"")
    if not found:
        probes = _read_probes(folder / spec["probes"], "probes", found)
        held = _read_probes(folder / spec["held_out"], "held_out", found)
        if not held and not any(f.startswith(spec["held_out"]) for f in found):
            found.append(f"{spec['held_out']}: the held-out set is empty; it needs at least one "
                         "prompt with a reference answer to score submissions on")
    if found:
        raise ChallengeError("; ".join(found), source=str(path))
    return Challenge(folder=folder, title=spec["title"].strip(), task=spec["task"].strip(), model=spec["model"],
                     budget=spec["budget"], settings=cfg, reply_tokens=spec["reply_tokens"],
                     probes=probes, held_out=held, starter=spec.get("starter"))


def _read_probes(path: Path, key: str, found: list[str]) -> list[Probe]:
    """The probes of one file; every problem is added to `found` (named by file and line)."""
    from ..data.dataio import parse_record

    if not path.is_file():
        found.append(f"{path.name} ('{key}') is missing: put it beside {CHALLENGE}")
        return []
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path.name} line {n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            found.append(f"{where}: not valid JSON ({err.msg}); one JSON object per line")
            continue
        try:
            conv = parse_record(row, where=where)
        except DataError as err:
            found.append(f"{where}: {err.message}")
            continue
        if not isinstance(conv, Conversation) or not conv.response:
            found.append(f"{where}: needs a prompt and a reference answer (a user and an assistant turn)")
            continue
        checks = row.get("checks") or [] if isinstance(row, dict) else []
        if not isinstance(checks, list):
            found.append(f"{where}: 'checks' must be a list like [{{\"phrase\": \"...\"}}, {{\"regex\": \"...\"}}]")
            checks = []
        for i, c in enumerate(checks, 1):
            kinds = [k for k in CHECK_KINDS if isinstance(c, dict) and k in c]
            if not isinstance(c, dict) or len(kinds) != 1 or len(c) != 1 or not isinstance(c[kinds[0]], str) \
                    or not c[kinds[0]].strip():
                found.append(f"{where}: check {i} must be {{\"phrase\": \"text\"}} or {{\"regex\": \"pattern\"}}, "
                             f"not {json.dumps(c)}")
            elif kinds[0] == "regex":
                try:
                    re.compile(c["regex"])
                except re.error as err:
                    found.append(f"{where}: check {i}'s regex {c['regex']!r} does not compile ({err}); "
                                 "fix the pattern or use {\"phrase\": ...}")
        tags = tuple(row.get("tags") or ()) if isinstance(row, dict) else ()
        out.append(Probe(conv=conv, id=row.get("id"), tags=tags, checks=[dict(c) for c in checks]))
    return out


# ---------------------------------------------------------------------------- making one

def new(folder: str | Path, starter: str, *, budget: int = 20, model: str = "default",
        settings: dict | None = None, title: str | None = None, task: str | None = None) -> Challenge:
    """Make a challenge folder from a starter set: its probes split into public and held-out
    (every other probe of each topic, so both halves cover every topic), its task text and
    checks from `starters.json` where the lab has them. Refuses a folder that holds one."""
    from ..data import starters

    folder = Path(folder)
    if (folder / CHALLENGE).exists():
        raise FileExistsError(f"{folder} already holds a challenge ({CHALLENGE}); choose another folder")
    rows = [json.loads(line) for line in (starters.HERE / starter / "probes.jsonl").read_text().splitlines()
            if line.strip()] if starter in starters.names() else None
    if not rows:
        raise ValueError(f"starter {starter!r} has no probes to split; choose one of "
                         f"{', '.join(n for n in starters.names() if starters.probes(n))}")
    known = json.loads(STARTERS_FILE.read_text()).get(starter, {})
    checks = known.get("checks", {})
    public, held, seen = [], [], {}
    for row in rows:
        topic = (row.get("tags") or ["-"])[0]
        seen[topic] = seen.get(topic, 0) + 1
        row = {k: v for k, v in row.items() if k not in ("kind", "paraphrase_of")}
        if checks.get(row.get("id")):
            row["checks"] = checks[row["id"]]
        (public if seen[topic] % 2 else held).append(row)
    spec = {"title": title or known.get("title") or f"{starter} challenge",
            "task": task or known.get("task") or f"Teach the model the {starter} starter's task.",
            "model": model, "budget": budget,
            "settings": TrainConfig(**{**STARTER_SETTINGS, **(settings or {})}).to_json(),
            "reply_tokens": DEFAULTS["reply_tokens"], "probes": DEFAULTS["probes"],
            "held_out": DEFAULTS["held_out"], "starter": starter}
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / DEFAULTS["probes"], public)
    write_jsonl(folder / DEFAULTS["held_out"], held)
    (folder / SUBMISSIONS).mkdir(exist_ok=True)
    write_json(folder / CHALLENGE, spec)  # last: a folder without it is no challenge yet
    return load(folder)
