"""Run folders: what a training run leaves on disk, and how the lab reads it back.

A run folder holds, in the order they are written:

    config.json     the TrainConfig and the model name (first)
    dataset.jsonl   the training examples exactly as trained, chat-messages JSONL
    metrics.jsonl   one row per optimiser step ({step, loss, lr, ...}) and per eval
                    ({step, eval_loss}), appended as the run goes
    timeline.jsonl  probe replies and NLLs at a few steps, when recorded (`lab.analysis.timeline`)
    model/          the tuned weights, an HF folder (swapped in atomically)
    run.json        the run card, written last: a folder without it is an interrupted run
    replies.json    replies of the tuned model recorded later (prompt -> reply), optional
    influence.jsonl which training examples pushed a reply (`lab.analysis.influence`), one line per
                    explained reply, optional

The card (`run.json`) is one flat JSON object; every reader goes through `read_card`:
`name`, `path`, `status` (done | stopped | failed | interrupted | running), `model`,
`config`, `n_examples`, `dataset_sha256`, `steps`, `total_steps`, `train_tokens`,
`trained_tokens`, `seconds`, `tokens_per_second`, `final_loss`, `eval_loss`, `versions`,
`started_at`, `finished_at`, `finished_ts`; what-if runs add `experiment`, `variant`,
`eval_nll`, `eval_nll_per_example`, `probes`, `error`.

A finished run is never overwritten unless asked (`prepare(..., overwrite=True)`); leftovers
of a killed run (temporary files, a half-built model folder) are removed by the next run
started in the same folder.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import tempfile
import time
from pathlib import Path

from .atomic import normal_permissions, write_json, write_jsonl

CARD, CONFIG, DATASET, METRICS = "run.json", "config.json", "dataset.jsonl", "metrics.jsonl"
TIMELINE, MODEL, REPLIES, RUNNING = "timeline.jsonl", "model", "replies.json", ".running"
INFLUENCE = "influence.jsonl"


class RunExists(FileExistsError):
    """The folder holds a finished run; the message says how to keep or replace it."""


def slug(name: str) -> str:
    """A folder-safe form of a run or experiment name.

    >>> slug("sizes/n=10 (a)")
    'sizes_n=10_a'
    """
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name).strip("_") or "run"


def fresh_dir(runs_dir: str | Path, name: str) -> Path:
    """`runs_dir/name`, or `name-2`, `name-3`, ... : a folder no run uses yet."""
    base = Path(runs_dir) / slug(name)
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def dataset_sha256(data) -> str:
    """Hash of a dataset's JSONL form (records with `to_json()`), to tell datasets apart."""
    text = "".join(json.dumps(c.to_json(), sort_keys=True) + "\n" for c in data)
    return hashlib.sha256(text.encode()).hexdigest()


def versions() -> dict:
    """Library versions, for the card: what produced this run."""
    from . import __version__

    out = {"sft_lab": __version__, "python": platform.python_version()}
    for name in ("torch", "transformers"):
        module = __import__("sys").modules.get(name)
        if module is not None:
            out[name] = module.__version__
    return out


# ---------------------------------------------------------------------------- writing

