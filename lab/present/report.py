"""A shareable report: one self-contained HTML file about a run or a what-if experiment.

Everything is inline (plotly's library once, every chart, the styles): the file opens offline
in any browser and makes no network request. It holds what a person needs to judge the run:
the dataset summary and one example's loss mask, the settings, the loss curves, the timeline
(replies at each point, diffed against the point before) with the forgetting meter, the probe
replies, the influence results where they were computed, library versions and the dataset's
hash. Every piece of user or model text is escaped.

>>> html_text = _table([{"a": "<b>", "b": 1.23456}])
>>> "&lt;b&gt;" in html_text and "1.235" in html_text and "0.0002" in _table([{"lr": 2e-4}])
True
"""
from __future__ import annotations

import html
import time
from pathlib import Path

from .. import runs
from ..analysis import timeline
from ..atomic import write_text
from ..experiments.plots import group_rows, ladder_figure, nll_table_rows, overlay_losses, run_name
from .plots import loss_figure, timeline_figure
from . import PAGE_STYLE
from .textdiff import word_diff

_e = html.escape
STYLE = PAGE_STYLE + """
body { max-width: 1100px; } .reply { white-space: pre-wrap; max-width: 420px; }
.tok { font-family: monospace; white-space: pre-wrap; border-radius: 2px; }
.trained { background: rgba(45, 164, 78, 0.22); } .context { color: #59636e; } .chart { margin: 8px 0; }
"""


def _cell(v) -> str:
    """One escaped table cell: numbers right-aligned (small ones in 4 significant digits)."""
    if v is None:
        return '<td class="muted">—</td>'
    if isinstance(v, float):
        return f'<td class="num">{v:.4g}</td>' if v and abs(v) < 0.01 else f'<td class="num">{v:.3f}</td>'
    if isinstance(v, int) and not isinstance(v, bool):
        return f'<td class="num">{v}</td>'
    return f'<td class="reply">{_e(str(v))}</td>'


