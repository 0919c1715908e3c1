"""The class's submissions as a leaderboard, what separates the best from the rest, and a
one-file offline HTML of the whole class.

Ranking: each participant's latest working submission, by held-out NLL (lower is better;
ties by more checks passed). Broken and unfinished submissions are listed apart with what is
wrong, and never stop the rest from showing. Nothing here needs a model: everything comes
from the submission folders (`lab.classroom.store`). The held-out prompts and answers are
never shown; only their scores are.

>>> rows = [{"name": n, "scores": {"held_out_nll": v, "checks_passed": 0}, "dataset": {"examples": e}}
...         for n, v, e in [("a", 2.0, 20), ("b", 1.0, 18), ("c", 3.0, 5)]]
>>> [r["name"] for r in rank(rows)], [r["rank"] for r in rank(rows)]
(['b', 'a', 'c'], [1, 2, 3])
"""
from __future__ import annotations

import html
import math
import time
from pathlib import Path

from ..atomic import write_text
from ..present import PAGE_STYLE
from ..present.textdiff import word_diff
from . import store
from .challenge import Challenge, load

# the leaderboard's columns: (key in `flat`, label)
COLUMNS = [("rank", "#"), ("name", "participant"), ("held_out_nll", "held-out NLL"),
           ("checks", "checks passed"), ("examples", "examples"), ("tokens", "tokens"),
           ("duplicates", "duplicates"), ("diversity", "diversity"), ("covered", "topics covered"),
           ("attempts", "attempts"), ("submitted_at", "submitted")]
# what `separates` compares between the top third and the rest: (key, label, digits)
TRAITS = [("examples", "examples", 1), ("tokens", "tokens", 0), ("response_words", "words per response", 1),
          ("prompt_words", "words per instruction", 1), ("covered", "probe topics covered", 1),
          ("duplicates", "duplicates", 1), ("diversity", "diversity", 2)]


def _nll(row) -> float:
    v = (row.get("scores") or {}).get("held_out_nll")
    return v if isinstance(v, (int, float)) and math.isfinite(v) else math.inf


def rank(rows: list[dict]) -> list[dict]:
    """Rows sorted best first (held-out NLL, then checks passed), with `rank` from 1."""
    ordered = sorted(rows, key=lambda r: (_nll(r), -((r.get("scores") or {}).get("checks_passed") or 0),
                                          r.get("submitted_ts") or 0))
    return [{**r, "rank": i} for i, r in enumerate(ordered, 1)]


def flat(row: dict) -> dict:
    """One leaderboard row as plain cells (the table's keys in `COLUMNS`)."""
    s, d = row.get("scores") or {}, row.get("dataset") or {}
    total = s.get("checks_total")
    return {"rank": row.get("rank"), "name": row.get("name"), "participant": row.get("participant"),
            "folder": row.get("folder"), "held_out_nll": s.get("held_out_nll"),
            "checks": f"{s.get('checks_passed', 0)} / {total}" if total else "—",
            "checks_passed": s.get("checks_passed"), "checks_total": total,
            "examples": d.get("examples"), "tokens": d.get("tokens"), "duplicates": d.get("duplicates"),
            "diversity": d.get("diversity"), "response_words": d.get("response_words"),
            "covered": len(d.get("covered") or []), "topics": len(d.get("topics") or []),
            "attempts": row.get("attempts", 1), "submitted_at": row.get("submitted_at")}


def leaderboard(challenge: Challenge | str | Path) -> dict:
    """{"rows": each participant's latest working submission, ranked; "all": every folder;
    "broken": those broken or being written, with their problem}."""
    ch = challenge if isinstance(challenge, Challenge) else load(challenge)
    every = store.list_all(ch.submissions)
    ok = [r for r in every if r["status"] == "ok"]
    latest: dict[str, dict] = {}
    counts: dict[str, int] = {}
    for r in ok:  # oldest first: the last one seen is the latest
        latest[r["name"]] = r
        counts[r["name"]] = counts.get(r["name"], 0) + 1
    rows = rank([{**r, "attempts": counts[r["name"]]} for r in latest.values()])
    return {"rows": rows, "all": every, "broken": [r for r in every if r["status"] != "ok"]}


def separates(rows: list[dict]) -> list[dict]:
    """What the top third of the ranked `rows` has that the rest has not: per trait, the mean
    in each group (needs at least 3 rows; else empty)."""
    if len(rows) < 3:
        return []
    cut = max(1, round(len(rows) / 3))
    top, rest = [flat(r) for r in rows[:cut]], [flat(r) for r in rows[cut:]]
    out = []
    for key, label, digits in TRAITS:
        a = [r[key] for r in top if isinstance(r.get(key), (int, float))]
        b = [r[key] for r in rest if isinstance(r.get(key), (int, float))]
        if a and b:
            ma, mb = sum(a) / len(a), sum(b) / len(b)
            out.append({"trait": label, "key": key, "top": round(ma, digits), "rest": round(mb, digits),
                        "top_n": len(top), "rest_n": len(rest),
                        "ratio": round(ma / mb, 2) if mb else None})
    return out