def prepare(out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Make `out_dir` ready for a new run and mark it as running.

    A finished run there is refused (`RunExists`) unless `overwrite`; a killed run's leftovers
    (temporary files, a half-saved model) are removed, as is an interrupted run's card-less
    folder content when the new run starts.
    """
    out = Path(out_dir)
    check_free(out, overwrite=overwrite)
    if out.is_dir():
        for child in out.iterdir():
            stale = child.name.startswith(".") or child.name in (CARD, METRICS, TIMELINE, REPLIES, INFLUENCE)
            if stale or (overwrite and child.name == MODEL):
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / RUNNING).write_text(str(os.getpid()))
    return out


def check_free(out_dir: str | Path, *, overwrite: bool = False) -> None:
    """Raise `RunExists` when a new run may not start in `out_dir`: a finished run is there
    (unless `overwrite`), or a run that is still going."""
    out = Path(out_dir)
    if (out / CARD).is_file() and not overwrite:
        raise RunExists(f"{out} holds a finished run ({CARD}); choose another folder, or allow "
                        "overwriting it (--overwrite on the command line)")
    if (out / RUNNING).is_file() and _alive(_pid(out)) and _pid(out) != os.getpid():
        raise RunExists(f"{out} is in use by a run that is still going (process {_pid(out)})")


def start(out_dir: Path, config: dict, model: str, data, card: dict | None = None) -> None:
    """The files a run writes before its first step: config.json and dataset.jsonl.
    `card`: fields for the run card known at the start (e.g. a what-if run's experiment),
    kept in config.json so that an interrupted run still shows them."""
    write_json(out_dir / CONFIG, {**config, "model": model, "card": card or {},
                                  "started_at": time.strftime("%Y-%m-%dT%H:%M:%S")})
    write_jsonl(out_dir / DATASET, (c.to_json() for c in data))


class Log:
    """A JSONL file written a line at a time (flushed), so a killed run keeps what it reached.

    A line cut short by a crash is skipped when read back (`read_jsonl`)."""

    def __init__(self, path: Path):
        self.path = path
        self._file = open(path, "a", encoding="utf-8")
        normal_permissions(path)

    def write(self, row: dict) -> None:
        self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def save_model(model, tokenizer, path: Path) -> None:
    """Save an HF folder atomically: build it beside the target, then swap it in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}-"))
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    for p in [tmp, *tmp.rglob("*")]:
        normal_permissions(p)
    old = path.with_name(f".{path.name}-old")
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def finish(out_dir: Path, card: dict) -> dict:
    """Write the run card (last of a run's files) and clear the running mark; return the card."""
    card = {**card, "versions": versions(), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "finished_ts": time.time()}
    write_json(out_dir / CARD, card)
    release(out_dir)
    return card


def release(out_dir: Path) -> None:
    """Clear the running mark of a run that ended without a card (an error): interrupted."""
    (Path(out_dir) / RUNNING).unlink(missing_ok=True)


def abandon(out_dir: Path) -> None:
    """Remove a run folder that `prepare` made and no step ever changed (stopped at once)."""
    if (out_dir / CARD).exists():
        return
    shutil.rmtree(out_dir, ignore_errors=True)


def record_replies(run_path: str | Path, replies: dict[str, str]) -> None:
    """Add prompt -> reply pairs of the run's tuned model to its `replies.json`."""
    path = Path(run_path) / REPLIES
    write_json(path, {**read_replies(run_path), **replies})


def record_influence(run_path: str | Path, row: dict) -> None:
    """Append one explained reply (`lab.analysis.influence`) to the run's `influence.jsonl`: one line,
    flushed, so earlier lines are never rewritten."""
    log = Log(Path(run_path) / INFLUENCE)
    try:
        log.write(row)
    finally:
        log.close()


# ---------------------------------------------------------------------------- reading

def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSONL file; a missing file gives none, a torn last line is skipped."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def load_curve(run_path: str | Path) -> list[dict]:
    """The per-step metrics of a run (empty if it has none)."""
    return read_jsonl(Path(run_path) / METRICS)


def read_replies(run_path: str | Path) -> dict[str, str]:
    path = Path(run_path) / REPLIES
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        return {}


def _pid(folder: Path) -> int | None:
    try:
        return int((folder / RUNNING).read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def read_card(folder: str | Path) -> dict | None:
    """The card of the run in `folder`; for a run without `run.json`, a card saying it is
    `running` (its process is alive) or `interrupted`, with the steps it reached. None when
    the folder is no run folder (no config.json)."""
    folder = Path(folder)
    card_file = folder / CARD
    if card_file.is_file():
        try:
            card = json.loads(card_file.read_text())
        except (OSError, json.JSONDecodeError):
            card = None
        if isinstance(card, dict):
            card.setdefault("status", "stopped" if card.get("stopped") else "done")
            return {**card, "name": card.get("name") or folder.name, "path": str(folder)}
    try:
        config = json.loads((folder / CONFIG).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    steps = [r for r in load_curve(folder) if "loss" in r]
    last = steps[-1] if steps else {}
    running = _alive(_pid(folder))
    return {**(config.get("card") or {}), "name": folder.name, "path": str(folder), "status": "running" if running else "interrupted",
            "model": config.get("model"), "config": config, "steps": last.get("step", 0),
            "total_steps": last.get("total_steps"), "started_at": config.get("started_at"),
            "final_loss": last.get("loss"), "finished_ts": (folder / CONFIG).stat().st_mtime}


def list_runs(runs_dir: str | Path = "runs") -> list[dict]:
    """The card of every run folder under `runs_dir` (any depth), oldest first."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    folders = {p.parent for name in (CONFIG, CARD) for p in root.glob(f"**/{name}")}
    cards = [read_card(f) for f in sorted(folders)
             if f.name != MODEL and not any(part.startswith(".") for part in f.relative_to(root).parts)]
    return sorted((c for c in cards if c), key=lambda c: (c.get("finished_ts") or 0, c["path"]))


def summary_line(card: dict) -> str:
    """One line about a run for a person: status, steps, losses.

    >>> summary_line({"name": "r1", "status": "interrupted", "steps": 3, "total_steps": 10})
    'r1: interrupted at step 3 of 10'
    """
    status, steps, total = card.get("status"), card.get("steps"), card.get("total_steps")
    if status in ("interrupted", "running"):
        at = f" at step {steps}" + (f" of {total}" if total else "") if steps is not None else ""
        return f"{card['name']}: {status}{at}"
    parts = [f"{card['name']}: {status}"]
    if steps is not None:
        parts.append(f"{steps} steps")
    if isinstance(card.get("final_loss"), (int, float)):
        parts.append(f"train loss {card['final_loss']:.3f}")
    for key, label in (("eval_loss", "eval loss"), ("eval_nll", "held-out NLL")):
        if isinstance(card.get(key), (int, float)):
            parts.append(f"{label} {card[key]:.3f}")
    if card.get("error"):
        parts.append(card["error"])
    return ", ".join(parts)


def has_model(run_path: str | Path) -> bool:
    """True when the run saved a model that can be loaded."""
    return (Path(run_path) / MODEL / "config.json").is_file()