def _table(rows: list[dict], columns: list[str] | None = None) -> str:
    """An HTML table of plain rows, every cell escaped."""
    if not rows:
        return '<p class="muted">none</p>'
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{_e(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(r.get(c)) for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _diff(before: str | None, after: str) -> str:
    if not after:
        return '<span class="muted">(empty reply)</span>'
    if before is None:
        return _e(after)
    tags = {"equal": "{}", "delete": "<del>{}</del>", "insert": "<ins>{}</ins>"}
    return "".join(tags[op].format(_e(text)) for op, text in word_diff(before, after))


class _Charts:
    """Figures as HTML: plotly's library inline with the first, none after (one copy)."""

    def __init__(self):
        self.first = True

    def __call__(self, fig) -> str:
        part = fig.to_html(full_html=False, include_plotlyjs=self.first, config={"displaylogo": False})
        self.first = False
        return f'<div class="chart">{part}</div>'


def _mask_example(folder: Path, data) -> str:
    """The first example's tokens, trained ones highlighted, with the run's own tokenizer."""
    from ..masks import token_preview
    from ..models import load_tokenizer

    model_dir = folder / runs.MODEL
    if not data or not (model_dir / "config.json").is_file():
        return '<p class="muted">(no saved model to take the tokenizer from)</p>'
    try:
        preview = token_preview(data[0], load_tokenizer(str(model_dir)))
    except Exception as err:  # a template that fails here is not worth a failed report
        return f'<p class="muted">(cannot render the mask: {_e(str(err))})</p>'
    spans = "".join(f'<span class="tok {"trained" if t else "context"}">{_e(text)}</span>' for text, t in preview)
    return f'<p class="muted">Green: trained tokens (the loss is on these); grey: context.</p><div>{spans}</div>'


def _dataset_section(folder: Path, card: dict) -> str:
    from collections import Counter

    from ..data.dataio import read_dataset

    path = folder / runs.DATASET
    try:
        data = read_dataset(path)
    except Exception as err:  # a missing or damaged snapshot: say so, keep the rest
        return f"<h2>Dataset</h2><p class='muted'>{_e(str(err))}</p>"
    tags = Counter(c.tags[0] for c in data if c.tags)
    rows = [{"examples": len(data), "dataset sha256": (card.get("dataset_sha256") or runs.dataset_sha256(data))[:16] + "…",
             "categories": ", ".join(f"{t} {n}" for t, n in tags.items()) or "—"}]
    return ("<h2>Dataset</h2>" + _table(rows) + "<h3>What one example trains</h3>"
            + _mask_example(folder, data))


def _timeline_section(points: list[dict], charts: _Charts, total) -> str:
    if not points:
        return ""
    out = ["<h2>Timeline</h2>", charts(timeline_figure(points, total))]
    for i, pt in enumerate(points):
        rows = timeline.replies_at(points, i)
        body = "".join(f'<tr><td class="reply">{_e(r["prompt"])}</td><td class="reply">{_diff(r["before"], r["reply"])}</td></tr>'
                       for r in rows)
        where = f" (new since step {rows[0]['before_step']} marked)" if rows and rows[0]["before_step"] is not None else " (before training)"
        out.append(f"<h3>Step {pt['step']}{where}</h3><table><tr><th>probe</th><th>reply</th></tr>{body}</table>")
    last = points[-1].get("forgetting")
    if last:
        out.append("<h3>Forgetting meter</h3>" + _table([{"retention questions right, base": last["base_accuracy"],
                                                          "tuned": last["tuned_accuracy"],
                                                          "right -> wrong": len(last["right_to_wrong"]),
                                                          "wrong -> right": len(last["wrong_to_right"])}])
                   + _table([{"flip": "right -> wrong", **r} for r in last["right_to_wrong"]]
                            + [{"flip": "wrong -> right", **r} for r in last["wrong_to_right"]]))
    return "".join(out)


def _influence_section(folder: Path) -> str:
    rows = runs.read_jsonl(folder / runs.INFLUENCE)
    if not rows:
        return ""
    out = ["<h2>Which examples taught it (influence)</h2>"]
    for r in rows:
        out.append(f"<h3>{_e(r['prompt'])}</h3><p class='reply'>Reply: {_e(r['reply'])}</p>"
                   f"<p class='muted'>{_e(r.get('method', ''))}</p>")
        for side in ("supporting", "opposing"):
            out.append(f"<h4>{side}</h4>" + _table([{k: e.get(k) for k in ("index", "score", "prompt", "response")}
                                                     for e in r.get(side, [])]))
    return "".join(out)


def _run_body(folder: Path, card: dict, charts: _Charts) -> str:
    curve = runs.load_curve(folder)
    total = card.get("total_steps")
    config = card.get("config") or {}
    parts = [f"<p>{_e(runs.summary_line(card))}</p>",
             _table([{"model": card.get("model"), "status": card.get("status"), "steps": card.get("steps"),
                      "final train loss": card.get("final_loss"), "eval loss": card.get("eval_loss"),
                      "finished": card.get("finished_at")}]),
             _dataset_section(folder, card),
             "<h2>Settings</h2>" + _table([{"setting": k, "value": v} for k, v in config.items() if k != "card"]),
             "<h2>Loss</h2>" + (charts(loss_figure(curve, total)) if curve else "<p class='muted'>no metrics</p>"),
             _timeline_section(timeline.load(folder), charts, total),
             _influence_section(folder)]
    replies = runs.read_replies(folder)
    if replies:
        parts.append("<h2>Replies recorded after the run</h2>"
                     + _table([{"prompt": p, "reply": r} for p, r in replies.items()]))
    return "".join(parts)


def _experiment_body(cards: list[dict], charts: _Charts) -> str:
    curves = {run_name(c): runs.load_curve(c["path"]) for c in cards}
    groups: dict[str, list[str]] = {}
    for c in cards:
        v = c.get("variant") or {}
        groups.setdefault(f"{c.get('experiment')}/{v.get('group') or v.get('name')}", []).append(run_name(c))
    parts = ["<h2>Loss curves</h2>", charts(overlay_losses(curves, groups=groups))]
    sizes = {c.get("n_examples") for c in cards}
    if len(sizes) >= 3 and all((c.get("variant") or {}).get("transform") == "subsample" for c in cards):
        parts.append(charts(ladder_figure(cards)))
    grouped = [r for r in group_rows(cards)]
    if any(r["runs"] > 1 for r in grouped):
        parts.append("<h2>Variants over their seeds</h2>" + _table([
            {"variant": r["variant"], "runs": r["runs"],
             "held-out NLL mean": (r["eval_nll"] or {}).get("mean"),
             "min": (r["eval_nll"] or {}).get("min"), "max": (r["eval_nll"] or {}).get("max"),
             "verdict": "lowest mean" if r["best"] else "overlaps the best: may be noise" if r["overlaps_best"]
             else "clearly worse"} for r in grouped]))
    rows = nll_table_rows(cards)
    parts.append("<h2>Runs</h2>" + _table([{k: r[k] for k in ("run", "status", "examples", "steps", "final_loss",
                                                                "eval_nll")} for r in rows]))
    prompts = list(dict.fromkeys(p["prompt"] for r in rows for p in r["probes"]))
    if prompts:
        first = {p["prompt"]: p["reply"] for p in rows[0]["probes"]}
        body = ""
        for prompt in prompts:
            cells = "".join(f'<td class="reply">{_diff(first.get(prompt) if i else None, next((p["reply"] for p in r["probes"] if p["prompt"] == prompt), ""))}</td>'
                            for i, r in enumerate(rows))
            body += f'<tr><td class="reply">{_e(prompt)}</td>{cells}</tr>'
        head = "".join(f"<th>{_e(r['run'])}</th>" for r in rows)
        parts.append("<h2>Probe replies</h2><p class='muted'>Each run diffed against the first.</p>"
                     f"<table><tr><th>probe</th>{head}</tr>{body}</table>")
    return "".join(parts)


def report(path: str | Path, out: str | Path) -> Path:
    """Write the report of the run folder or experiment folder `path` to `out` (atomically).

    Raises FileNotFoundError, naming the folder, when `path` holds no run."""
    path = Path(path)
    card = runs.read_card(path)
    charts = _Charts()
    if card is not None:
        title, body = f"Run: {card['name']}", _run_body(path, card, charts)
    else:
        cards = runs.list_runs(path)
        if not cards:
            raise FileNotFoundError(f"{path} holds no run (no run folder with config.json or run.json "
                                    "inside); give a run folder or an experiment folder")
        title, body = f"Experiment: {path.name}", _experiment_body(cards, charts)
    versions = card.get("versions") if card else next((c.get("versions") for c in runs.list_runs(path)), None)
    footer = (f"<h2>Versions</h2>{_table([versions or {}])}<p class='muted'>Written by SFT Lab on "
              f"{_e(time.strftime('%Y-%m-%d %H:%M'))} from {_e(str(path))}.</p>")
    doc = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
           f"<style>{STYLE}</style></head><body><h1>{_e(title)}</h1>{body}{footer}</body></html>\n")
    return write_text(out, doc)