def table_text(board: dict) -> str:
    """The leaderboard as text, for the command line."""
    rows = [flat(r) for r in board["rows"]]
    cells = [[label for _, label in COLUMNS]] + [[_fmt(r[key]) for key, _ in COLUMNS] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(COLUMNS))).rstrip() for c in cells]
    lines += [f"{r['folder']}: {r['status']}: {r.get('problem', '')}" for r in board["broken"]]
    if not rows:
        lines.append("(no submissions yet)")
    return "\n".join(lines)


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.3f}" if math.isfinite(v) else "—"
    return str(v)


# ---------------------------------------------------------------------------- HTML export

_e = html.escape
STYLE = PAGE_STYLE + """
body { max-width: 1200px; } .text { white-space: pre-wrap; max-width: 520px; }
.broken { color: #cf222e; } details { margin: 4px 0 10px 0; }
"""


def _td(v) -> str:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return f'<td class="num">{_e(_fmt(v))}</td>'
    return f'<td class="text">{_e(_fmt(v))}</td>'


def _dataset_rows(path: Path) -> list[dict]:
    from .. import runs

    return [{"prompt": " / ".join(m.get("content") or "" for m in r.get("messages", []) if m.get("role") == "user"),
             "response": " / ".join(m.get("content") or "" for m in r.get("messages", []) if m.get("role") == "assistant")}
            for r in runs.read_jsonl(path / runs.DATASET)]


def export_html(challenge: Challenge | str | Path, out: str | Path) -> Path:
    """One self-contained HTML file of the class (atomically): the task, the leaderboard, what
    separates the top third, each submission's dataset and replies to the public probes (the
    best one's replies diffed against by the others'), and the broken ones. Every name and
    text is escaped; the held-out set is not in it."""
    ch = challenge if isinstance(challenge, Challenge) else load(challenge)
    board = leaderboard(ch)
    rows = board["rows"]
    head = "".join(f"<th>{_e(label)}</th>" for _, label in COLUMNS)
    body = "".join("<tr>" + "".join(_td(flat(r)[k]) for k, _ in COLUMNS) + "</tr>" for r in rows)
    parts = [f"<p class='text'>{_e(ch.task)}</p>",
             f"<p class='muted'>Model {_e(ch.model)}; at most {ch.budget} examples; every submission trained "
             f"with the same settings (seed {ch.settings.seed}); scored on {len(ch.held_out)} held-out prompts.</p>",
             "<h2>Leaderboard</h2>", f"<table><tr>{head}</tr>{body}</table>" if rows else "<p class='muted'>no submissions yet</p>"]
    sep = separates(rows)
    if sep:
        parts.append(f"<h2>What separates the top third ({sep[0]['top_n']}) from the rest ({sep[0]['rest_n']})</h2>"
                     "<table><tr><th>mean</th><th>top third</th><th>the rest</th></tr>"
                     + "".join(f"<tr><td>{_e(s['trait'])}</td>{_td(s['top'])}{_td(s['rest'])}</tr>" for s in sep)
                     + "</table>")
    if board["broken"]:
        parts.append("<h2>Not scored</h2><table><tr><th>folder</th><th>status</th><th>problem</th></tr>"
                     + "".join(f"<tr><td>{_e(r['folder'])}</td><td class='broken'>{_e(r['status'])}</td>"
                               f"<td class='text'>{_e(r.get('problem', ''))}</td></tr>" for r in board["broken"])
                     + "</table>")
    best = {p["prompt"]: p["reply"] for p in (rows[0].get("public_replies") or [])} if rows else {}
    parts.append("<h2>Submissions</h2>")
    for r in rows:
        replies = "".join(
            f"<tr><td class='text'>{_e(p['prompt'])}</td><td class='text'>{_diff(best.get(p['prompt']) if r is not rows[0] else None, p['reply'])}</td></tr>"
            for p in r.get("public_replies") or [])
        data = "".join(f"<tr><td class='text'>{_e(d['prompt'])}</td><td class='text'>{_e(d['response'])}</td></tr>"
                       for d in _dataset_rows(Path(r["path"])))
        parts.append(f"<details><summary>#{r['rank']} {_e(r['name'])}: held-out NLL {_e(_fmt(_nll(r)))}</summary>"
                     "<h3>Replies to the public probes</h3><p class='muted'>Marked: how each differs from the "
                     f"top submission's reply.</p><table><tr><th>probe</th><th>reply</th></tr>{replies}</table>"
                     f"<h3>Dataset</h3><table><tr><th>instruction</th><th>response</th></tr>{data}</table></details>")
    title = f"Class challenge: {ch.title}"
    doc = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
           f"<style>{STYLE}</style></head><body><h1>{_e(title)}</h1>{''.join(parts)}"
           f"<p class='muted'>Written by SFT Lab on {_e(time.strftime('%Y-%m-%d %H:%M'))}.</p></body></html>\n")
    return write_text(out, doc)


def _diff(before: str | None, after: str) -> str:
    if not after:
        return '<span class="muted">(empty reply)</span>'
    if before is None:
        return _e(after)
    tags = {"equal": "{}", "delete": "<del>{}</del>", "insert": "<ins>{}</ins>"}
    return "".join(tags[op].format(_e(text)) for op, text in word_diff(before, after))
